import { randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { assertAgreement, type Agreement } from '../agreement/index.js';
import { appraise, evidenceBinding, type Attester, type EvidenceFormat } from '../attestation/index.js';
import type { ClaimedJobView, JobReceiptView, JobView, SealedResultView, SubmitJobBody, WorkerView } from '../api/index.js';
import { fromBase64Url, type KeyPair } from '../crypto/index.js';
import { SIMULATED_NOTICE, registrationSubject, statementHash, verifyStatementSignature, type SignedStatement } from '../engine/index.js';
import { MalusError, isErrorCode, isMalusError } from '../errors/index.js';
import {
  consumeChallenge,
  sha256Ref,
  verifyPresented,
  type EvidenceTrust,
  type KeyReleaseContext,
  type KeyWrapper,
} from '../keyrelease/index.js';
import { decodeEvent, type LogEvent } from '../ledger/index.js';
import { checkQuery, type QueryRequest } from '../rules/index.js';
import type { JobRecord, LogAppend, PrivacyChargeInput, Store, WorkerRecord } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import { privacyCharge, privacyRefund, refreshNote } from './budget.js';
import { activeAgreementOf, versionEvidence } from './collaborations.js';
import type { ConfidentialServices, ServerContext } from './context.js';
import { receiptFor } from './log.js';
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
  readonly jobLeaseMs?: number;
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
    ...(options.jobLeaseMs === undefined ? {} : { jobLeaseMs: options.jobLeaseMs }),
    startedAt: options.now(),
  };
}

export function requireConfidential(ctx: ServerContext): ConfidentialServices {
  if (ctx.confidential === undefined) throw new MalusError('not-found', 'this server runs no key-release service');
  return ctx.confidential;
}

/** A registered worker, or 403: only attested workers take jobs or ask for keys. */
export async function requireWorker(ctx: ServerContext, caller: AuthenticatedParty): Promise<WorkerRecord> {
  const worker = await ctx.store.workers.get(caller.signingKey);
  if (worker === undefined) throw new MalusError('forbidden', 'register this worker with evidence first (POST /v1/workers)');
  return worker;
}

function workerView(worker: WorkerRecord): WorkerView {
  return {
    id: worker.id,
    platform: worker.platform as WorkerView['platform'],
    measurement: worker.measurement,
    encryptionKey: worker.encryptionKey,
    evidenceHash: worker.evidenceHash,
    registeredAt: worker.registeredAt,
    lastSeenAt: worker.lastSeenAt,
  };
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
  const record: WorkerRecord = {
    id: caller.signingKey,
    platform: body.platform,
    measurement: verdict.measurement,
    encryptionKey: body.encryptionKey,
    evidenceHash: sha256Ref(evidence),
    // Kept as received: a job receipt carries them, so that anyone can appraise the enclave again.
    evidence: body.evidence,
    certificates: [...body.certificates],
    challenge: body.challenge,
    registeredAt: now.toISOString(),
    lastSeenAt: now.toISOString(),
  };
  await ctx.store.workers.upsert(record);
  return workerView(record);
}

/** What a job's result holds: the signed statement and, for a query, the sealed rows. */
type JobResult = SignedStatement & { readonly sealed?: SealedResultView };

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
    result: job.result as JobResult | null as JobView['result'],
    error: job.error,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

/** What a job lists and a worker claims by: the platform and the measurement together. */
export function claimKey(platform: string, measurement: string): string {
  return `${platform}/${measurement}`;
}

/** What a submission gave: the job, and whether an earlier submission with the same key queued it. */
export interface SubmittedJob {
  readonly job: JobView;
  readonly replayed: boolean;
}

/**
 * Queues a job under the active agreement. An analyst or a provider submits checks; only an analyst
 * submits a query, which is queued only once checkQuery allows it, with a dataset for each table it reads.
 * A body with an idempotencyKey the caller already used here gets that key's job back, unchecked
 * and uncharged (docs/api.md): the first submission was checked and charged as it was queued.
 */
