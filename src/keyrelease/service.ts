import { createHash } from 'node:crypto';
import type { Agreement } from '../agreement/index.js';
import { evidenceBinding, type Attester, type EvidenceFormat } from '../attestation/index.js';
import { hpkeOpen, hpkeSeal, type HpkeSealed, type KeyPair } from '../crypto/index.js';
import { MalusError, type Reason } from '../errors/index.js';
import type { LogEvent } from '../ledger/index.js';
import type { LogAppend, Store } from '../store/index.js';
import { appraiseEnclave, type EvidenceTrust, type PresentedEvidence } from './appraisal.js';
import { consumeChallenge } from './challenge.js';
import type { KeyWrapper } from './master-key.js';

// The key-release service (docs/key-release.md). Providers register data keys sealed to the
// service; an attested enclave gets them back, sealed to its own key, for one job, only when its
// fresh evidence satisfies the enclave policy of the collaboration's active agreement. Every grant
// and every denial is a log entry.

export const REGISTRATION_INFO = 'malus.key-registration/v1';
export const RELEASE_INFO = 'malus.key-release/v1';
const DEK_BYTES = 32;

export interface ActiveAgreement {
  readonly agreement: Agreement;
  readonly hash: string;
  /** The active hash, then each version it amends, back along `previous` as far as the versions go. */
  readonly lineage: readonly string[];
}

/** Where the service learns agreements; it must verify them itself when they come from afar. */
export interface AgreementSource {
  active(collaborationId: string, now: Date): Promise<ActiveAgreement | undefined>;
  /** Whether the collaboration exists at all (in any state). */
  exists(collaborationId: string): Promise<boolean>;
}

export interface ReleaseJob {
  readonly id: string;
  readonly collaborationId: string;
  readonly agreementHash: string;
  readonly datasets: readonly string[];
  readonly state: string;
  readonly workerId: string | null;
}

export interface JobSource {
  /** The job, if it exists and belongs to that collaboration. */
  get(collaborationId: string, jobId: string): Promise<ReleaseJob | undefined>;
}

/**
 * Where decisions are recorded. `local`: in the same store, inside the transaction that makes
 * the decision. `remote`: sent on to the collaboration's log (a party's own service).
 */
export type DecisionLog =
  | { readonly kind: 'local'; readonly toAppend: (event: LogEvent) => LogAppend; readonly append: (events: LogEvent[]) => Promise<unknown> }
  | { readonly kind: 'remote'; readonly record: (events: LogEvent[]) => Promise<void> };

export interface KeyReleaseContext {
  readonly store: Pick<Store, 'keys'>;
  readonly wrapper: KeyWrapper;
  readonly agreements: AgreementSource;
  readonly jobs: JobSource;
  readonly decisions: DecisionLog;
  readonly trust: EvidenceTrust;
  /** The service's own HPKE key: providers seal data keys to it. */
  readonly encryption: KeyPair;
  /** Who the log says decided: the server, or the party running its own service. */
  readonly actor: LogEvent['actor'];
  readonly now: () => Date;
}

