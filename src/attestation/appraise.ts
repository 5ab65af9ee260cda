import { createHash } from 'node:crypto';
import type { EvidenceVerdict } from './evidence.js';

// Appraisal: a verified claim set against an agreement's enclave policy. Verification says the
// evidence is authentic; appraisal says it is acceptable here and now, for this key and challenge.

export interface EnclavePolicyLike {
  readonly platforms: readonly string[];
  readonly measurements: readonly string[];
  readonly maxEvidenceAgeSeconds: number;
  readonly allowDebug: boolean;
}

export type AppraisalCode =
  | 'evidence-invalid'
  | 'platform-not-allowed'
  | 'measurement-not-pinned'
  | 'debug-enclave'
  | 'evidence-stale'
  | 'binding-mismatch';

export interface AppraisalReason {
  readonly code: AppraisalCode;
  readonly message: string;
}

export type Appraisal = { readonly ok: true } | { readonly ok: false; readonly reasons: readonly AppraisalReason[] };

const BINDING_LABEL = 'malus.attestation-binding/v1';

/**
 * The value an enclave puts in its evidence (Nitro `user_data`, SEV-SNP and TDX `report_data`) to
 * bind its HPKE public key, the single-use challenge and the agreement hash. Each part is
 * length-prefixed so that no two inputs share an encoding (docs/attestation.md).
 */
export function evidenceBinding(parts: { enclavePublicKey: Uint8Array; challenge: Uint8Array; agreementHash: string }): Uint8Array {
  const hash = createHash('sha256').update(BINDING_LABEL);
  for (const part of [parts.enclavePublicKey, parts.challenge, new TextEncoder().encode(parts.agreementHash)]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    hash.update(length).update(part);
  }
  return new Uint8Array(hash.digest());
}

/** Where each platform carries the binding, as lower-case hex. */
function boundValue(verdict: EvidenceVerdict): string | undefined {
  const claims = verdict.claims ?? {};
  switch (verdict.platform) {
    case 'nitro':
    case 'sim':
      return typeof claims.userData === 'string' ? claims.userData : undefined;
    case 'nvidia':
      // The verifier chooses the 32-byte SPDM request nonce: the binding goes there.
      return typeof claims.requestNonce === 'string' ? claims.requestNonce : undefined;
    case 'sev-snp':
    case 'tdx':
      // report_data is 64 bytes: the binding, then 32 zero bytes.
      return typeof claims.reportData === 'string' && claims.reportData.endsWith('0'.repeat(64)) ? claims.reportData.slice(0, 64) : undefined;
  }
}

export interface AppraiseOptions {
  readonly now: Date;
  readonly expectedBinding: Uint8Array;
  /** When the challenge was issued: the evidence can be no older. */
  readonly challengeIssuedAt: Date;
}

export function appraise(verdict: EvidenceVerdict, policy: EnclavePolicyLike, options: AppraiseOptions): Appraisal {
  if (!verdict.ok) {
    return { ok: false, reasons: [{ code: 'evidence-invalid', message: verdict.reasons.map((r) => `${r.code}: ${r.message}`).join('; ') }] };
  }
  const reasons: AppraisalReason[] = [];
  if (!policy.platforms.includes(verdict.platform)) {
    reasons.push({ code: 'platform-not-allowed', message: `the agreement does not allow ${verdict.platform}` });
  }
  if (verdict.measurement === null || !policy.measurements.includes(verdict.measurement)) {
    reasons.push({ code: 'measurement-not-pinned', message: `measurement ${verdict.measurement ?? '-'} is not pinned in the agreement` });
  }
  if (verdict.debug !== false && !policy.allowDebug) {
    reasons.push({ code: 'debug-enclave', message: 'the enclave runs in debug mode' });
  }
  const age = (options.now.getTime() - options.challengeIssuedAt.getTime()) / 1000;
  const timestamp = verdict.claims?.timestamp;
  const evidenceAge = typeof timestamp === 'number' ? (options.now.getTime() - timestamp) / 1000 : age;
  if (age > policy.maxEvidenceAgeSeconds || evidenceAge > policy.maxEvidenceAgeSeconds || evidenceAge < -60) {
    reasons.push({ code: 'evidence-stale', message: `the evidence is older than ${policy.maxEvidenceAgeSeconds} s or from the future` });
  }
  if (boundValue(verdict) !== Buffer.from(options.expectedBinding).toString('hex')) {
    reasons.push({ code: 'binding-mismatch', message: "the evidence does not bind this enclave's key, this challenge and this agreement" });
  }
  return reasons.length === 0 ? { ok: true } : { ok: false, reasons };
}
