import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { Decoder, Encoder, Tag } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { AWS_NITRO_ROOT_G1_SHA256, verifyNitroDocument } from '../../src/attestation/index.js';
import { buildCertificate } from './x509-builder.js';

// Real AWS Nitro attestation documents (../shared/vectors/attestation/nitro, from blocky/nitrite),
// verified at the times the vectors' README states.

const DIR = '../shared/vectors/attestation/nitro';
const load = (name: string): Uint8Array => new Uint8Array(Buffer.from(readFileSync(`${DIR}/${name}`, 'utf8').trim(), 'base64'));
const DOCUMENT = load('nitro_attestation.b64');
const DEBUG = load('nitro_attestation_debug.b64');
const AT = new Date('2024-09-07T14:37:39.545Z');
const DEBUG_AT = new Date('2024-09-07T14:38:06.508Z');

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

describe('AWS Nitro attestation documents', () => {
  it('pins the published fingerprint of the AWS Nitro Enclaves Root G1', () => {
    const root = new X509Certificate(readFileSync(`${DIR}/aws_nitro_root_g1.pem`));
    expect(createHash('sha256').update(root.raw).digest('hex')).toBe(AWS_NITRO_ROOT_G1_SHA256);
  });

  it('verifies the vector and gives its claims', () => {
    const result = verifyNitroDocument(DOCUMENT, AT);
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    const { claims } = result;
    expect(claims.moduleId).toBe('i-0a22e5c5f24d22174-enc0191cceb4289903f');
    expect(Object.keys(claims.pcrs)).toHaveLength(16);
    expect(claims.pcrs[0]).toBe('e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a');
    expect(claims.pcrs[1]).toBe('0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa');
    expect(claims.pcrs[2]).toBe('d5dcbdea0aa39c802f9d55ced2ea6e4d74ecec5f08fe40c508882639c9090642669106a062a3e24ee2805a3024b9b75c');
    for (const field of [claims.publicKey, claims.userData, claims.nonce]) expect(field).toBe('01'.repeat(1024));
    expect(claims.timestamp).toBe(1725719859545);
    expect(claims.debug).toBe(false);
  });

  it('verifies the debug vector and reports it as debug', () => {
    const result = verifyNitroDocument(DEBUG, DEBUG_AT);
    expect(result.ok && result.claims.debug).toBe(true);
  });

  it('accepts the tagged form (CBOR tag 18) too', () => {
    const outer = new Decoder({ mapsAsObjects: false, useRecords: false }).decode(DOCUMENT) as unknown;
    const tagged = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false }).encode(new Tag(outer, 18));
    expect(verifyNitroDocument(tagged, AT).ok).toBe(true);
  });

  it('refuses a flipped byte in the signature, in the payload and in the header', () => {
    expect(verifyNitroDocument(flip(DOCUMENT, DOCUMENT.length - 5), AT)).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    // Inside module_id: the document still parses, the signature no longer matches.
    const moduleAt = Buffer.from(DOCUMENT).indexOf('i-0a22e5c5');
    expect(verifyNitroDocument(flip(DOCUMENT, moduleAt + 3), AT)).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    // The protected header's algorithm byte: -35 becomes another algorithm.
    expect(verifyNitroDocument(flip(DOCUMENT, 5), AT)).toMatchObject({ ok: false, reasons: [{ code: 'unsupported-algorithm' }] });
  });

  it('refuses a root that is not pinned', () => {
    expect(verifyNitroDocument(DOCUMENT, AT, { rootFingerprints: ['00'.repeat(32)] })).toMatchObject({
      ok: false,
      reasons: [{ code: 'untrusted-root' }],
    });
  });

  it('refuses a time outside the chain', () => {
    expect(verifyNitroDocument(DOCUMENT, new Date('2024-09-08T14:37:39Z'))).toMatchObject({ ok: false, reasons: [{ code: 'certificate-expired' }] });
    expect(verifyNitroDocument(DOCUMENT, new Date('2019-01-01T00:00:00Z'))).toMatchObject({ ok: false, reasons: [{ code: 'certificate-not-yet-valid' }] });
  });

  it('refuses truncated and foreign input without throwing', () => {
    for (const length of [0, 1, 10, 100, 1000, DOCUMENT.length - 1]) {
      expect(verifyNitroDocument(DOCUMENT.subarray(0, length), AT)).toMatchObject({ ok: false, reasons: [{ code: 'malformed' }] });
    }
    expect(verifyNitroDocument(new TextEncoder().encode('not cbor at all'), AT)).toMatchObject({ ok: false });
  });
});

