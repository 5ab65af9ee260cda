import { sign, type KeyObject } from 'node:crypto';

// A minimal X.509 v3 certificate builder for tests (RFC 5280 §4.1, DER per X.690): enough to make
// test roots, intermediates and leaves with ECDSA keys and chosen extensions, so that verifiers can
// be driven end to end where no real vector exists. Real keys, real signatures; never used by src/.

const lengthOctets = (n: number): number[] => {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) out.unshift(rest % 256);
  return [0x80 | out.length, ...out];
};

export const tlv = (tag: number, ...parts: Uint8Array[]): Uint8Array => {
  const body = Buffer.concat(parts);
  return new Uint8Array(Buffer.concat([Buffer.from([tag, ...lengthOctets(body.length)]), body]));
};
export const seq = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);
export const octets = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const ia5 = (text: string): Uint8Array => tlv(0x16, Buffer.from(text, 'latin1'));

export function integer(value: number | bigint): Uint8Array {
  let hex = BigInt(value).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  for (const arc of [(arcs[0] ?? 0) * 40 + (arcs[1] ?? 0), ...arcs.slice(2)]) {
    const groups: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift(0x80 | (rest & 0x7f));
    out.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(out));
}

const utcTime = (date: Date): Uint8Array => tlv(0x17, Buffer.from(`${date.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));
const name = (commonName: string): Uint8Array => seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));

export interface CertificateSpec {
  readonly subject: string;
  readonly issuer: string;
  readonly publicKey: KeyObject;
  /** The issuer's private key (the subject's own for a self-signed root). */
  readonly signingKey: KeyObject;
  readonly hash: 'sha256' | 'sha384';
  readonly ca: boolean;
  readonly serial?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Further extensions: OID and the DER that goes inside extnValue. */
  readonly extensions?: readonly (readonly [string, Uint8Array])[];
}

/** DER of an ECDSA-signed X.509 v3 certificate. */
export function buildCertificate(spec: CertificateSpec): Uint8Array {
  const algorithm = seq(oid(spec.hash === 'sha256' ? '1.2.840.10045.4.3.2' : '1.2.840.10045.4.3.3'));
  const basicConstraints = spec.ca ? seq(tlv(0x01, Uint8Array.of(0xff))) : seq();
  const extensions = [
    seq(oid('2.5.29.19'), tlv(0x01, Uint8Array.of(0xff)), octets(basicConstraints)),
    ...(spec.extensions ?? []).map(([id, value]) => seq(oid(id), octets(value))),
  ];
  const tbs = seq(
    tlv(0xa0, integer(2)),
    integer(spec.serial ?? 1),
    algorithm,
    name(spec.issuer),
    seq(utcTime(spec.notBefore ?? new Date('2020-01-01T00:00:00Z')), utcTime(spec.notAfter ?? new Date('2040-01-01T00:00:00Z'))),
    name(spec.subject),
    new Uint8Array(spec.publicKey.export({ type: 'spki', format: 'der' })),
    tlv(0xa3, seq(...extensions)),
  );
  const signature = sign(spec.hash, tbs, { key: spec.signingKey, dsaEncoding: 'der' });
  return seq(tbs, algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

export const toPem = (der: Uint8Array): string =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