/** The service's own evidence for a provider: it binds the service key, the provider's nonce and the active agreement. */
export async function attestService(
  ctx: KeyReleaseContext,
  attester: Attester,
  parameters: { collaborationId: string; nonce: Uint8Array },
): Promise<{ agreementHash: string; platform: EvidenceFormat; evidence: Uint8Array; certificates: Uint8Array[] }> {
  const now = ctx.now();
  const active = await ctx.agreements.active(parameters.collaborationId, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${parameters.collaborationId} has no active agreement`);
  const binding = evidenceBinding({ enclavePublicKey: ctx.encryption.publicKey, challenge: parameters.nonce, agreementHash: active.hash });
  const produced = await attester.attest({ binding, publicKey: ctx.encryption.publicKey, now });
  return { agreementHash: active.hash, platform: attester.platform, ...produced };
}

export const sha256Ref = (bytes: Uint8Array | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * A commitment to a data key that reveals nothing of it (the key is 256 random bits): logged at
 * registration and repeated in the enclave's signed job result, so an owner can check that the
 * enclave holds exactly the key it registered.
 */
export function keyCommitment(dek: Uint8Array, collaborationId: string, datasetId: string): string {
  return sha256Ref(Buffer.concat([Buffer.from(`malus.key-commitment/v1\0${collaborationId}\0${datasetId}\0`), dek]));
}

/** The AAD a provider seals a data key under, naming exactly where it goes. */
export function registrationAad(p: { collaborationId: string; datasetId: string; table: string; owner: string }): Uint8Array {
  return new TextEncoder().encode([p.collaborationId, p.datasetId, p.table, p.owner].join('\0'));
}

/** The AAD of a released key: the job, the dataset and the agreement it was released under. */
export function releaseAad(p: { jobId: string; datasetId: string; agreementHash: string }): Uint8Array {
  return new TextEncoder().encode([p.jobId, p.datasetId, p.agreementHash].join('\0'));
}

async function record(ctx: KeyReleaseContext, events: LogEvent[]): Promise<void> {
  if (ctx.decisions.kind === 'local') await ctx.decisions.append(events);
  else await ctx.decisions.record(events);
}

export interface RegisterKeyParameters {
  readonly collaborationId: string;
  readonly datasetId: string;
  readonly table: string;
  readonly caller: string;
  readonly sealed: HpkeSealed;
}

/** Registers a provider's data key: the caller must be the table's owner in the active agreement. */
export async function registerKey(
  ctx: KeyReleaseContext,
  parameters: RegisterKeyParameters,
): Promise<{ created: boolean; keyCommitment: string }> {
  const now = ctx.now();
  const active = await ctx.agreements.active(parameters.collaborationId, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${parameters.collaborationId} has no active agreement`);
  const party = active.agreement.parties.find((p) => p.id === parameters.caller);
  const table = active.agreement.tables.find((t) => t.name === parameters.table);
  if (party === undefined || !party.roles.includes('provider')) {
    throw new MalusError('forbidden', 'only a data provider of the active agreement registers data keys');
  }
  if (table?.owner !== parameters.caller) {
    throw new MalusError('forbidden', `table ${parameters.table} is not yours in the active agreement`);
  }
  // A party's own service holds that party's keys only: it could not log anyone else's registration.
  if (ctx.actor.kind === 'party' && ctx.actor.id !== parameters.caller) {
    throw new MalusError('forbidden', "this key-release service holds only its own party's keys");
  }
  const context = { collaborationId: parameters.collaborationId, datasetId: parameters.datasetId, owner: parameters.caller };
  const dek = await hpkeOpen(ctx.encryption.secretKey, parameters.sealed, REGISTRATION_INFO, registrationAad({ ...context, table: parameters.table }));
  if (dek?.length !== DEK_BYTES) {
    dek?.fill(0);
    throw new MalusError('invalid-input', 'the sealed key does not open under this service key for this dataset, or is not 32 bytes');
  }
  try {
    const commitment = keyCommitment(dek, parameters.collaborationId, parameters.datasetId);
    const event: LogEvent = {
      format: 'malus.event/v1',
      type: 'key.registered',
      collaboration: parameters.collaborationId,
      actor: { kind: 'party', id: parameters.caller },
      time: now.toISOString(),
      dataset: parameters.datasetId,
      table: parameters.table,
      owner: parameters.caller,
      keyCommitment: commitment,
    };
    const recordRow = {
      datasetId: parameters.datasetId,
      collaborationId: parameters.collaborationId,
      table: parameters.table,
      owner: parameters.caller,
      wrappedKey: await ctx.wrapper.wrap(dek, context),
      keyCommitment: commitment,
      agreementHash: active.hash,
      createdAt: now.toISOString(),
    };
    if (ctx.decisions.kind === 'local') {
      const outcome = await ctx.store.keys.putKey(recordRow, [ctx.decisions.toAppend(event)]);
      return { created: outcome === 'added', keyCommitment: commitment };
    }
    // Remote log: record first, so that no key is ever held without its entry. A registration
    // that is logged and then fails to store is retried by the provider and logged again.
    const [known] = await ctx.store.keys.keysOf(parameters.collaborationId, [parameters.datasetId]);
    if (known !== undefined) {
      if (known.keyCommitment === commitment && known.owner === parameters.caller && known.table === parameters.table) {
        return { created: false, keyCommitment: commitment };
      }
      throw new MalusError('conflict', `dataset ${parameters.datasetId} already has a different data key`);
    }
    await ctx.decisions.record([event]);
    const outcome = await ctx.store.keys.putKey(recordRow);
    return { created: outcome === 'added', keyCommitment: commitment };
  } finally {
    dek.fill(0);
  }
}

export interface ReleaseParameters {
  readonly collaborationId: string;
  readonly jobId: string;
  /** The caller's request-signing key (base64url): the worker that holds the job. */
  readonly workerId: string;
  readonly challenge: string;
  readonly presented: PresentedEvidence;
  /** The enclave's HPKE public key, bound into the evidence. */
  readonly enclaveKey: Uint8Array;
}

export interface ReleasedKey {
  readonly dataset: string;
  readonly sealed: HpkeSealed;
}

export type ReleaseDecision =
  | { readonly granted: true; readonly agreementHash: string; readonly keys: readonly ReleasedKey[]; readonly measurement: string; readonly platform: EvidenceFormat }
  | { readonly granted: false; readonly reasons: readonly Reason[] };

