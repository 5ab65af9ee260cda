import { randomBytes } from 'node:crypto';
import { appraise, evidenceBinding, type Attester, type EvidenceFormat } from '../attestation/index.js';
import type { JobView, WorkerView } from '../api/index.js';
import { fromBase64Url, type KeyPair } from '../crypto/index.js';
import { SIMULATED_NOTICE, registrationSubject, statementHash, verifyStatementSignature, type SignedStatement } from '../engine/index.js';
import { MalusError } from '../errors/index.js';
import {
  consumeChallenge,
  sha256Ref,
  verifyPresented,
  type EvidenceTrust,
  type KeyReleaseContext,
  type KeyWrapper,
} from '../keyrelease/index.js';
import type { LogEvent } from '../ledger/index.js';
import type { JobRecord, Store } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import { activeAgreementOf, versionEvidence } from './collaborations.js';
import type { ConfidentialServices, ServerContext } from './context.js';
import type { TransparencyLog } from './transparency.js';
import { toLogAppend } from './transparency.js';

// The server's side of confidential compute: the embedded key-release service, the registry of
// enclave workers, and the job queue they pull from (docs/key-release.md, docs/enclave.md).

export interface ConfidentialOptions {
  readonly store: Store;
  readonly log: TransparencyLog;
  readonly now: () => Date;
  readonly wrapper: KeyWrapper;
  readonly encryption: KeyPair;
  readonly attester: Attester;
  readonly trust: EvidenceTrust;
  readonly simRoot?: Uint8Array;
}

/** The embedded key-release service over the server's own store and log. */
export function createConfidentialServices(options: ConfidentialOptions): ConfidentialServices {
  const ctx: ServerContext = { store: options.store, log: options.log, now: options.now };
  const keyRelease: KeyReleaseContext = {
    store: options.store,
    wrapper: options.wrapper,
    agreements: {
      active: (id, now) => activeAgreementOf(ctx, id, now),
      exists: async (id) => (await options.store.collaborations.listVersions(id)).length > 0,
    },
    jobs: {
      get: async (collaborationId, id) => {
        const job = await options.store.jobs.get(id);
        return job?.collaborationId === collaborationId ? job : undefined;
      },
    },
    decisions: { kind: 'local', toAppend: toLogAppend, append: (events) => options.log.append(events) },
    trust: options.trust,
    encryption: options.encryption,
    actor: { kind: 'server', id: 'malus-kms' },
    now: options.now,
  };
  return {
    keyRelease,
    attester: options.attester,
    trust: options.trust,
    ...(options.simRoot === undefined ? {} : { simRoot: options.simRoot }),
  };
}

export function requireConfidential(ctx: ServerContext): ConfidentialServices {
  if (ctx.confidential === undefined) throw new MalusError('not-found', 'this server runs no key-release service');
  return ctx.confidential;
}

/** A registered worker, or 403: only attested workers take jobs or ask for keys. */
export async function requireWorker(ctx: ServerContext, caller: AuthenticatedParty): Promise<WorkerView> {
  const worker = await ctx.store.workers.get(caller.signingKey);
  if (worker === undefined) throw new MalusError('forbidden', 'register this worker with evidence first (POST /v1/workers)');
  return worker as WorkerView;
}

export interface WorkerRegistration {
  readonly platform: EvidenceFormat;
  readonly evidence: string;
  readonly certificates: readonly string[];
  readonly encryptionKey: string;
  readonly challenge: string;
}

/** Decodes a base64url field of a request, or refuses it naming its path. */
export function base64UrlField(text: string, path: string): Uint8Array {
  const decoded = fromBase64Url(text);
  if (decoded === undefined) throw new MalusError('invalid-input', `${path} is not canonical base64url`, { issues: [{ path, message: 'not canonical base64url' }] });
  return decoded;
}

/**
 * Registers a worker: its evidence must be authentic, not debug, fresh, and bind its encryption key
 * to a registration challenge (with the empty agreement hash). The measurement recorded is the one
 * the evidence shows, never one the worker claims.
 */
