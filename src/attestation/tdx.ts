import { createHash, createPublicKey, verify as verifySignature, type KeyObject, type X509Certificate } from 'node:crypto';
import type { AttestationReason, Verified } from './reasons.js';
import { checkChain, orderChain, parseCertificate, pemCertificates, sha256Fingerprint } from './x509-chain.js';

// Intel TDX DCAP quotes, versions 4 and 5 (Intel TDX DCAP Quoting Library API, quote format;
// sgx_quote_4.h / sgx_quote_5.h). Version 4: a 48-byte header and a 584-byte TD report. Version 5: the
// header, a body descriptor (type u16: 2 = TDX 1.0 report of 584 bytes, 3 = TDX 1.5 report of 648
// bytes, which appends TEE_TCB_SVN_2 and MR_SERVICETD; size u32), then the body. Both are followed
// by the same signature data: an ECDSA P-256 signature by an attestation key over everything before
// it (header ‖ body for v4, header ‖ descriptor ‖ body for v5). The attestation key is bound into the
// Quoting Enclave's report (report_data = SHA-256(key ‖ QE auth data)), the QE report is signed by the
// PCK certificate, and the PCK chain (carried in the quote as PEM) ends at the Intel SGX Root CA,
// pinned by fingerprint.

/** SHA-256 fingerprint of the Intel SGX Root CA certificate. */
export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';

const HEADER = 48;
const V5_DESCRIPTOR = 6;
const TD_REPORT_10 = 584;
const TD_REPORT_15 = 648;
const V5_BODY_TDX_10 = 2;
const V5_BODY_TDX_15 = 3;
const QE_REPORT = 384;
const TEE_TYPE_TDX = 0x81;
const ATT_KEY_ECDSA_P256 = 2;
const MAX_QUOTE_BYTES = 64 * 1024;

