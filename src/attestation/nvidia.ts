import { createHash, verify as verifySignature, type X509Certificate } from 'node:crypto';
import { refuse, type Verified } from './reasons.js';
import { checkChain, orderChain, parseCertificate, sha256Fingerprint } from './x509-chain.js';

// NVIDIA Hopper GPU evidence: an SPDM 1.1 GET_MEASUREMENTS request (37 bytes: header, 32-byte nonce,
// slot) followed by the MEASUREMENTS response, whose last 96 bytes are an ECDSA P-384 / SHA-384
// signature over request ‖ response-without-signature by the device's leaf certificate. The device
// chain ends at the NVIDIA device identity root, pinned by fingerprint. Companion evidence for GPU
// workers: it proves which firmware the GPU runs, not the CPU side.

/** SHA-256 fingerprint of NVIDIA's device identity root certificate. */
export const NVIDIA_DEVICE_ROOT_SHA256 = '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48';

const REQUEST_LENGTH = 37;
const SIGNATURE_LENGTH = 96;
const SPDM_MEASUREMENTS = 0x60;
const SPDM_GET_MEASUREMENTS = 0xe0;
/** The Hopper report is about 4 KiB; its hex text twice that. */
const MAX_REPORT_BYTES = 64 * 1024;
const MAX_CERTIFICATES = 8;

export interface NvidiaClaims {
  readonly spdmVersion: string;
  /** The requester's nonce: a verifier checks it is the one it sent. */
  readonly requestNonce: string;
  readonly responseNonce: string;
  /** Measurement block index to its value, lower-case hex. */
  readonly measurements: Readonly<Record<number, string>>;
  /** SHA-384 over the measurement record (every block, in order, as signed), lower-case hex. */
  readonly recordDigest: string;
}

export interface NvidiaTrust {
  /** The device certificate chain (any order); the root may be included or pinned only. */
  readonly certificates: readonly Uint8Array[];
  readonly rootFingerprints?: readonly string[];
}

/** Accepts the report as raw bytes or as the hex text NVIDIA's tools write. */
export function decodeNvidiaReport(input: Uint8Array): Uint8Array {
  if (input.length > 2 * MAX_REPORT_BYTES) return input;
  const text = Buffer.from(input).toString('latin1').trim();
  return /^(?:[0-9a-fA-F]{2})+$/.test(text) ? new Uint8Array(Buffer.from(text, 'hex')) : input;
}

function parse(b: Buffer): NvidiaClaims | { error: string } {
  if (b.length > MAX_REPORT_BYTES) return { error: `the report is larger than ${MAX_REPORT_BYTES} bytes` };
  if (b.length < REQUEST_LENGTH + 8 + 32 + 2 + SIGNATURE_LENGTH) return { error: 'the report is too short' };
  if (b[1] !== SPDM_GET_MEASUREMENTS) return { error: 'the report does not start with a GET_MEASUREMENTS request' };
  const response = b.subarray(REQUEST_LENGTH);
  if (response[1] !== SPDM_MEASUREMENTS || response[0] !== b[0]) return { error: 'no MEASUREMENTS response of the same SPDM version follows' };
  const blocks = response[4] ?? 0;
  const recordLength = (response[5] ?? 0) | ((response[6] ?? 0) << 8) | ((response[7] ?? 0) << 16);
  let at = 8;
  const end = at + recordLength;
  if (end + 32 + 2 + SIGNATURE_LENGTH > response.length) return { error: 'the measurement record is truncated' };
  const measurements: Record<number, string> = {};
  for (let i = 0; i < blocks; i++) {
    if (at + 4 > end) return { error: `measurement block ${i} is truncated` };
    const index = response[at] ?? 0;
    const size = response.readUInt16LE(at + 2);
    if (at + 4 + size > end || size < 3) return { error: `measurement block ${index} has a bad size` };
    // DMTF measurement: value type (1), value size (2), value.
    const valueSize = response.readUInt16LE(at + 5);
    if (valueSize + 3 !== size) return { error: `measurement block ${index} is not a DMTF measurement` };
    measurements[index] = response.subarray(at + 7, at + 7 + valueSize).toString('hex');
    at += 4 + size;
  }
  if (at !== end) return { error: 'the measurement record has trailing bytes' };
  const responseNonce = response.subarray(end, end + 32).toString('hex');
  const opaqueLength = response.readUInt16LE(end + 32);
  if (end + 34 + opaqueLength + SIGNATURE_LENGTH !== response.length) return { error: 'the response length does not add up' };
  const version = b[0] ?? 0;
  return {
    spdmVersion: `${version >> 4}.${version & 0xf}`,
    requestNonce: b.subarray(4, 36).toString('hex'),
    responseNonce,
    measurements,
    recordDigest: createHash('sha384').update(response.subarray(8, end)).digest('hex'),
  };
}

export function verifyNvidiaReport(input: Uint8Array, at: Date, trust: NvidiaTrust): Verified<NvidiaClaims> {
  const b = Buffer.from(decodeNvidiaReport(input));
  const claims = parse(b);
  if ('error' in claims) return refuse('malformed', claims.error);
  if (trust.certificates.length > MAX_CERTIFICATES) return refuse('malformed', `more than ${MAX_CERTIFICATES} device certificates`);
  const unique = new Map<string, X509Certificate>();
  for (const [i, der] of trust.certificates.entries()) {
    const parsed = parseCertificate(der, `device certificate ${i + 1}`);
    if ('code' in parsed) return { ok: false, reasons: [parsed] };
    unique.set(sha256Fingerprint(parsed.raw), parsed);
  }
  const chain = orderChain([...unique.values()]);
  if (chain === undefined || chain.length < 2) return refuse('chain-invalid', 'the device certificates do not form one chain');
  const roots = trust.rootFingerprints ?? [NVIDIA_DEVICE_ROOT_SHA256];
  if (!roots.includes(sha256Fingerprint((chain[0] as X509Certificate).raw))) {
    return refuse('untrusted-root', 'the device chain does not end at the pinned NVIDIA device root');
  }
  const chainProblem = checkChain(chain, at);
  if (chainProblem !== undefined) return { ok: false, reasons: [chainProblem] };
  const leaf = chain[chain.length - 1] as X509Certificate;
  let valid = false;
  try {
    valid = verifySignature('sha384', b.subarray(0, b.length - SIGNATURE_LENGTH), { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, b.subarray(b.length - SIGNATURE_LENGTH));
  } catch {
    valid = false;
  }
  if (!valid) return refuse('bad-signature', 'the measurements are not signed by the device certificate');
  return { ok: true, claims };
}
