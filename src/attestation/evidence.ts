import type { EvidenceFormat } from './formats.js';
import { verifyNitroDocument } from './nitro.js';
import { verifyNvidiaReport } from './nvidia.js';
import type { AttestationReason } from './reasons.js';
import { verifySevSnpReport } from './sev-snp.js';
import { verifySimEvidence } from './sim.js';
import { verifyTdxQuote } from './tdx.js';
import { pemCertificates } from './x509-chain.js';

// One entry point over the platform verifiers: detect the format, verify, and report the claims
// under the names `malus attest verify --json` prints. Adding a platform is: its name here, its
// bytes in detectFormat if they are unambiguous, and one case in verifyEvidence's switch.

export { EVIDENCE_FORMATS, type EvidenceFormat } from './formats.js';

export interface EvidenceVerdict {
  readonly ok: boolean;
  readonly platform: EvidenceFormat;
  /**
   * PCR0 for nitro, MEASUREMENT for sev-snp, MRTD for tdx, SHA-384 of the signed measurement
   * record for nvidia; null when the evidence did not verify.
   */
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
  /** Certificates the evidence does not carry (SEV-SNP: VCEK, ASK, ARK; NVIDIA: the device chain). */
  readonly certificates?: readonly Uint8Array[];
}

/** Input larger than this is not decoded from text: every verifier caps its evidence well below it. */
const MAX_TEXT_BYTES = 1024 * 1024;

/** Raw bytes, hex text (NVIDIA's tools write it), base64 text, or a PEM-style armoured block. */
export function decodeEvidence(input: Uint8Array): Uint8Array {
  if (input.length > MAX_TEXT_BYTES) return input;
  const text = Buffer.from(input).toString('latin1').trim();
  // Hex digits are base64 digits too: hex is tried first and kept only if it names a format.
  if (/^(?:[0-9a-fA-F]{2}){8,}$/.test(text)) {
    const hex = new Uint8Array(Buffer.from(text, 'hex'));
    if (detectFormat(hex) !== undefined) return hex;
  }
  const armoured = /^-----BEGIN [A-Z0-9 ]+-----([\s\S]*?)-----END [A-Z0-9 ]+-----$/.exec(text);
  const body = armoured?.[1]?.replace(/\s+/g, '') ?? text.replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(body) && body.length % 4 === 0 && body.length >= 16) {
    return new Uint8Array(Buffer.from(body, 'base64'));
  }
  return input;
}

export function detectFormat(bytes: Uint8Array): EvidenceFormat | undefined {
  const b = Buffer.from(bytes);
  if (b.length >= 8 && [4, 5].includes(b.readUInt16LE(0)) && b.readUInt32LE(4) === 0x81) return 'tdx';
  if (b.length === 0x4a0 && [2, 3].includes(b.readUInt32LE(0))) return 'sev-snp';
  if (b[0] === 0x84 || (b[0] === 0xd2 && b[1] === 0x84)) return 'nitro';
  // SPDM 1.1 (version byte 0x11) GET_MEASUREMENTS (0xe0): no other format starts so.
  if (b[0] === 0x11 && b[1] === 0xe0) return 'nvidia';
  return undefined;
}

/** Certificates from a PEM bundle or a single DER certificate. */
export function readCertificates(bytes: Uint8Array): Uint8Array[] {
  const pem = pemCertificates(Buffer.from(bytes).toString('latin1'));
  return pem.length > 0 ? pem : [bytes];
}

function refused(platform: EvidenceFormat, reasons: readonly AttestationReason[]): EvidenceVerdict {
  return { ok: false, platform, measurement: null, debug: null, reasons, claims: null };
}

export function verifyEvidence(input: Uint8Array, options: VerifyEvidenceOptions): EvidenceVerdict | { error: string } {
  const bytes = decodeEvidence(input);
  const platform = options.format === undefined || options.format === 'auto' ? detectFormat(bytes) : options.format;
  if (platform === undefined) return { error: 'cannot tell the evidence format; pass --format' };
  const roots = options.rootFingerprints;
  switch (platform) {
    case 'nitro': {
      const result = verifyNitroDocument(bytes, options.at, roots === undefined ? {} : { rootFingerprints: roots });
      if (!result.ok) return refused(platform, result.reasons);
      const { debug, ...claims } = result.claims;
      return { ok: true, platform, measurement: claims.pcrs[0] ?? null, debug, reasons: [], claims };
    }
    case 'sim': {
      // Sim evidence has Nitro's shape, so it is never auto-detected: it is sim only when asked for,
      // and it verifies only under a development CA given as the root.
      const result = verifySimEvidence(bytes, options.at, { rootFingerprints: roots ?? [] });
      if (!result.ok) return refused(platform, result.reasons);
      const { debug, ...claims } = result.claims;
      return { ok: true, platform, measurement: claims.pcrs[0] ?? null, debug, reasons: [], claims };
    }
    case 'sev-snp': {
      const result = verifySevSnpReport(bytes, options.at, {
        certificates: options.certificates ?? [],
        ...(roots === undefined ? {} : { arkFingerprints: roots }),
      });
      if (!result.ok) return refused(platform, result.reasons);
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
        signingKey: c.signingKey,
        productName: c.productName,
      };
      return { ok: true, platform, measurement: c.measurement, debug: c.debug, reasons: [], claims };
    }
    case 'tdx': {
      const result = verifyTdxQuote(bytes, options.at, roots === undefined ? {} : { rootFingerprints: roots });
      if (!result.ok) return refused(platform, result.reasons);
      const c = result.claims;
      const claims = { version: c.version, mrtd: c.mrtd, rtmrs: c.rtmrs, reportData: c.reportData, tdAttributes: c.tdAttributes, mrConfigId: c.mrConfigId };
      return { ok: true, platform, measurement: c.mrtd, debug: c.debug, reasons: [], claims };
    }
    case 'nvidia': {
      const result = verifyNvidiaReport(bytes, options.at, {
        certificates: options.certificates ?? [],
        ...(roots === undefined ? {} : { rootFingerprints: roots }),
      });
      if (!result.ok) return refused(platform, result.reasons);
      const c = result.claims;
      const claims = { spdmVersion: c.spdmVersion, requestNonce: c.requestNonce, responseNonce: c.responseNonce, measurements: c.measurements };
      // A GPU has no debug mode in this evidence: the measurements say which firmware it runs.
      return { ok: true, platform, measurement: c.recordDigest, debug: false, reasons: [], claims };
    }
  }
}