export interface TdxClaims {
  readonly version: 4 | 5;
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
  /** TDX 1.5 reports (quote v5, body type 3) only; null otherwise. */
  readonly teeTcbSvn2: string | null;
  readonly mrServiceTd: string | null;
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

/** Where the signed part of a quote ends and its TD report lies. */
interface QuoteLayout {
  readonly version: 4 | 5;
  readonly bodyStart: number;
  readonly bodyLength: number;
  /** Offset of the signature data length (u32): everything before it is signed. */
  readonly signedEnd: number;
}

function quoteLayout(b: Buffer): QuoteLayout | AttestationReason {
  const malformed = (message: string): AttestationReason => ({ code: 'malformed', message });
  if (b.length > MAX_QUOTE_BYTES) return malformed(`the quote is larger than ${MAX_QUOTE_BYTES} bytes`);
  if (b.length < HEADER + V5_DESCRIPTOR) return malformed('the quote is shorter than its header');
  const version = b.readUInt16LE(0);
  if (b.readUInt16LE(2) !== ATT_KEY_ECDSA_P256) return { code: 'unsupported-algorithm', message: 'the attestation key is not ECDSA P-256' };
  if (b.readUInt32LE(4) !== TEE_TYPE_TDX) return malformed('the quote is not a TDX quote (TEE type 0x81)');
  let layout: QuoteLayout;
  if (version === 4) {
    layout = { version, bodyStart: HEADER, bodyLength: TD_REPORT_10, signedEnd: HEADER + TD_REPORT_10 };
  } else if (version === 5) {
    const type = b.readUInt16LE(HEADER);
    const size = b.readUInt32LE(HEADER + 2);
    const expected = type === V5_BODY_TDX_10 ? TD_REPORT_10 : type === V5_BODY_TDX_15 ? TD_REPORT_15 : undefined;
    if (expected === undefined) return malformed(`quote body type ${type} is not a TD report (2 or 3)`);
    if (size !== expected) return malformed(`a type ${type} quote body is ${expected} bytes, not ${size}`);
    const bodyStart = HEADER + V5_DESCRIPTOR;
    layout = { version, bodyStart, bodyLength: size, signedEnd: bodyStart + size };
  } else {
    return malformed(`quote version ${version} is not supported (4 or 5)`);
  }
  if (b.length < layout.signedEnd + 4) return malformed('the quote is shorter than its header and TD report');
  return layout;
}

function parseBody(b: Buffer, layout: QuoteLayout): Omit<TdxClaims, 'version'> {
  let at = layout.bodyStart;
  const take = (n: number): string => {
    const out = b.subarray(at, at + n).toString('hex');
    at += n;
    return out;
  };
  const teeTcbSvn = take(16);
  const mrSeam = take(48);
  const mrSignerSeam = take(48);
  const seamAttributes = take(8);
  // TD attributes bit 0 (TUD.DEBUG): the TD runs in debug mode and the host can read its memory.
  const debug = (b[at] ?? 0) % 2 === 1;
  const tdAttributes = take(8);
  const xfam = take(8);
  const mrtd = take(48);
  const mrConfigId = take(48);
  const mrOwner = take(48);
  const mrOwnerConfig = take(48);
  const rtmrs = [take(48), take(48), take(48), take(48)] as const;
  const reportData = take(64);
  const tdx15 = layout.bodyLength === TD_REPORT_15;
  const teeTcbSvn2 = tdx15 ? take(16) : null;
  const mrServiceTd = tdx15 ? take(48) : null;
  return { teeTcbSvn, mrSeam, mrSignerSeam, seamAttributes, tdAttributes, debug, xfam, mrtd, mrConfigId, mrOwner, mrOwnerConfig, rtmrs, reportData, teeTcbSvn2, mrServiceTd };
}

/**
 * The signature data after `signedEnd`, the same in v4 and v5: the quote signature by the
 * attestation key, the key's binding in the QE report, the QE report's signature by the PCK
 * certificate, and the PCK chain to a pinned root.
 */
function checkSignatureData(b: Buffer, signedEnd: number, at: Date, trust: TdxTrust): AttestationReason | undefined {
  const malformed = (message: string): AttestationReason => ({ code: 'malformed', message });
  const sigLength = b.readUInt32LE(signedEnd);
  const sigStart = signedEnd + 4;
  if (sigStart + sigLength > b.length || sigLength < 64 + 64 + 6) return malformed('the signature data is truncated');
  const quoteSignature = b.subarray(sigStart, sigStart + 64);
  const attestationKeyRaw = b.subarray(sigStart + 64, sigStart + 128);
  const certDataStart = sigStart + 128;
  const certType = b.readUInt16LE(certDataStart);
  const certSize = b.readUInt32LE(certDataStart + 2);
  const qeStart = certDataStart + 6;
  const qeEnd = qeStart + certSize;
  if (certType !== 6 || qeEnd > sigStart + sigLength) return malformed('expected QE report certification data (type 6)');
  if (certSize < QE_REPORT + 64 + 2 + 6) return malformed('the QE report certification data is truncated');
  const qeReport = b.subarray(qeStart, qeStart + QE_REPORT);
  const qeSignature = b.subarray(qeStart + QE_REPORT, qeStart + QE_REPORT + 64);
  let cursor = qeStart + QE_REPORT + 64;
  const authLength = b.readUInt16LE(cursor);
  cursor += 2;
  if (cursor + authLength + 6 > qeEnd) return malformed('the PCK certification data is truncated');
  const authData = b.subarray(cursor, cursor + authLength);
  cursor += authLength;
  const innerType = b.readUInt16LE(cursor);
  const innerSize = b.readUInt32LE(cursor + 2);
  cursor += 6;
  if (innerType !== 5 || cursor + innerSize > qeEnd) return malformed('expected a PCK certificate chain (type 5)');
  const pem = b.subarray(cursor, cursor + innerSize).toString('latin1');

  const certs: X509Certificate[] = [];
  for (const [i, der] of pemCertificates(pem).entries()) {
    const parsed = parseCertificate(der, `PCK chain certificate ${i + 1}`);
    if ('code' in parsed) return parsed;
    certs.push(parsed);
  }
  const chain = certs.length > 8 ? undefined : orderChain(certs);
  if (chain === undefined || chain.length < 2) return { code: 'chain-invalid', message: 'the PCK certificates do not form one chain' };
  const roots = trust.rootFingerprints ?? [INTEL_SGX_ROOT_CA_SHA256];
  if (!roots.includes(sha256Fingerprint((chain[0] as X509Certificate).raw))) {
    return { code: 'untrusted-root', message: 'the PCK chain does not end at a pinned Intel SGX Root CA' };
  }
  const chainProblem = checkChain(chain, at);
  if (chainProblem !== undefined) return chainProblem;

  const pck = chain[chain.length - 1] as X509Certificate;
  if (!ecdsaOk(pck.publicKey, qeReport, qeSignature)) return { code: 'bad-signature', message: 'the QE report is not signed by the PCK certificate' };
  const binding = createHash('sha256').update(attestationKeyRaw).update(authData).digest();
  const qeReportData = qeReport.subarray(320, 384);
  if (!binding.equals(qeReportData.subarray(0, 32)) || qeReportData.subarray(32).some((x) => x !== 0)) {
    return { code: 'bad-signature', message: 'the QE report does not bind the attestation key' };
  }
  const attestationKey = p256Key(attestationKeyRaw);
  if (attestationKey === undefined) return malformed('the attestation key is not a P-256 point');
  if (!ecdsaOk(attestationKey, b.subarray(0, signedEnd), quoteSignature)) {
    return { code: 'bad-signature', message: 'the quote is not signed by its attestation key' };
  }
  return undefined;
}

/** Verifies a version 4 or 5 TDX quote with its embedded PCK chain at a given time. Never throws on hostile bytes. */
export function verifyTdxQuote(quote: Uint8Array, at: Date, trust: TdxTrust = {}): Verified<TdxClaims> {
  const b = Buffer.from(quote);
  const layout = quoteLayout(b);
  if ('code' in layout) return { ok: false, reasons: [layout] };
  const problem = checkSignatureData(b, layout.signedEnd, at, trust);
  if (problem !== undefined) return { ok: false, reasons: [problem] };
  return { ok: true, claims: { version: layout.version, ...parseBody(b, layout) } };
}