export async function registerWorker(ctx: ServerContext, caller: AuthenticatedParty, body: WorkerRegistration): Promise<WorkerView> {
  const services = requireConfidential(ctx);
  const now = ctx.now();
  const encryptionKey = base64UrlField(body.encryptionKey, 'body.encryptionKey');
  const evidence = base64UrlField(body.evidence, 'body.evidence');
  const certificates = body.certificates.map((c, i) => base64UrlField(c, `body.certificates[${i}]`));
  const challenge = await consumeChallenge(ctx.store, body.challenge, 'registration', now);
  if (challenge === undefined) {
    throw new MalusError('attestation-refused', 'worker registration refused', { reasons: [{ code: 'challenge-invalid', message: 'the challenge is unknown, used or expired' }] });
  }
  const verdict = verifyPresented({ platform: body.platform, evidence, certificates }, services.trust, now);
  if ('error' in verdict) throw new MalusError('attestation-refused', 'worker registration refused', { reasons: [{ code: 'evidence-invalid', message: verdict.error }] });
  const appraisal = appraise(
    verdict,
    { platforms: [body.platform], measurements: verdict.measurement === null ? [] : [verdict.measurement], maxEvidenceAgeSeconds: 60, allowDebug: false },
    {
      now,
      expectedBinding: evidenceBinding({ enclavePublicKey: encryptionKey, challenge: challenge.bytes, agreementHash: registrationSubject(caller.signingKey) }),
      challengeIssuedAt: challenge.issuedAt,
    },
  );
  if (!appraisal.ok) throw new MalusError('attestation-refused', 'worker registration refused', { reasons: [...appraisal.reasons] });
  if (verdict.measurement === null) {
    throw new MalusError('attestation-refused', 'worker registration refused', { reasons: [{ code: 'measurement-not-pinned', message: 'the evidence has no measurement' }] });
  }
  const record = {
    id: caller.signingKey,
    platform: body.platform,
    measurement: verdict.measurement,
    encryptionKey: body.encryptionKey,
    evidenceHash: sha256Ref(evidence),
    registeredAt: now.toISOString(),
    lastSeenAt: now.toISOString(),
  };
  await ctx.store.workers.upsert(record);
  return record as WorkerView;
}