const deny = (code: string, message: string): Reason => ({ code, message });

/**
 * The release pipeline: challenge, job, agreement, evidence, keys; then seal and record. Each step
 * that fails ends the pipeline with its reason. Nothing in a denial names a dataset.
 */
export async function releaseKeys(ctx: KeyReleaseContext, parameters: ReleaseParameters): Promise<ReleaseDecision> {
  const now = ctx.now();
  const evidenceHash = sha256Ref(parameters.presented.evidence);
  let agreementHash: string | null = null;
  const denied = async (reasons: Reason[]): Promise<ReleaseDecision> => {
    await record(ctx, [
      {
        format: 'malus.event/v1',
        type: 'key.denied',
        collaboration: parameters.collaborationId,
        actor: ctx.actor,
        time: now.toISOString(),
        job: /^job-[0-9a-f]{32}$/.test(parameters.jobId) ? parameters.jobId : null,
        agreement: agreementHash,
        evidence: evidenceHash,
        reasons: reasons.map((r) => r.code),
      },
    ]);
    return { granted: false, reasons };
  };

  // 1. The challenge: issued here, unused, younger than its 60 s.
  const challenge = await consumeChallenge(ctx.store, parameters.challenge, 'release', now);
  if (challenge === undefined) return denied([deny('challenge-invalid', 'the challenge is unknown, used or expired')]);

  // 2. The job: of this collaboration, running, held by the caller.
  const job = await ctx.jobs.get(parameters.collaborationId, parameters.jobId);
  if (job?.collaborationId !== parameters.collaborationId || job.state !== 'running' || job.workerId !== parameters.workerId) {
    return denied([deny('job-mismatch', 'no running job of this collaboration is held by this worker under that id')]);
  }

  // 3. The agreement: active now, and the one the job was submitted under.
  const active = await ctx.agreements.active(parameters.collaborationId, now);
  if (active === undefined) return denied([deny('agreement-not-active', 'the collaboration has no active agreement')]);
  agreementHash = active.hash;
  if (job.agreementHash !== active.hash) {
    return denied([deny('agreement-superseded', 'the job was submitted under an agreement that is no longer the active one')]);
  }

  // 4. The evidence: authentic, and acceptable to the agreement's enclave policy, for this key and challenge.
  const appraisal = appraiseEnclave({
    presented: parameters.presented,
    policy: active.agreement.enclave,
    enclavePublicKey: parameters.enclaveKey,
    challenge: challenge.bytes,
    challengeIssuedAt: challenge.issuedAt,
    agreementHash: active.hash,
    trust: ctx.trust,
    now,
  });
  if (!appraisal.ok) return denied([...appraisal.reasons]);

  // 5. The keys this service holds for the job's datasets, all of this collaboration.
  const held = await ctx.store.keys.keysOf(job.collaborationId, job.datasets);
  if (held.length === 0) return denied([deny('dataset-unavailable', 'this service holds no key for the job')]);
  // A key goes only where its owner agreed: under the agreement it was registered with, or one
  // that amends it with every signer's consent (an agreement put in its place is not that).
  if (held.some((k) => !active.lineage.includes(k.agreementHash))) {
    return denied([deny('agreement-lineage', 'the active agreement does not descend from the one a key was registered under')]);
  }

  const keys: ReleasedKey[] = [];
  for (const key of held) {
    const dek = await ctx.wrapper.unwrap(key.wrappedKey, { collaborationId: key.collaborationId, datasetId: key.datasetId, owner: key.owner });
    if (dek === undefined) return denied([deny('key-unwrap-failed', 'a stored key does not unwrap under the master key')]);
    try {
      const sealed = await hpkeSeal(parameters.enclaveKey, dek, RELEASE_INFO, releaseAad({ jobId: job.id, datasetId: key.datasetId, agreementHash: active.hash }));
      keys.push({ dataset: key.datasetId, sealed });
    } finally {
      dek.fill(0);
    }
  }
  await record(ctx, [
    {
      format: 'malus.event/v1',
      type: 'key.granted',
      collaboration: job.collaborationId,
      actor: ctx.actor,
      time: now.toISOString(),
      job: job.id,
      agreement: active.hash,
      datasets: keys.map((k) => k.dataset),
      enclave: {
        platform: appraisal.verdict.platform,
        measurement: appraisal.verdict.measurement,
        evidence: evidenceHash,
        encryptionKey: sha256Ref(parameters.enclaveKey),
      },
    },
  ]);
  return { granted: true, agreementHash: active.hash, keys, measurement: appraisal.verdict.measurement, platform: appraisal.verdict.platform };
}
