import { verifyNitroDocument } from './nitro.js';
import type { AttestationReason } from './reasons.js';
import { verifySevSnpReport } from './sev-snp.js';
import { verifyTdxQuote } from './tdx.js';
import { pemCertificates } from './x509-chain.js';

// One entry point over the platform verifiers: detect the format, verify, and report the claims
// under the names `malus attest verify --json` prints.

export const EVIDENCE_FORMATS = ['nitro', 'sev-snp', 'tdx'] as const;
export type EvidenceFormat = (typeof EVIDENCE_FORMATS)[number];

export interface EvidenceVerdict {
  readonly ok: boolean;
  readonly platform: EvidenceFormat;
  /** PCR0 for nitro, MEASUREMENT for sev-snp, MRTD for tdx; null when the evidence did not verify. */
  readonly measurement: string | null;
  readonly debug: boolean | null;
  readonly reasons: readonly AttestationReason[];
  readonly claims: Readonly<Record<string, unknown>> | null;
}

export interface VerifyEvidenceOptions {
  readonly format?: EvidenceFormat | 'auto';
  readonly at: Date;
  /** Replaces the pinned roots (SHA-256 fingerprints, hex). */
  readonly rootFingerprints?: readonly string[];
  /** Certificates the evidence does not carry (SEV-SNP: VCEK, ASK, ARK). */
  readonly certificates?: readonly Uint8Array[];
}

/** Raw bytes, base64 text, or a PEM-style armoured block. */
export function decodeEvidence(input: Uint8Array): Uint8Array {
  const text = Buffer.from(input).toString('latin1').trim();
  const armoured = /^-----BEGIN [A-Z0-9 ]+-----([\s\S]*?)-----END [A-Z0-9 ]+-----$/.exec(text);
  const body = armoured?.[1]?.replace(/\s+/g, '') ?? text.replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(body) && body.length % 4 === 0 && body.length >= 16) {
    return new Uint8Array(Buffer.from(body, 'base64'));
  }
  return input;
}

export function detectFormat(bytes: Uint8Array): EvidenceFormat | undefined {
  const b = Buffer.from(bytes);
  if (b.length >= 8 && b.readUInt16LE(0) === 4 && b.readUInt32LE(4) === 0x81) return 'tdx';
  if (b.length === 0x4a0 && [2, 3].includes(b.readUInt32LE(0))) return 'sev-snp';
  if (b[0] === 0x84 || (b[0] === 0xd2 && b[1] === 0x84)) return 'nitro';
  return undefined;
}

/** Certificates from a PEM bundle or a single DER certificate. */
export function readCertificates(bytes: Uint8Array): Uint8Array[] {
  const pem = pemCertificates(Buffer.from(bytes).toString('latin1'));
  return pem.length > 0 ? pem : [bytes];
}

export function verifyEvidence(input: Uint8Array, options: VerifyEvidenceOptions): EvidenceVerdict | { error: string } {
  const bytes = decodeEvidence(input);
  const platform = options.format === undefined || options.format === 'auto' ? detectFormat(bytes) : options.format;
  if (platform === undefined) return { error: 'cannot tell the evidence format; pass --format' };
  const roots = options.rootFingerprints;
  switch (platform) {
    case 'nitro': {
      const result = verifyNitroDocument(bytes, options.at, roots === undefined ? {} : { rootFingerprints: roots });
      if (!result.ok) return { ok: false, platform, measurement: null, debug: null, reasons: result.reasons, claims: null };
      const { debug, ...claims } = result.claims;
      return { ok: true, platform, measurement: claims.pcrs[0] ?? null, debug, reasons: [], claims };
    }
    case 'sev-snp': {
      const result = verifySevSnpReport(bytes, options.at, {
        certificates: options.certificates ?? [],
        ...(roots === undefined ? {} : { arkFingerprints: roots }),
      });
      if (!result.ok) return { ok: false, platform, measurement: null, debug: null, reasons: result.reasons, claims: null };
      const c = result.claims;
      const claims = {
        version: c.version,
        policy: c.policy,
        vmpl: c.vmpl,
        reportData: c.reportData,
        hostData: c.hostData,
        measurement: c.measurement,
        chipId: c.chipId,
        reportedTcb: c.reportedTcb,
      };
      return { ok: true, platform, measurement: c.measurement, debug: c.debug, reasons: [], claims };
    }
    case 'tdx': {
      const result = verifyTdxQuote(bytes, options.at, roots === undefined ? {} : { rootFingerprints: roots });
      if (!result.ok) return { ok: false, platform, measurement: null, debug: null, reasons: result.reasons, claims: null };
      const c = result.claims;
      const claims = { mrtd: c.mrtd, rtmrs: c.rtmrs, reportData: c.reportData, tdAttributes: c.tdAttributes, mrConfigId: c.mrConfigId };
      return { ok: true, platform, measurement: c.mrtd, debug: c.debug, reasons: [], claims };
    }
  }
}
