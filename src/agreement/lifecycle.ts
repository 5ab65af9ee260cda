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
  // it too, and only if that version itself came about by consent: otherwise a member could amend
  // twice, the second time under signers of its own choosing. Nobody (an operator with the store in
  // hand, a subset of the parties) can put an agreement of their own in place of a signed one.
  const consent = consentOf(versions, own, byHash);
  const statuses = own.map((status, i) => {
    const { consented, required } = consent[i] ?? { consented: true, required: [] };
    if (consented) return status;
    const missing = [...status.missing, ...required.filter((id) => !status.signed.includes(id) && !status.missing.includes(id))];
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

/**
 * Consent for each version: a first version, or an amendment of a version that is not among those
 * given (nothing to check it against; its lineage stops there), is consented; any other version
 * needs the signatures of every signer of its nearest consented ancestor. An unconsented version in
 * between neither blocks a later amendment that everyone signed nor lends its own signers to one.
 */
function consentOf(
  versions: readonly VersionEvidence[],
  own: readonly VersionStatus[],
  byHash: ReadonlyMap<string, number>,
): { consented: boolean; required: string[] }[] {
  const memo = new Map<number, { consented: boolean; required: string[] }>();
  const parentOf = (i: number): number | undefined => {
    const previous = versions[i]?.agreement.previous;
    return previous === null || previous === undefined ? undefined : byHash.get(previous);
  };
  const visit = (i: number, depth: number): { consented: boolean; required: string[] } => {
    const known = memo.get(i);
    if (known !== undefined) return known;
    let result = { consented: true, required: [] as string[] };
    let ancestor = parentOf(i);
    let steps = 0;
    // Too deep means a cycle of `previous` links: nothing on it is consented.
    while (ancestor !== undefined && depth + steps < versions.length && !visit(ancestor, depth + steps + 1).consented) {
      ancestor = parentOf(ancestor);
      steps += 1;
    }
    if (ancestor !== undefined) {
      const required = versions[ancestor]?.agreement.parties.filter((p) => p.roles.includes('signer')).map((p) => p.id) ?? [];
      const cycle = depth + steps >= versions.length;
      result = { consented: !cycle && required.every((id) => own[i]?.signed.includes(id) === true), required };
    }
    memo.set(i, result);
    return result;
  };
  return versions.map((_, i) => visit(i, 0));
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