describe('AWS Nitro documents that are not quite right', () => {
  const codes = (result: { ok: boolean; reasons?: readonly { code: string }[] }): string[] => (result.reasons ?? []).map((r) => r.code);
  const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
  const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

  /** The vector with its payload's cabundle replaced: the chain is checked before the signature. */
  function withCabundle(change: (bundle: Uint8Array[]) => Uint8Array[]): Uint8Array {
    const outer = decoder.decode(DOCUMENT) as unknown[];
    const payload = decoder.decode(outer[2] as Uint8Array) as Map<string, unknown>;
    payload.set('cabundle', change(payload.get('cabundle') as Uint8Array[]));
    return encoder.encode([outer[0], outer[1], encoder.encode(payload), outer[3]]);
  }

  it('still verifies after a decode and re-encode that changes nothing', () => {
    expect(verifyNitroDocument(withCabundle((bundle) => bundle), AT).ok).toBe(true);
  });

  it('refuses a cabundle in the wrong order or with an extra self-signed root', () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const stranger = buildCertificate({ subject: 'Another Root', issuer: 'Another Root', publicKey: key.publicKey, signingKey: key.privateKey, hash: 'sha384', ca: true });
    expect(codes(verifyNitroDocument(withCabundle((b) => [...b].reverse()), AT))).toEqual(['untrusted-root']);
    expect(codes(verifyNitroDocument(withCabundle((b) => [b[0]!, b[2]!, b[1]!, b[3]!]), AT))).toEqual(['chain-invalid']);
    expect(codes(verifyNitroDocument(withCabundle((b) => [stranger, ...b]), AT))).toEqual(['untrusted-root']);
    expect(codes(verifyNitroDocument(withCabundle((b) => [b[0]!, stranger, ...b.slice(1)]), AT))).toEqual(['chain-invalid']);
    expect(codes(verifyNitroDocument(withCabundle((b) => [...b, b[0]!]), AT))).toEqual(['chain-invalid']);
    expect(codes(verifyNitroDocument(withCabundle(() => []), AT))).toEqual(['malformed']);
  });

  it('refuses garbage CBOR and oversized documents as malformed, without throwing', () => {
    const garbage: Uint8Array[] = [
      new Uint8Array(Array.from({ length: 16 }, (_, i) => createHash('sha256').update(`garbage ${i}`).digest()).flatMap((d) => [...d])),
      Uint8Array.of(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // a byte string claiming 2^64 - 1 bytes
      Uint8Array.of(0x9f, 0x01, 0x02), // an indefinite array with no break
      new Uint8Array(20_000).fill(0x81), // arrays nested 20 000 deep
      encoder.encode(new Map([[1, 2]])),
      encoder.encode([1, 2, 3, 4]),
      encoder.encode([new Uint8Array(0), new Map(), new Uint8Array(0)]),
      new TextEncoder().encode('not cbor at all'),
    ];
    for (const [i, bytes] of garbage.entries()) expect(codes(verifyNitroDocument(bytes, AT)), `case ${i}`).toEqual(['malformed']);
    const oversized = new Uint8Array(64 * 1024 + 1);
    oversized.set(DOCUMENT);
    expect(codes(verifyNitroDocument(oversized, AT))).toEqual(['malformed']);
  });
});
