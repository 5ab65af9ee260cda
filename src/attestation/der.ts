// A small, strict DER reader (ITU-T X.690 §8 and §10), enough to find the X.509 v3 extensions of a
// certificate (RFC 5280 §4.1) and to read the INTEGER, OCTET STRING, IA5String and OBJECT IDENTIFIER
// values AMD puts in them. Node's X509Certificate does not expose extensions. Every read is bounded
// by its enclosing element; nothing here throws on hostile bytes: a problem is `undefined` or an
// `{ error }` with a message.

export interface Tlv {
  /** The identifier octet: class, constructed bit and tag number (low-tag-number form only). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the last content octet. */
  readonly end: number;
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  octetString: 0x04,
  oid: 0x06,
  ia5String: 0x16,
  sequence: 0x30,
  /** [3] EXPLICIT, constructed: the extensions of a TBSCertificate. */
  extensions: 0xa3,
} as const;

/** Longest length field accepted: 4 octets, so every length is below 2^32 and exact in a double. */
const MAX_LENGTH_OCTETS = 4;

/** Reads one element at `at`, which must end by `limit`. DER only: definite, minimal lengths. */
export function readTlv(bytes: Uint8Array, at: number, limit: number = bytes.length): Tlv | undefined {
  if (!Number.isInteger(at) || at < 0 || limit > bytes.length || at + 2 > limit) return undefined;
  const tag = bytes[at] as number;
  // High-tag-number form (tag number 31) never occurs in the structures read here.
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = bytes[at + 1] as number;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = at + 2;
  } else {
    const count = first & 0x7f;
    // 0x80 is the indefinite form (BER only); 0xff is reserved.
    if (count === 0 || count > MAX_LENGTH_OCTETS || at + 2 + count > limit) return undefined;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (bytes[at + 2 + i] as number);
    // DER §10.1: the long form only when needed, with no leading zero octet.
    if (length < 0x80 || (bytes[at + 2] as number) === 0) return undefined;
    contentStart = at + 2 + count;
  }
  const end = contentStart + length;
  if (end > limit) return undefined;
  return { tag, start: at, contentStart, end };
}

/** The elements inside a constructed element, which must tile its content exactly. */
export function children(bytes: Uint8Array, parent: Tlv, maxChildren = 1024): Tlv[] | undefined {
  if ((parent.tag & 0x20) === 0) return undefined;
  const out: Tlv[] = [];
  let at = parent.contentStart;
  while (at < parent.end) {
    if (out.length >= maxChildren) return undefined;
    const child = readTlv(bytes, at, parent.end);
    if (child === undefined) return undefined;
    out.push(child);
    at = child.end;
  }
  return out;
}

/** Reads exactly one element spanning all of `bytes`. */
export function readWhole(bytes: Uint8Array): Tlv | undefined {
  const tlv = readTlv(bytes, 0);
  return tlv?.end === bytes.length ? tlv : undefined;
}

export const content = (bytes: Uint8Array, tlv: Tlv): Uint8Array => bytes.subarray(tlv.contentStart, tlv.end);

/** A non-negative DER INTEGER of at most 6 content octets (exact in a double); minimal encoding required. */
export function readUnsigned(bytes: Uint8Array, tlv: Tlv): number | undefined {
  if (tlv.tag !== TAG.integer) return undefined;
  const value = content(bytes, tlv);
  if (value.length === 0 || value.length > 6) return undefined;
  const lead = value[0] as number;
  if (lead & 0x80) return undefined; // negative
  if (value.length > 1 && lead === 0 && ((value[1] as number) & 0x80) === 0) return undefined; // not minimal
  let n = 0;
  for (const octet of value) n = n * 256 + octet;
  return n;
}

/** Dotted decimal form of an OBJECT IDENTIFIER (X.690 §8.19); undefined if badly encoded. */
export function readOid(bytes: Uint8Array, tlv: Tlv): string | undefined {
  if (tlv.tag !== TAG.oid) return undefined;
  const value = content(bytes, tlv);
  if (value.length === 0 || value.length > 64) return undefined;
  const arcs: number[] = [];
  let arc = 0;
  let fresh = true;
  for (const octet of value) {
    // §8.19.2: no leading 0x80 octet in a subidentifier.
    if (fresh && octet === 0x80) return undefined;
    arc = arc * 128 + (octet & 0x7f);
    if (arc > Number.MAX_SAFE_INTEGER / 128) return undefined;
    fresh = (octet & 0x80) === 0;
    if (fresh) {
      arcs.push(arc);
      arc = 0;
    }
  }
  if (!fresh) return undefined; // the last subidentifier is unterminated
  const head = arcs[0] as number;
  const [x, y] = head < 40 ? [0, head] : head < 80 ? [1, head - 40] : [2, head - 80];
  return [x, y, ...arcs.slice(1)].join('.');
}

export interface Extension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content: the DER of the extension's own value. */
  readonly value: Uint8Array;
}

/**
 * The v3 extensions of a DER certificate by OID. A certificate without extensions gives an empty
 * map; a duplicate OID (RFC 5280 §4.2 forbids it) or any encoding fault gives an error.
 */
export function certificateExtensions(der: Uint8Array): Map<string, Extension> | { error: string } {
  const certificate = readWhole(der);
  if (certificate?.tag !== TAG.sequence) return { error: 'the certificate is not one DER SEQUENCE' };
  const top = children(der, certificate, 3);
  const tbs = top?.[0];
  if (top?.length !== 3 || tbs?.tag !== TAG.sequence) return { error: 'the certificate has no TBSCertificate' };
  const fields = children(der, tbs, 16);
  if (fields === undefined) return { error: 'the TBSCertificate is badly encoded' };
  const explicit = fields.filter((f) => f.tag === TAG.extensions);
  const out = new Map<string, Extension>();
  if (explicit.length === 0) return out;
  if (explicit.length > 1 || explicit[0] !== fields[fields.length - 1]) return { error: 'the extensions field is misplaced' };
  const wrapper = children(der, explicit[0] as Tlv, 1);
  const list = wrapper?.[0];
  if (wrapper?.length !== 1 || list?.tag !== TAG.sequence) return { error: 'the extensions are not a SEQUENCE' };
  const entries = children(der, list, 256);
  if (entries === undefined) return { error: 'the extensions are badly encoded' };
  for (const entry of entries) {
    const parts = entry.tag === TAG.sequence ? children(der, entry, 3) : undefined;
    if (parts === undefined || parts.length < 2) return { error: 'an extension is not a SEQUENCE of OID, [critical,] value' };
    const oid = readOid(der, parts[0] as Tlv);
    let critical = false;
    let valueTlv = parts[1] as Tlv;
    if (parts.length === 3) {
      const flag = content(der, valueTlv);
      // DER §11.1: TRUE is 0xff; a FALSE default is omitted, never encoded.
      if (valueTlv.tag !== TAG.boolean || flag.length !== 1 || flag[0] !== 0xff) return { error: 'an extension has a bad critical flag' };
      critical = true;
      valueTlv = parts[2] as Tlv;
    }
    if (oid === undefined || valueTlv.tag !== TAG.octetString) return { error: 'an extension has a bad OID or value' };
    if (out.has(oid)) return { error: `extension ${oid} appears twice` };
    out.set(oid, { critical, value: content(der, valueTlv) });
  }
  return out;
}
