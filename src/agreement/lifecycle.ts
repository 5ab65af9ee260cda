import { agreementHash } from './hash.js';
import type { Agreement } from './schema.js';
import { verifyAgreementSignature, type AgreementSignature, type SignatureVerdict } from './signature.js';

// The lifecycle of an agreement version, derived (never stored) from the document, the signatures
// and the time, so that every party computes the same state from the same evidence:
//   draft      no valid signature yet
//   proposed   some signers signed, or all did but validFrom is still ahead
//   active     every party with the signer role signed, and validFrom <= now < validUntil
//   expired    now >= validUntil
//   superseded a later version that amends this one (its `previous` is this hash) is active or superseded

export type AgreementState = 'draft' | 'proposed' | 'active' | 'expired' | 'superseded';

export interface VersionEvidence {
  readonly agreement: Agreement;
  readonly signatures: readonly AgreementSignature[];
}

export interface VersionStatus {
  readonly hash: string;
  readonly version: number;
  readonly state: AgreementState;
  /** Parties whose valid signature is present, in agreement order. */
  readonly signed: readonly string[];
  /** Parties with the signer role that have not signed yet. */
  readonly missing: readonly string[];
  /** Signatures that were presented and refused, with the reason. */
  readonly rejected: readonly Extract<SignatureVerdict, { valid: false }>[];
  /** The hash of the version that superseded this one, if any. */
  readonly supersededBy: string | null;
}

/** The state of one version on its own, ignoring any later versions. */
export function versionStatus(evidence: VersionEvidence, now: Date): VersionStatus {
  const { agreement } = evidence;
  const hash = agreementHash(agreement);
  const verdicts = evidence.signatures.map((s) => verifyAgreementSignature(agreement, hash, s));
  const validSigners = new Set(verdicts.filter((v) => v.valid).map((v) => v.signer));
  const signers = agreement.parties.filter((p) => p.roles.includes('signer')).map((p) => p.id);
  const signed = agreement.parties.map((p) => p.id).filter((id) => validSigners.has(id));
  const missing = signers.filter((id) => !validSigners.has(id));
  const rejected = verdicts.filter((v): v is Extract<SignatureVerdict, { valid: false }> => !v.valid);
  const t = now.getTime();
  let state: AgreementState;
  if (t >= Date.parse(agreement.validUntil)) state = 'expired';
  else if (signed.length === 0) state = 'draft';
  else if (missing.length === 0 && t >= Date.parse(agreement.validFrom)) state = 'active';
  else state = 'proposed';
  return { hash, version: agreement.version, state, signed, missing, rejected, supersededBy: null };
}

/**
 * States of every version of a collaboration. A version is superseded once a version amending it
 * is active or itself superseded; the walk goes from the newest version back along `previous`.
 */
export function collaborationStatus(versions: readonly VersionEvidence[], now: Date): VersionStatus[] {
  const own = versions.map((v) => versionStatus(v, now));
  const byHash = new Map(own.map((s, i) => [s.hash, i]));
  // Consent: an amendment takes effect only once every signer of the version it amends has signed
  // it too, so that nobody (an operator with the store in hand, a subset of the parties) can
  // replace an agreement the others signed.
  const statuses = own.map((status, i) => {
    const previous = versions[i]?.agreement.previous;
    const j = previous === null || previous === undefined ? undefined : byHash.get(previous);
    const older = j === undefined ? undefined : versions[j];
    if (older === undefined) return status;
    const needed = older.agreement.parties.filter((p) => p.roles.includes('signer')).map((p) => p.id);
    const lacking = needed.filter((id) => !status.signed.includes(id) && !status.missing.includes(id));
    if (lacking.length === 0) return status;
    const missing = [...status.missing, ...lacking];
    return status.state === 'active' ? { ...status, state: 'proposed' as const, missing } : { ...status, missing };
  });
  const result = [...statuses];
  const order = [...versions.keys()].sort((a, b) => (versions[b]?.agreement.version ?? 0) - (versions[a]?.agreement.version ?? 0));
  for (const i of order) {
    const current = result[i];
    const previous = versions[i]?.agreement.previous;
    if (current === undefined || previous === null || previous === undefined) continue;
    const j = byHash.get(previous);
    const older = j === undefined ? undefined : result[j];
    if (j !== undefined && older !== undefined && (current.state === 'active' || current.state === 'superseded')) {
      result[j] = { ...older, state: 'superseded', supersededBy: current.hash };
    }
  }
  return result;
}

/** The active version of a collaboration, if any. */
export function activeVersion(versions: readonly VersionEvidence[], now: Date): VersionStatus | undefined {
  return collaborationStatus(versions, now).find((s) => s.state === 'active');
}

/**
 * The active agreement with its hash and lineage: the active hash, then each version it amends,
 * back along `previous` as far as the given versions go. Whoever holds a key registered under one
 * version releases it only to an agreement whose lineage includes that version.
 */
export function activeAgreement(
  versions: readonly VersionEvidence[],
  now: Date,
): { agreement: Agreement; hash: string; lineage: string[] } | undefined {
  const statuses = collaborationStatus(versions, now);
  const index = statuses.findIndex((s) => s.state === 'active');
  const active = statuses[index];
  const agreement = versions[index]?.agreement;
  if (active === undefined || agreement === undefined) return undefined;
  const byHash = new Map(statuses.map((s, i) => [s.hash, versions[i]?.agreement]));
  const lineage = [active.hash];
  for (let previous = agreement.previous; previous !== null && byHash.has(previous) && !lineage.includes(previous); ) {
    lineage.push(previous);
    previous = byHash.get(previous)?.previous ?? null;
  }
  return { agreement, hash: active.hash, lineage };
}
