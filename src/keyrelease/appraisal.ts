import { appraise, evidenceBinding, verifyEvidence, type EvidenceFormat, type EvidenceVerdict } from '../attestation/index.js';
import type { EnclavePolicy } from '../agreement/index.js';
import type { Reason } from '../errors/index.js';

// Verification then appraisal, as every consumer of enclave evidence runs them: the key-release
// service before it releases, a data owner before it registers a key, the server when a worker
// registers. One function, so the steps cannot drift apart between them.

/** Trust material beside the pinned vendor roots. */
export interface EvidenceTrust {
  /** Development CAs whose sim evidence counts; used only where the agreement lists `sim`. */
  readonly simRoots: readonly string[];
  /** Replaces a platform's pinned roots (tests, or a deployment that pins its own). */
  readonly roots?: Readonly<Partial<Record<EvidenceFormat, readonly string[]>>>;
}

export interface PresentedEvidence {
  readonly platform: EvidenceFormat;
  readonly evidence: Uint8Array;
  /** Certificates the evidence does not carry (SEV-SNP VCEK/ASK/ARK). */
  readonly certificates?: readonly Uint8Array[];
}

export interface AppraiseEnclaveParameters {
  readonly presented: PresentedEvidence;
  readonly policy: EnclavePolicy;
  readonly enclavePublicKey: Uint8Array;
  readonly challenge: Uint8Array;
  readonly challengeIssuedAt: Date;
  readonly agreementHash: string;
  readonly trust: EvidenceTrust;
  readonly now: Date;
}

export type EnclaveAppraisal =
  | { readonly ok: true; readonly verdict: EvidenceVerdict & { measurement: string } }
  | { readonly ok: false; readonly reasons: readonly Reason[]; readonly verdict?: EvidenceVerdict };

/** Verifies evidence under the trust material, without any policy. */
export function verifyPresented(presented: PresentedEvidence, trust: EvidenceTrust, at: Date): EvidenceVerdict | { error: string } {
  const roots = presented.platform === 'sim' ? trust.simRoots : trust.roots?.[presented.platform];
  return verifyEvidence(presented.evidence, {
    format: presented.platform,
    at,
    ...(roots === undefined ? {} : { rootFingerprints: roots }),
    ...(presented.certificates === undefined ? {} : { certificates: presented.certificates }),
  });
}

export function appraiseEnclave(parameters: AppraiseEnclaveParameters): EnclaveAppraisal {
  const { presented, policy, now } = parameters;
  // Refuse a platform the agreement does not list before spending anything on its evidence.
  if (!policy.platforms.includes(presented.platform as (typeof policy.platforms)[number])) {
    return { ok: false, reasons: [{ code: 'platform-not-allowed', message: `the agreement does not allow ${presented.platform}` }] };
  }
  const verdict = verifyPresented(presented, parameters.trust, now);
  if ('error' in verdict) return { ok: false, reasons: [{ code: 'evidence-invalid', message: verdict.error }] };
  const expectedBinding = evidenceBinding({
    enclavePublicKey: parameters.enclavePublicKey,
    challenge: parameters.challenge,
    agreementHash: parameters.agreementHash,
  });
  const appraisal = appraise(verdict, policy, { now, expectedBinding, challengeIssuedAt: parameters.challengeIssuedAt });
  if (!appraisal.ok) return { ok: false, reasons: appraisal.reasons, verdict };
  if (verdict.measurement === null) return { ok: false, reasons: [{ code: 'measurement-not-pinned', message: 'the evidence has no measurement' }], verdict };
  return { ok: true, verdict: { ...verdict, measurement: verdict.measurement } };
}