export function jobView(job: JobRecord): JobView {
  return {
    id: job.id,
    collaboration: job.collaborationId,
    agreement: job.agreementHash,
    kind: job.kind,
    datasets: job.datasets,
    state: job.state,
    submittedBy: job.submittedBy,
    worker: job.workerId,
    result: job.result as SignedStatement | null as JobView['result'],
    error: job.error,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

/** What a job lists and a worker claims by: the platform and the measurement together. */
export function claimKey(platform: string, measurement: string): string {
  return `${platform}/${measurement}`;
}

/** Queues a job: the caller must be an analyst or provider of the active agreement. */
export async function submitJob(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  body: { kind: 'key-check' | 'dataset-check'; datasets: string[] },
): Promise<JobView> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  const now = ctx.now();
  const active = await activeAgreementOf(ctx, id, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${id} has no active agreement`);
  const party = active.agreement.parties.find((p) => p.id === caller.id);
  if (party === undefined || !party.roles.some((r) => r === 'analyst' || r === 'provider')) {
    throw new MalusError('forbidden', 'only an analyst or a provider of the active agreement submits jobs');
  }
  if (body.kind === 'dataset-check') {
    // Fast feedback only: the enclave checks every manifest and ciphertext again itself.
    const missing: string[] = [];
    for (const dataset of body.datasets) if ((await ctx.store.datasets.get(id, dataset)) === undefined) missing.push(dataset);
    if (missing.length > 0) throw new MalusError('conflict', `no complete upload of dataset ${missing.join(', ')} in collaboration ${id}`);
  }
  const job: JobRecord = {
    id: `job-${randomBytes(16).toString('hex')}`,
    collaborationId: id,
    agreementHash: active.hash,
    kind: body.kind,
    spec: { kind: body.kind, datasets: body.datasets },
    datasets: body.datasets,
    // Claim keys: a worker takes the job only with a platform and a measurement the agreement allows.
    measurements: active.agreement.enclave.platforms.flatMap((platform) => active.agreement.enclave.measurements.map((m) => claimKey(platform, m))),
    state: 'queued',
    submittedBy: caller.id,
    workerId: null,
    result: null,
    error: null,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  const event: LogEvent = {
    format: 'malus.event/v1',
    type: 'job.submitted',
    collaboration: id,
    actor: { kind: 'party', id: caller.id },
    time: now.toISOString(),
    job: job.id,
    kind: job.kind,
    agreement: active.hash,
    datasets: job.datasets,
  };
  await ctx.store.jobs.create(job, [toLogAppend(event)]);
  return jobView(job);
}

export async function getJob(ctx: ServerContext, caller: AuthenticatedParty, id: string, jobId: string): Promise<JobView> {
  const job = await ctx.store.jobs.get(jobId);
  if (job?.collaborationId !== id || !(await ctx.store.collaborations.isMember(id, caller.id))) {
    throw new MalusError('not-found', `job ${jobId} not found`);
  }
  return jobView(job);
}

export async function listJobs(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<JobView[]> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  return (await ctx.store.jobs.list(id)).map(jobView);
}

/** Gives the caller's worker the oldest job whose agreement pins its measurement, with the agreement evidence. */
export async function claimJob(ctx: ServerContext, caller: AuthenticatedParty) {
  const worker = await requireWorker(ctx, caller);
  const now = ctx.now();
  await ctx.store.workers.touch(worker.id, now);
  const job = await ctx.store.jobs.claim(worker.id, claimKey(worker.platform, worker.measurement), now);
  if (job === undefined) return { job: null };
  return {
    job: {
      id: job.id,
      collaboration: job.collaborationId,
      agreement: job.agreementHash,
      kind: job.kind,
      datasets: job.datasets,
      heldByControlPlane: (await ctx.store.keys.keysOf(job.collaborationId, job.datasets)).map((k) => k.datasetId),
      versions: await versionEvidence(ctx, job.collaborationId),
    },
  };
}

/** Ends the caller's job with a signed result (checked here) or an error. */
export async function finishJob(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  jobId: string,
  body: { result: SignedStatement } | { error: string },
): Promise<JobView> {
  const worker = await requireWorker(ctx, caller);
  const job = await ctx.store.jobs.get(jobId);
  if (job?.workerId !== worker.id) throw new MalusError('not-found', `job ${jobId} not found`);
  const now = ctx.now();
  const finished = (outcome: 'succeeded' | 'failed', result: string | null): LogEvent => ({
    format: 'malus.event/v1',
    type: 'job.finished',
    collaboration: job.collaborationId,
    actor: { kind: 'enclave', id: worker.id },
    time: now.toISOString(),
    job: job.id,
    outcome,
    result,
  });
  if ('error' in body) {
    return jobView(await ctx.store.jobs.finish(job.id, worker.id, { state: 'failed', error: body.error }, now, [toLogAppend(finished('failed', null))]));
  }
  const { statement } = body.result;
  const problems: string[] = [];
  if (statement.job !== job.id || statement.collaboration !== job.collaborationId) problems.push('the statement is about another job');
  if (statement.agreement !== job.agreementHash) problems.push('the statement names another agreement');
  if (statement.enclave.signingKey !== worker.id) problems.push('the statement is signed by another key');
  if (statement.enclave.measurement !== worker.measurement) problems.push('the statement claims another measurement');
  if (statement.enclave.platform !== worker.platform) problems.push('the statement claims another platform');
  if ((statement.notice === SIMULATED_NOTICE) !== (worker.platform === 'sim')) problems.push('a statement carries the simulated notice exactly when the platform is sim');
  if (!verifyStatementSignature(body.result)) problems.push('the statement signature does not verify');
  if (problems.length > 0) throw new MalusError('signature-invalid', problems.join('; '));
  const hash = statementHash(statement);
  return jobView(
    await ctx.store.jobs.finish(job.id, worker.id, { state: 'succeeded', result: body.result as unknown as Record<string, unknown> }, now, [
      toLogAppend(finished('succeeded', hash)),
    ]),
  );
}

const REMOTE_DECISIONS = ['key.registered', 'key.granted', 'key.denied'] as const;

/**
 * Records a decision a party's own key-release service made (`malus kms serve`): it may speak only
 * for itself, about a collaboration it belongs to, at about the current time.
 */
export async function recordRemoteDecision(ctx: ServerContext, caller: AuthenticatedParty, id: string, event: LogEvent): Promise<number> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  const problems: string[] = [];
  if (!(REMOTE_DECISIONS as readonly string[]).includes(event.type)) problems.push(`a key-release service records only ${REMOTE_DECISIONS.join(', ')}`);
  if (event.collaboration !== id) problems.push('the event is about another collaboration');
  if (event.actor.kind !== 'party' || event.actor.id !== caller.id) problems.push('the event must name the caller as its actor');
  if (event.type === 'key.registered' && event.owner !== caller.id) problems.push("a party's own service registers only that party's keys");
  if (Math.abs(Date.parse(event.time) - ctx.now().getTime()) > 300_000) problems.push('the event time is more than 5 minutes away from now');
  if (problems.length > 0) throw new MalusError('forbidden', problems.join('; '));
  const [index] = await ctx.log.append([event]);
  return index ?? -1;
}