export async function submitJob(ctx: ServerContext, caller: AuthenticatedParty, id: string, body: SubmitJobBody): Promise<SubmittedJob> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  const request = body.idempotencyKey === undefined ? undefined : { key: body.idempotencyKey, fingerprint: sha256Ref(canonicalize(body) ?? '') };
  if (request !== undefined) {
    // Before any check: the agreement, the datasets or the budget may have moved since the job was queued.
    const earlier = await ctx.store.jobs.byRequest(id, caller.id, request);
    if (earlier !== undefined) return { job: jobView(earlier), replayed: true };
  }
  const now = ctx.now();
  const active = await activeAgreementOf(ctx, id, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${id} has no active agreement`);
  const roles = active.agreement.parties.find((p) => p.id === caller.id)?.roles ?? [];
  const jobId = `job-${randomBytes(16).toString('hex')}`;
  let spec: Record<string, unknown>;
  let datasets: string[];
  let charge: PrivacyChargeInput | undefined;
  if (body.kind === 'query') {
    if (!roles.includes('analyst')) throw new MalusError('forbidden', 'only an analyst of the active agreement submits queries');
    const query: QueryRequest = 'sql' in body ? { sql: body.sql } : { template: body.template, parameters: body.parameters };
    // The enclave checks the query again itself; this check keeps a denied query out of the queue and the log.
    const checked = await checkQuery(active.agreement, query, { as: caller.id });
    if (!checked.allowed) {
      const violations = checked.violations.map((v) => ({ code: v.code, message: v.message, position: v.position }));
      throw new MalusError('query-denied', 'the query breaks the agreement', { violations });
    }
    const tables = await datasetsOfTables(ctx, id, checked.tables, body.datasets ?? {});
    spec = { kind: 'query', query, tables };
    datasets = Object.values(tables);
    // Charged before it can run, in the transaction that queues it (docs/dp.md).
    if (checked.privacy !== undefined) charge = privacyCharge(active.agreement, jobId, caller.id, checked.privacy.cost, now);
  } else {
    if (!roles.some((r) => r === 'analyst' || r === 'provider')) {
      throw new MalusError('forbidden', 'only an analyst or a provider of the active agreement submits jobs');
    }
    if (body.kind === 'dataset-check') {
      // Fast feedback only: the enclave checks every manifest and ciphertext again itself.
      const missing: string[] = [];
      for (const dataset of body.datasets) if ((await ctx.store.datasets.get(id, dataset)) === undefined) missing.push(dataset);
      if (missing.length > 0) throw new MalusError('conflict', `no complete upload of dataset ${missing.join(', ')} in collaboration ${id}`);
    }
    spec = { kind: body.kind, datasets: body.datasets };
    datasets = body.datasets;
  }
  const job: JobRecord = {
    id: jobId,
    collaborationId: id,
    agreementHash: active.hash,
    kind: body.kind,
    spec,
    datasets,
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
  let stored: JobRecord;
  try {
    stored = await ctx.store.jobs.create(job, [toLogAppend(event)], charge, request);
  } catch (error) {
    if (isMalusError(error, 'budget-exhausted')) throw new MalusError('budget-exhausted', `${error.message}; ${refreshNote(active.agreement, now)}`);
    throw error;
  }
  // Another job than this one: a submission with the same key got in first, while this one was checked.
  return { job: jobView(stored), replayed: stored.id !== job.id };
}

/**
 * The dataset each table of a query reads: the one the analyst named (it must be complete and of
 * that table), else the newest complete dataset of the table.
 */
async function datasetsOfTables(ctx: ServerContext, id: string, tables: readonly string[], named: Readonly<Record<string, string>>): Promise<Record<string, string>> {
  const stray = Object.keys(named).filter((table) => !tables.includes(table));
  if (stray.length > 0) {
    throw new MalusError('invalid-input', 'body.datasets names tables the query does not read', {
      issues: stray.map((table) => ({ path: `body.datasets.${table}`, message: `the query does not read table ${table}` })),
    });
  }
  const complete = await ctx.store.datasets.list(id);
  const resolved: Record<string, string> = {};
  for (const table of tables) {
    const wanted = Object.hasOwn(named, table) ? named[table] : undefined;
    if (wanted !== undefined) {
      const record = complete.find((d) => d.datasetId === wanted);
      if (record === undefined) throw new MalusError('conflict', `no complete upload of dataset ${wanted} in collaboration ${id}`);
      if (record.table !== table) throw new MalusError('conflict', `dataset ${wanted} is of table ${record.table}, not ${table}`);
      resolved[table] = wanted;
      continue;
    }
    const newest = complete
      .filter((d) => d.table === table)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.datasetId.localeCompare(a.datasetId))[0];
    if (newest === undefined) throw new MalusError('conflict', `collaboration ${id} has no complete dataset of table ${table}`);
    resolved[table] = newest.datasetId;
  }
  return resolved;
}

async function memberJob(ctx: ServerContext, caller: AuthenticatedParty, id: string, jobId: string): Promise<JobRecord> {
  const job = await ctx.store.jobs.get(jobId);
  if (job?.collaborationId !== id || !(await ctx.store.collaborations.isMember(id, caller.id))) {
    throw new MalusError('not-found', `job ${jobId} not found`);
  }
  return job;
}

export async function getJob(ctx: ServerContext, caller: AuthenticatedParty, id: string, jobId: string): Promise<JobView> {
  const job = await memberJob(ctx, caller, id, jobId);
  if (job.state !== 'running') return jobView(job);
  // Only a running job can have expired; it is read again once the sweep has run.
  await expireAbandonedJobs(ctx);
  return jobView((await ctx.store.jobs.get(jobId)) ?? job);
}

/** Why a cancelled job failed, as its log entries and its view say. */
export const CANCELLED_CODE = 'cancelled';

/**
 * `DELETE …/jobs/{job}`: the submitter withdraws a job no enclave has taken (say one queued for an
 * enclave build the agreement no longer pins, which no worker will ever claim). It fails with code
 * `cancelled`, logged by the submitter, and its charge comes back: nothing was read.
 */
export async function cancelJob(ctx: ServerContext, caller: AuthenticatedParty, id: string, jobId: string): Promise<JobView> {
  const job = await memberJob(ctx, caller, id, jobId);
  if (job.submittedBy !== caller.id) throw new MalusError('forbidden', `only the submitter of job ${jobId} can cancel it`);
  const now = ctx.now();
  const event: LogEvent = {
    format: 'malus.event/v1',
    type: 'job.finished',
    collaboration: job.collaborationId,
    actor: { kind: 'party', id: caller.id },
    time: now.toISOString(),
    job: job.id,
    outcome: 'failed',
    result: null,
    code: CANCELLED_CODE,
  };
  const refund = privacyRefund(CANCELLED_CODE, now);
  if (refund === undefined) throw new MalusError('internal', 'a cancelled job must be refundable');
  const error = `${CANCELLED_CODE}: withdrawn by its submitter before any enclave took it`;
  return jobView(await ctx.store.jobs.cancel(job.id, caller.id, error, now, [toLogAppend(event)], refund));
}

/** A job without its sealed rows (up to tens of MiB), for answers that do not need them. */
function withoutSealed(view: JobView): JobView {
  return view.result === null ? view : { ...view, result: { statement: view.result.statement, signature: view.result.signature } };
}

/** A collaboration's jobs; results without their sealed rows, which GET job gives. */
export async function listJobs(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<JobView[]> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  await expireAbandonedJobs(ctx);
  return (await ctx.store.jobs.list(id)).map((job) => withoutSealed(jobView(job)));
}

/** The actor of the entries the queue itself writes (a job given to a worker, or taken back). */
const QUEUE_ACTOR = { kind: 'server', id: 'malus-queue' } as const;

/**
 * How long the worker holding a running job may go unseen (no claim, no heartbeat) before the job
 * fails: ten of the worker's heartbeats (HEARTBEAT_MS of src/engine).
 */
export const JOB_LEASE_MS = 5 * 60_000;

/**
 * Fails the running jobs whose worker stopped reporting (a crashed enclave, one restarted under a
 * new identity): else they stay running for good, their submitters waiting. Code `internal`, and
 * the charge is kept: the worker may have read the data, and a result may have left it. Run
 * whenever a worker claims and whenever a member reads jobs, so it needs no timer.
 */
export async function expireAbandonedJobs(ctx: ServerContext): Promise<void> {
  const services = ctx.confidential;
  if (services === undefined) return;
  const lease = services.jobLeaseMs ?? JOB_LEASE_MS;
  const now = ctx.now();
  // A server that was down heard from nobody: its workers get a whole lease from its start to beat again.
  if (now.getTime() - services.startedAt.getTime() < lease) return;
  const ended = (job: JobRecord): LogAppend[] => [
    toLogAppend({
      format: 'malus.event/v1',
      type: 'job.finished',
      collaboration: job.collaborationId,
      actor: QUEUE_ACTOR,
      time: now.toISOString(),
      job: job.id,
      outcome: 'failed',
      result: null,
      code: 'internal',
    }),
  ];
  const error = `internal: the enclave worker holding the job stopped reporting for more than ${lease >= 1000 ? `${Math.round(lease / 1000)} s` : `${lease} ms`}`;
  try {
    await ctx.store.jobs.expire(new Date(now.getTime() - lease), error, now, ended);
  } catch (error) {
    // Housekeeping: a busy store must not fail the read or the claim it rides on; the next one sweeps.
    if (!isMalusError(error, 'store-failure')) throw error;
  }
}

/**
 * `POST /v1/workers/me/jobs/{job}/heartbeat`: the worker holding a running job says it is still
 * at work, which keeps the job from expiring (JOB_LEASE_MS).
 */
export async function heartbeat(ctx: ServerContext, caller: AuthenticatedParty, jobId: string): Promise<{ state: 'running' }> {
  const worker = await requireWorker(ctx, caller);
  await ctx.store.workers.touch(worker.id, ctx.now());
  const job = await ctx.store.jobs.get(jobId);
  if (job?.workerId !== worker.id) throw new MalusError('not-found', `job ${jobId} not found`);
  if (job.state !== 'running') throw new MalusError('conflict', `job ${jobId} is not running: it ${job.state === 'failed' ? 'failed' : 'ended'} (${job.error ?? 'with a result'})`);
  return { state: 'running' };
}

/**
 * Gives the caller's worker the oldest job whose agreement pins its measurement, with the agreement
 * evidence; the job.started entry lands in the same transaction as the claim.
 */
export async function claimJob(ctx: ServerContext, caller: AuthenticatedParty): Promise<{ job: ClaimedJobView | null }> {
  const worker = await requireWorker(ctx, caller);
  const now = ctx.now();
  await ctx.store.workers.touch(worker.id, now);
  // After this worker's own touch: a worker back from a long silence keeps, and is given again, its job.
  await expireAbandonedJobs(ctx);
  const started = (job: JobRecord): LogEvent => ({
    format: 'malus.event/v1',
    type: 'job.started',
    collaboration: job.collaborationId,
    actor: QUEUE_ACTOR,
    time: now.toISOString(),
    job: job.id,
    worker: worker.id,
    platform: worker.platform,
    measurement: worker.measurement,
  });
  const job = await ctx.store.jobs.claim(worker.id, claimKey(worker.platform, worker.measurement), now, (taken) => [toLogAppend(started(taken))]);
  if (job === undefined) return { job: null };
  const spec = job.spec as { query?: QueryRequest; tables?: Record<string, string> };
  return {
    job: {
      id: job.id,
      collaboration: job.collaborationId,
      agreement: job.agreementHash,
      kind: job.kind,
      datasets: job.datasets,
      submittedBy: job.submittedBy,
      ...(job.kind === 'query' && spec.query !== undefined && spec.tables !== undefined ? { query: spec.query, tables: spec.tables } : {}),
      heldByControlPlane: (await ctx.store.keys.keysOf(job.collaborationId, job.datasets)).map((k) => k.datasetId),
      versions: await versionEvidence(ctx, job.collaborationId),
    },
  };
}

/**
 * The reason code of a worker's `"<code>: <message>"`, for the log: only a Malus error code
 * (query-failed, key-release-denied, …). The text is the worker's, and any other word before a
 * colon could be a data value; the message itself is never logged.
 */
export function failureCode(error: string): string {
  const code = /^([a-z][a-z0-9-]{0,63}):(?: |$)/.exec(error)?.[1];
  return isErrorCode(code) ? code : 'enclave-error';
}

async function jobAgreement(ctx: ServerContext, job: JobRecord): Promise<Agreement> {
  const record = await ctx.store.collaborations.getAgreement(job.agreementHash);
  if (record === undefined) throw new MalusError('store-failure', `the agreement of job ${job.id} is not in the store`);
  return assertAgreement(record.document, `stored agreement ${record.hash}`);
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  new Set(a).size === a.length && a.length === new Set(b).size && a.every((x) => b.includes(x));

/** What is wrong with a result's sealed rows: only a query has them, over the ciphertext its statement names, for exactly the receivers. */
async function sealedProblems(ctx: ServerContext, job: JobRecord, result: JobResult): Promise<string[]> {
  const { sealed } = result;
  if (job.kind !== 'query') return sealed === undefined ? [] : ['only a query job has a sealed result'];
  if (sealed === undefined) return ['a query job ends with its sealed result'];
  const ciphertext = base64UrlField(sealed.ciphertext, 'body.result.sealed.ciphertext');
  base64UrlField(sealed.nonce, 'body.result.sealed.nonce');
  sealed.recipients.forEach((r, i) => {
    base64UrlField(r.enc, `body.result.sealed.recipients[${i}].enc`);
    base64UrlField(r.key, `body.result.sealed.recipients[${i}].key`);
  });
  const problems: string[] = [];
  const output = result.statement.output.result as { ciphertext?: unknown; receivers?: unknown } | undefined;
  if (output?.ciphertext !== sha256Ref(ciphertext)) problems.push('the sealed ciphertext is not the one the statement names');
  const { receivers } = await jobAgreement(ctx, job);
  if (!sameSet(sealed.recipients.map((r) => r.party), receivers)) problems.push("the result is not sealed to exactly the agreement's receivers");
  const named = Array.isArray(output?.receivers) ? output.receivers.filter((r): r is string => typeof r === 'string') : [];
  if (!sameSet(named, receivers)) problems.push("the statement does not name exactly the agreement's receivers");
  return problems;
}

/** Ends the caller's job with a signed result (checked here) or an error; the answer leaves out the sealed rows the worker just sent. */
export async function finishJob(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  jobId: string,
  body: { result: JobResult } | { error: string },
): Promise<JobView> {
  const worker = await requireWorker(ctx, caller);
  const job = await ctx.store.jobs.get(jobId);
  if (job?.workerId !== worker.id) throw new MalusError('not-found', `job ${jobId} not found`);
  // The same signed result, or the same failure, again (its first answer was lost): it got in, and
  // the worker is told so.
  // Anything else about a job that is no longer running is a conflict, which the worker must not
  // take for delivery: the job may have ended without it (its lease ran out).
  if (job.state === 'succeeded' && 'result' in body && sameResult(job.result, body.result)) return withoutSealed(jobView(job));
  if (job.state === 'failed' && 'error' in body && job.error === body.error) return withoutSealed(jobView(job));
  const now = ctx.now();
  const finished = (outcome: 'succeeded' | 'failed', result: string | null, code?: string): LogEvent => ({
    format: 'malus.event/v1',
    type: 'job.finished',
    collaboration: job.collaborationId,
    actor: { kind: 'enclave', id: worker.id },
    time: now.toISOString(),
    job: job.id,
    outcome,
    result,
    ...(code === undefined ? {} : { code }),
  });
  if ('error' in body) {
    const code = failureCode(body.error);
    const event = finished('failed', null, code);
    // A charge comes back only when the job failed before its query ran on data (REFUNDABLE_FAILURES).
    return jobView(await ctx.store.jobs.finish(job.id, worker.id, { state: 'failed', error: body.error }, now, [toLogAppend(event)], privacyRefund(code, now)));
  }
  const { statement } = body.result;
  const problems: string[] = [];
  if (statement.job !== job.id || statement.collaboration !== job.collaborationId) problems.push('the statement is about another job');
  if (statement.kind !== job.kind) problems.push('the statement is about another kind of job');
  if (statement.agreement !== job.agreementHash) problems.push('the statement names another agreement');
  if (statement.enclave.signingKey !== worker.id) problems.push('the statement is signed by another key');
  if (statement.enclave.measurement !== worker.measurement) problems.push('the statement claims another measurement');
  // The worker may have registered again since its claim: the job accepts only what it was queued for.
  if (!job.measurements.includes(claimKey(worker.platform, worker.measurement))) problems.push('the worker now reports a platform and measurement the job was not queued for');
  if (statement.enclave.platform !== worker.platform) problems.push('the statement claims another platform');
  if ((statement.notice === SIMULATED_NOTICE) !== (worker.platform === 'sim')) problems.push('a statement carries the simulated notice exactly when the platform is sim');
  if (!verifyStatementSignature(body.result)) problems.push('the statement signature does not verify');
  problems.push(...(await costProblems(ctx, job, statement.output)));
  problems.push(...(await sealedProblems(ctx, job, body.result)));
  if (problems.length > 0) throw new MalusError('signature-invalid', problems.join('; '));
  const result = body.result as unknown as Record<string, unknown>;
  const done = await ctx.store.jobs.finish(job.id, worker.id, { state: 'succeeded', result }, now, [toLogAppend(finished('succeeded', statementHash(statement)))]);
  return withoutSealed(jobView(done));
}

/** Whether a stored result is this one: the same statement under the same signature. */
function sameResult(stored: Record<string, unknown> | null, result: JobResult): boolean {
  const kept = stored as { statement?: SignedStatement['statement']; signature?: string } | null;
  return kept?.statement !== undefined && kept.signature === result.signature && statementHash(kept.statement) === statementHash(result.statement);
}

/** A privacy cost as canonical text: its units in a fixed order. */
const amountText = (amount: unknown): string => (typeof amount === 'string' || typeof amount === 'number' ? String(amount) : JSON.stringify(amount));
const costText = (cost: Record<string, unknown> | undefined): string =>
  cost === undefined ? 'none' : ['epsilon', 'rho', 'delta'].flatMap((unit) => (cost[unit] === undefined ? [] : [`${unit} ${amountText(cost[unit])}`])).join(', ');

/**
 * A query's statement must record the very cost the job was charged when it was queued (checked
 * again here under the job's agreement, for its submitter): the log's charges and the enclave's
 * signed statements then tell one story, and an auditor can hold either against the other.
 */
async function costProblems(ctx: ServerContext, job: JobRecord, output: unknown): Promise<string[]> {
  const query = (job.spec as { query?: QueryRequest }).query;
  if (job.kind !== 'query' || query === undefined) return [];
  const checked = await checkQuery(await jobAgreement(ctx, job), query, { as: job.submittedBy });
  const charged = costText(checked.privacy?.cost as Record<string, unknown> | undefined);
  const recorded = costText((output as { privacy?: { cost?: Record<string, unknown> } } | null)?.privacy?.cost);
  return charged === recorded ? [] : [`the statement records the privacy cost ${recorded}, and the job was charged ${charged}`];
}

/** The index of a job's job.finished entry, for jobs finished before the store kept it. */
async function findFinishedEntry(ctx: ServerContext, job: JobRecord): Promise<number | undefined> {
  for (const entry of await ctx.store.log.entriesOf([job.collaborationId])) {
    if (entry.type !== 'job.finished') continue;
    const decoded = decodeEvent(entry.data);
    if (decoded.ok && decoded.event.type === 'job.finished' && decoded.event.job === job.id) return entry.index;
  }
  return undefined;
}

/**
 * A succeeded job's receipt (members only): its job.finished entry proven in the log, the signed
 * statement, the worker's registration evidence and the agreement it ran under, all a verifier
 * needs offline (docs/log.md).
 */
export async function jobReceipt(ctx: ServerContext, caller: AuthenticatedParty, id: string, jobId: string): Promise<JobReceiptView> {
  const job = await memberJob(ctx, caller, id, jobId);
  if (job.state !== 'succeeded' || job.result === null) throw new MalusError('conflict', `job ${jobId} is ${job.state}: only a succeeded job has a receipt`);
  const index = job.finishedEntry ?? (await findFinishedEntry(ctx, job));
  if (index === undefined) throw new MalusError('store-failure', `the log has no job.finished entry for job ${jobId}`);
  const worker = job.workerId === null ? undefined : await ctx.store.workers.get(job.workerId);
  if (worker?.evidence == null || worker.certificates === null || worker.challenge === null) {
    throw new MalusError('conflict', `the registration evidence of the worker that ran job ${jobId} was not kept (it registered before this server kept it)`);
  }
  const result = job.result as unknown as JobResult;
  return {
    ...(await receiptFor(ctx, caller, index)),
    statement: { statement: result.statement, signature: result.signature } as JobReceiptView['statement'],
    enclave: {
      platform: worker.platform as JobReceiptView['enclave']['platform'],
      evidence: worker.evidence,
      certificates: worker.certificates,
      encryptionKey: worker.encryptionKey,
      challenge: worker.challenge,
    },
    agreement: await jobAgreement(ctx, job),
  };
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
