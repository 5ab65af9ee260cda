import { verify as verifySignature } from 'node:crypto';
import { Decoder, Encoder } from 'cbor-x';
import type { X509Certificate } from 'node:crypto';
import { refuse, type Verified } from './reasons.js';
import { checkChain, parseCertificate, sha256Fingerprint } from './x509-chain.js';

// AWS Nitro Enclaves attestation documents: a COSE_Sign1 (RFC 9052; CBOR tag 18 optional) whose
// payload is a CBOR map, signed with ES384 by a leaf certificate that chains through the document's
// cabundle to the AWS Nitro Enclaves Root G1. The root is pinned by its SHA-256 fingerprint, so no
// certificate has to be shipped: the document carries the root as cabundle[0].

/** SHA-256 fingerprint of the AWS Nitro Enclaves Root G1 certificate (published by AWS). */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

export interface NitroClaims {
  readonly moduleId: string;
  /** PCR index to lower-case hex. */
  readonly pcrs: Readonly<Record<number, string>>;
  readonly publicKey: string | null;
  readonly userData: string | null;
  readonly nonce: string | null;
  /** Milliseconds since the epoch, as the document states it. */
  readonly timestamp: number;
  /** PCR0, PCR1 and PCR2 all zero: the enclave runs in debug mode and its memory is not private. */
  readonly debug: boolean;
}

export interface NitroTrust {
  /** SHA-256 fingerprints (hex) of accepted roots; default: the AWS Nitro Enclaves Root G1. */
  readonly rootFingerprints?: readonly string[];
}

const MAX_DOCUMENT_BYTES = 64 * 1024;
const COSE_ALG_ES384 = -35;
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array;

function decode(bytes: Uint8Array): unknown {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

function optionalBytes(payload: Map<unknown, unknown>, key: string): Uint8Array | null | 'bad' {
  const value = payload.get(key);
  if (value === undefined || value === null) return null;
  return isBytes(value) ? value : 'bad';
}

/** Verifies a Nitro attestation document at a given time. Never throws on hostile bytes. */
export function verifyNitroDocument(document: Uint8Array, at: Date, trust: NitroTrust = {}): Verified<NitroClaims> {
  if (document.length > MAX_DOCUMENT_BYTES) return refuse('malformed', `document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  let outer = decode(document);
  if (outer !== null && typeof outer === 'object' && 'tag' in outer && (outer).tag === 18) {
    outer = (outer as unknown as { value: unknown }).value;
  }
  if (!Array.isArray(outer) || outer.length !== 4) return refuse('malformed', 'not a COSE_Sign1 array of four items');
  const [protectedBytes, , payloadBytes, signature] = outer as unknown[];
  if (!isBytes(protectedBytes) || !isBytes(payloadBytes) || !isBytes(signature)) {
    return refuse('malformed', 'COSE_Sign1 items have the wrong types');
  }
  const header = decode(protectedBytes);
  if (!(header instanceof Map) || header.get(1) !== COSE_ALG_ES384) {
    return refuse('unsupported-algorithm', 'the protected header does not say ES384 (alg -35)');
  }
  if (signature.length !== 96) return refuse('malformed', `an ES384 signature is 96 bytes, not ${signature.length}`);

  const decoded = decode(payloadBytes);
  if (!(decoded instanceof Map)) return refuse('malformed', 'the payload is not a CBOR map');
  const payload = decoded as Map<unknown, unknown>;
  const moduleId = payload.get('module_id');
  const digest = payload.get('digest');
  const timestamp = payload.get('timestamp');
  const pcrs = payload.get('pcrs');
  const certificate = payload.get('certificate');
  const cabundle = payload.get('cabundle');
  if (typeof moduleId !== 'string' || moduleId === '') return refuse('malformed', 'module_id is missing');
  if (digest !== 'SHA384') return refuse('unsupported-algorithm', `digest is ${String(digest)}, not SHA384`);
  if (typeof timestamp !== 'bigint' && typeof timestamp !== 'number') return refuse('malformed', 'timestamp is missing');
  if (!(pcrs instanceof Map) || pcrs.size === 0 || pcrs.size > 32) return refuse('malformed', 'pcrs is missing or has a bad size');
  if (!isBytes(certificate)) return refuse('malformed', 'certificate is missing');
  if (!Array.isArray(cabundle) || cabundle.length === 0 || !cabundle.every(isBytes)) return refuse('malformed', 'cabundle is missing');
  const fields = { publicKey: optionalBytes(payload, 'public_key'), userData: optionalBytes(payload, 'user_data'), nonce: optionalBytes(payload, 'nonce') };
  for (const [name, value] of Object.entries(fields)) if (value === 'bad') return refuse('malformed', `${name} is not a byte string`);

  const pcrHex: Record<number, string> = {};
  for (const [index, value] of pcrs) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 31 || !isBytes(value) || ![32, 48, 64].includes(value.length)) {
      return refuse('malformed', 'a PCR has a bad index or length');
    }
    pcrHex[index] = hex(value);
  }

  // Trust: cabundle[0] must be a pinned root; then root -> intermediates -> leaf.
  const roots = trust.rootFingerprints ?? [AWS_NITRO_ROOT_G1_SHA256];
  const rootDer = cabundle[0] as Uint8Array;
  if (!roots.includes(sha256Fingerprint(rootDer))) {
    return refuse('untrusted-root', 'the chain does not start at a pinned root (AWS Nitro Enclaves Root G1)');
  }
  const chain: X509Certificate[] = [];
  for (const [i, der] of [...(cabundle), certificate].entries()) {
    const parsed = parseCertificate(der, i === cabundle.length ? 'the leaf certificate' : `cabundle[${i}]`);
    if ('code' in parsed) return { ok: false, reasons: [parsed] };
    chain.push(parsed);
  }
  const chainProblem = checkChain(chain, at);
  if (chainProblem !== undefined) return { ok: false, reasons: [chainProblem] };

  // RFC 9052 §4.4: Sig_structure = ["Signature1", protected, external_aad = h'', payload].
  const toBeSigned = encoder.encode(['Signature1', protectedBytes, new Uint8Array(0), payloadBytes]);
  const leaf = chain[chain.length - 1] as X509Certificate;
  let valid = false;
  try {
    valid = verifySignature('sha384', toBeSigned, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    valid = false;
  }
  if (!valid) return refuse('bad-signature', 'the ES384 signature does not verify under the leaf certificate');

  const zero = (i: number): boolean => /^0*$/.test(pcrHex[i] ?? 'x');
  return {
    ok: true,
    claims: {
      moduleId,
      pcrs: pcrHex,
      publicKey: fields.publicKey === null ? null : hex(fields.publicKey as Uint8Array),
      userData: fields.userData === null ? null : hex(fields.userData as Uint8Array),
      nonce: fields.nonce === null ? null : hex(fields.nonce as Uint8Array),
      timestamp: Number(timestamp),
      debug: zero(0) && zero(1) && zero(2),
    },
  };
}
