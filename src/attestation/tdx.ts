import { createHash, createPublicKey, verify as verifySignature, type KeyObject, type X509Certificate } from 'node:crypto';
import { refuse, type Verified } from './reasons.js';
import { checkChain, orderChain, parseCertificate, pemCertificates, sha256Fingerprint } from './x509-chain.js';

// Intel TDX DCAP quotes, version 4 (Intel TDX DCAP Quoting Library API, quote format): a 48-byte
// header and a 584-byte TD report body, signed (ECDSA P-256) by an attestation key. The attestation
// key is bound into the Quoting Enclave's report (report_data = SHA-256(key || QE auth data)), the QE
// report is signed by the PCK certificate, and the PCK chain (carried in the quote as PEM) ends at the
// Intel SGX Root CA, pinned by fingerprint.

/** SHA-256 fingerprint of the Intel SGX Root CA certificate. */
export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';

const HEADER = 48;
const BODY = 584;
const SIGNED = HEADER + BODY;
const QE_REPORT = 384;
const TEE_TYPE_TDX = 0x81;
const ATT_KEY_ECDSA_P256 = 2;

export interface TdxClaims {
  readonly version: number;
  readonly teeTcbSvn: string;
  readonly mrSeam: string;
  readonly mrSignerSeam: string;
  readonly seamAttributes: string;
  readonly tdAttributes: string;
  readonly debug: boolean;
  readonly xfam: string;
  readonly mrtd: string;
  readonly mrConfigId: string;
  readonly mrOwner: string;
  readonly mrOwnerConfig: string;
  readonly rtmrs: readonly [string, string, string, string];
  readonly reportData: string;
}

export interface TdxTrust {
  readonly rootFingerprints?: readonly string[];
}

function p256Key(raw: Buffer): KeyObject | undefined {
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: raw.subarray(0, 32).toString('base64url'), y: raw.subarray(32, 64).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    return undefined;
  }
}

function ecdsaOk(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

function parseBody(b: Buffer): Omit<TdxClaims, 'version'> {
  let at = HEADER;
  const take = (n: number): string => {
    const out = b.subarray(at, at + n).toString('hex');
    at += n;
    return out;
  };
  const teeTcbSvn = take(16);
  const mrSeam = take(48);
  const mrSignerSeam = take(48);
  const seamAttributes = take(8);
  const tdAttributes = take(8);
  const xfam = take(8);
  const mrtd = take(48);
  const mrConfigId = take(48);
  const mrOwner = take(48);
  const mrOwnerConfig = take(48);
  const rtmrs = [take(48), take(48), take(48), take(48)] as const;
  const reportData = take(64);
  // TD attributes bit 0 (TUD.DEBUG): the TD runs in debug mode and the host can read its memory.
  const debug = (b[HEADER + 16 + 48 + 48 + 8] ?? 0) % 2 === 1;
  return { teeTcbSvn, mrSeam, mrSignerSeam, seamAttributes, tdAttributes, debug, xfam, mrtd, mrConfigId, mrOwner, mrOwnerConfig, rtmrs, reportData };
}

/** Verifies a version 4 TDX quote with its embedded PCK chain at a given time. Never throws on hostile bytes. */
export function verifyTdxQuote(quote: Uint8Array, at: Date, trust: TdxTrust = {}): Verified<TdxClaims> {
  const b = Buffer.from(quote);
  if (b.length < SIGNED + 4) return refuse('malformed', 'the quote is shorter than its header and TD report');
  const version = b.readUInt16LE(0);
  if (version !== 4) return refuse('malformed', `quote version ${version} is not supported (4)`);
  if (b.readUInt16LE(2) !== ATT_KEY_ECDSA_P256) return refuse('unsupported-algorithm', 'the attestation key is not ECDSA P-256');
  if (b.readUInt32LE(4) !== TEE_TYPE_TDX) return refuse('malformed', 'the quote is not a TDX quote (TEE type 0x81)');
  const sigLength = b.readUInt32LE(SIGNED);
  const sigStart = SIGNED + 4;
  if (sigStart + sigLength > b.length || sigLength < 64 + 64 + 6) return refuse('malformed', 'the signature data is truncated');
  const quoteSignature = b.subarray(sigStart, sigStart + 64);
  const attestationKeyRaw = b.subarray(sigStart + 64, sigStart + 128);
  let at2 = sigStart + 128;
  const certType = b.readUInt16LE(at2);
  const certSize = b.readUInt32LE(at2 + 2);
  at2 += 6;
  if (certType !== 6 || at2 + certSize > b.length) return refuse('malformed', 'expected QE report certification data (type 6)');
  if (certSize < QE_REPORT + 64 + 2 + 6) return refuse('malformed', 'the QE report certification data is truncated');
  const qeReport = b.subarray(at2, at2 + QE_REPORT);
  const qeSignature = b.subarray(at2 + QE_REPORT, at2 + QE_REPORT + 64);
  let cursor = at2 + QE_REPORT + 64;
  const authLength = b.readUInt16LE(cursor);
  cursor += 2;
  const authData = b.subarray(cursor, cursor + authLength);
  cursor += authLength;
  if (cursor + 6 > at2 + certSize) return refuse('malformed', 'the PCK certification data is truncated');
  const innerType = b.readUInt16LE(cursor);
  const innerSize = b.readUInt32LE(cursor + 2);
  cursor += 6;
  if (innerType !== 5 || cursor + innerSize > at2 + certSize) return refuse('malformed', 'expected a PCK certificate chain (type 5)');
  const pem = b.subarray(cursor, cursor + innerSize).toString('latin1');

  const certs: X509Certificate[] = [];
  for (const [i, der] of pemCertificates(pem).entries()) {
    const parsed = parseCertificate(der, `PCK chain certificate ${i + 1}`);
    if ('code' in parsed) return { ok: false, reasons: [parsed] };
    certs.push(parsed);
  }
  const chain = orderChain(certs);
  if (chain === undefined || chain.length < 2) return refuse('chain-invalid', 'the PCK certificates do not form one chain');
  const roots = trust.rootFingerprints ?? [INTEL_SGX_ROOT_CA_SHA256];
  if (!roots.includes(sha256Fingerprint((chain[0] as X509Certificate).raw))) {
    return refuse('untrusted-root', 'the PCK chain does not end at a pinned Intel SGX Root CA');
  }
  const chainProblem = checkChain(chain, at);
  if (chainProblem !== undefined) return { ok: false, reasons: [chainProblem] };

  const pck = chain[chain.length - 1] as X509Certificate;
  if (!ecdsaOk(pck.publicKey, qeReport, qeSignature)) return refuse('bad-signature', 'the QE report is not signed by the PCK certificate');
  const binding = createHash('sha256').update(attestationKeyRaw).update(authData).digest();
  const qeReportData = qeReport.subarray(320, 384);
  if (!binding.equals(qeReportData.subarray(0, 32)) || qeReportData.subarray(32).some((x) => x !== 0)) {
    return refuse('bad-signature', 'the QE report does not bind the attestation key');
  }
  const attestationKey = p256Key(attestationKeyRaw);
  if (attestationKey === undefined) return refuse('malformed', 'the attestation key is not a P-256 point');
  if (!ecdsaOk(attestationKey, b.subarray(0, SIGNED), quoteSignature)) {
    return refuse('bad-signature', 'the quote is not signed by its attestation key');
  }
  return { ok: true, claims: { version, ...parseBody(b) } };
}
