import { activeAgreement, type Agreement, type AgreementSignature } from '../agreement/index.js';
import { evidenceBinding, type Attester } from '../attestation/index.js';
import { fromBase64Url, hpkeOpen, type HpkeSealed, type KeyPair } from '../crypto/index.js';
import { generatePartyKeys, type PartyKeys } from '../identity/index.js';
import { ERROR_CODES, MalusError, isMalusError } from '../errors/index.js';
import { loadDataset, openIngestDb, verifyManifest, type SignedManifest } from '../ingest/index.js';
import { RELEASE_INFO, keyCommitment, releaseAad, sha256Ref } from '../keyrelease/index.js';
import type { QueryRequest } from '../rules/index.js';
import { planQuery, runQuery, type QueryPlan } from './query-job.js';
import type { SealedResult } from './result.js';
import type { QueryLimits, SandboxLimits } from './sandbox.js';
import { SIMULATED_NOTICE, signStatement, type ResultStatement, type SignedStatement } from './statement.js';

// The enclave worker (docs/enclave.md). Its keys are made in memory at start and never leave it;
// it registers with evidence, polls for jobs, re-checks each job against the agreement itself,
// asks the key-release services for the job's data keys with fresh evidence, runs the job, signs
// the result, and forgets the keys. Nothing it holds is ever written to disk.

export interface ClaimedJob {
  readonly id: string;
  readonly collaborationId: string;
  readonly agreementHash: string;
  readonly kind: string;
  readonly datasets: readonly string[];
  /** The party that submitted the job. */
  readonly submittedBy: string;
  /** A query job's query, as submitted. */
  readonly query?: QueryRequest;
  /** A query job's binding of each table it reads to a dataset id. */
  readonly tables?: Readonly<Record<string, string>>;
  /**
   * Which of the datasets the control plane's embedded service holds keys for: routing only (a
   * wrong answer costs a denial, never a key), so that services holding nothing are not asked.
   */
  readonly heldByControlPlane?: readonly string[];
  /** Every version of the collaboration's agreement with its signatures: the worker finds the active one itself. */
  readonly versions: readonly { agreement: Agreement; signatures: AgreementSignature[] }[];
}

export interface ReleaseRequest {
  readonly collaborationId: string;
  readonly jobId: string;
  readonly challenge: string;
  readonly platform: string;
  readonly evidence: Uint8Array;
  readonly certificates: readonly Uint8Array[];
  readonly encryptionKey: Uint8Array;
}

/** A signed statement, and for a query job the result sealed to the receivers. */
export interface JobResult extends SignedStatement {
  readonly sealed?: SealedResult;
}

/** How the worker reaches the control plane and the key-release services (HTTP in practice). */
export interface WorkerPort {
  registrationChallenge(): Promise<string>;
  register(body: { platform: string; evidence: Uint8Array; certificates: readonly Uint8Array[]; encryptionKey: Uint8Array; challenge: string }): Promise<void>;
  claim(): Promise<ClaimedJob | undefined>;
  /** Says the worker is still at its running job, so that the job does not expire; refused once it is no longer running. */
  heartbeat(jobId: string): Promise<void>;
  /** `service` is undefined for the control plane's embedded key release, else an endpoint URL. */
  releaseChallenge(service: string | undefined): Promise<string>;
  release(service: string | undefined, request: ReleaseRequest): Promise<{ dataset: string; sealed: HpkeSealed }[]>;
  finish(jobId: string, outcome: { result: JobResult } | { error: string }): Promise<void>;
  /** A dataset the job names: its owner-signed manifest and its ciphertext, streamed. */
  dataset(jobId: string, dataset: string): Promise<{ signed: SignedManifest; content: AsyncIterable<Uint8Array> }>;
}

/** The job kinds this enclave runs. */
export const JOB_KINDS = ['key-check', 'dataset-check', 'query'] as const;

export interface WorkerIdentity {
  /** The same shape as a party's keys, so the worker signs requests as any client does; in memory only. */
  readonly keys: PartyKeys;
  readonly signing: KeyPair;
  readonly encryption: KeyPair;
  /** The request-signing key (base64url) as the server names the worker. */
  readonly id: string;
}

export function createWorkerIdentity(): WorkerIdentity {
  const keys = generatePartyKeys('Malus enclave worker');
  const publicKey = (text: string): Uint8Array => fromBase64Url(text) ?? new Uint8Array();
  return {
    keys,
    signing: { publicKey: publicKey(keys.identity.signingKey), secretKey: keys.signingSecret },
    encryption: { publicKey: publicKey(keys.identity.encryptionKey), secretKey: keys.encryptionSecret },
    id: keys.identity.signingKey,
  };
}

export interface WorkerContext {
  readonly identity: WorkerIdentity;
  readonly attester: Attester;
  readonly port: WorkerPort;
  readonly now: () => Date;
  readonly log?: (level: 'info' | 'warn', message: string, details?: Record<string, unknown>) => void;
  /** The sandbox's and the queries' limits (docs/enclave.md gives the defaults). */
  readonly limits?: SandboxLimits & QueryLimits;
  /**
   * The waits between attempts to report a failed job when the server cannot be reached or fails
   * (default FAILURE_REPORT_DELAYS_MS, about half a minute in all).
   */
  readonly failureReportDelaysMs?: readonly number[];
  /** How often to beat while at a job (default HEARTBEAT_MS). */
  readonly heartbeatMs?: number;
}

export const FAILURE_REPORT_DELAYS_MS: readonly number[] = [500, 1000, 2000, 4000, 8000, 16_000];

/**
 * What registration evidence binds in the agreement-hash place: the worker's request- and
 * statement-signing key, so that no host can register an enclave's evidence under a key of its own.
 */
export function registrationSubject(signingKey: string): string {
  return `malus.worker-signing-key/v1:${signingKey}`;
}

/** Registers: evidence bound to the worker's encryption key, a registration challenge and its signing key. */
export async function registerWorker(ctx: WorkerContext): Promise<void> {
  const challenge = await ctx.port.registrationChallenge();
  const challengeBytes = fromBase64Url(challenge);
  if (challengeBytes === undefined) throw new MalusError('server-error', 'the registration challenge is not base64url');
  const binding = evidenceBinding({ enclavePublicKey: ctx.identity.encryption.publicKey, challenge: challengeBytes, agreementHash: registrationSubject(ctx.identity.id) });
  const { evidence, certificates } = await ctx.attester.attest({ binding, publicKey: ctx.identity.encryption.publicKey, now: ctx.now() });
  await ctx.port.register({ platform: ctx.attester.platform, evidence, certificates, encryptionKey: ctx.identity.encryption.publicKey, challenge });
}

/** The enclave's own check of a job, before it asks for any key: the server's check is not trusted. */
export function checkJob(job: ClaimedJob, now: Date, measurement: string): Agreement {
  const active = activeAgreement(job.versions, now);
  if (active === undefined) throw new MalusError('agreement-mismatch', 'the collaboration has no active agreement');
  if (active.hash !== job.agreementHash) throw new MalusError('agreement-mismatch', 'the job names an agreement that is not the active one');
  const { agreement } = active;
  if (agreement.id !== job.collaborationId) throw new MalusError('agreement-mismatch', 'the agreement is of another collaboration');
  if (!agreement.enclave.measurements.includes(measurement)) {
    throw new MalusError('agreement-mismatch', 'the agreement does not pin this enclave; it will not take the job');
  }
  if (!(JOB_KINDS as readonly string[]).includes(job.kind)) throw new MalusError('invalid-input', `this enclave does not run jobs of kind ${job.kind}`);
  if (job.datasets.length === 0) throw new MalusError('invalid-input', 'the job names no dataset');
  return agreement;
}

interface HeldKey {
  readonly dataset: string;
  readonly key: Uint8Array;
}

/** Fetches the job's keys: the embedded service first, then each party's own service for what is missing. */
async function fetchKeys(ctx: WorkerContext, job: ClaimedJob, agreement: Agreement): Promise<{ keys: HeldKey[]; evidence: string[] }> {
  const endpoints = agreement.keyRelease?.endpoints.map((e) => e.url) ?? [];
  const held = job.heldByControlPlane;
  const services: (string | undefined)[] =
    held === undefined
      ? [undefined, ...endpoints]
      : [...(held.length > 0 ? [undefined] : []), ...(job.datasets.some((d) => !held.includes(d)) ? endpoints : [])];
  const keys = new Map<string, Uint8Array>();
  const evidenceHashes: string[] = [];
  let lastDenial: unknown;
  try {
    for (const service of services) {
      if (job.datasets.every((d) => keys.has(d))) break;
      const challenge = await ctx.port.releaseChallenge(service);
      const challengeBytes = fromBase64Url(challenge);
      if (challengeBytes === undefined) throw new MalusError('server-error', 'the release challenge is not base64url');
      const binding = evidenceBinding({ enclavePublicKey: ctx.identity.encryption.publicKey, challenge: challengeBytes, agreementHash: job.agreementHash });
      const { evidence, certificates } = await ctx.attester.attest({ binding, publicKey: ctx.identity.encryption.publicKey, now: ctx.now() });
      let released: { dataset: string; sealed: HpkeSealed }[];
      try {
        released = await ctx.port.release(service, {
          collaborationId: job.collaborationId,
          jobId: job.id,
          challenge,
          platform: ctx.attester.platform,
          evidence,
          certificates,
          encryptionKey: ctx.identity.encryption.publicKey,
        });
      } catch (error) {
        // A service that holds none of the job's keys says so; another may hold them.
        if (isMalusError(error, 'key-release-denied')) {
          lastDenial = error;
          continue;
        }
        throw error;
      }
      evidenceHashes.push(sha256Ref(evidence));
      for (const { dataset, sealed } of released) {
        if (!job.datasets.includes(dataset) || keys.has(dataset)) continue;
        const key = await hpkeOpen(ctx.identity.encryption.secretKey, sealed, RELEASE_INFO, releaseAad({ jobId: job.id, datasetId: dataset, agreementHash: job.agreementHash }));
        if (key === undefined) throw new MalusError('server-error', `the key released for ${dataset} does not open for this job`);
        keys.set(dataset, key);
      }
    }
  } catch (error) {
    // Whatever went wrong, the keys already opened do not outlive this call.
    for (const key of keys.values()) key.fill(0);
    throw error;
  }
  const missing = job.datasets.filter((d) => !keys.has(d));
  if (missing.length > 0) {
    for (const key of keys.values()) key.fill(0);
    if (lastDenial instanceof MalusError) throw lastDenial;
    throw new MalusError('key-release-denied', `no key-release service released the keys of ${missing.join(', ')}`);
  }
  return { keys: job.datasets.map((dataset) => ({ dataset, key: keys.get(dataset) as Uint8Array })), evidence: evidenceHashes };
}

interface CheckedDataset {
  readonly dataset: string;
  readonly keyCommitment: string;
  readonly rows?: number;
  readonly ciphertext?: string;
}

/**
 * dataset-check: decrypt every dataset into an in-memory DuckDB, as a query job will, and sign
 * what was read. The manifest is checked against the agreement here, not taken from the server.
 */
async function checkDatasets(ctx: WorkerContext, job: ClaimedJob, keys: readonly HeldKey[]): Promise<CheckedDataset[]> {
  const active = activeAgreement(job.versions, ctx.now());
  if (active === undefined) throw new MalusError('agreement-mismatch', 'the collaboration has no active agreement');
  const db = await openIngestDb();
  try {
    const checked: CheckedDataset[] = [];
    for (const { dataset, key } of keys) {
      const { signed, content } = await ctx.port.dataset(job.id, dataset);
      try {
        const verdict = verifyManifest(signed, active);
        if (!verdict.ok) throw new MalusError('invalid-input', `the manifest of dataset ${dataset} does not satisfy the agreement`, { reasons: verdict.reasons });
        const commitment = keyCommitment(key, job.collaborationId, dataset);
        if (signed.manifest.dataset !== dataset || signed.manifest.keyCommitment !== commitment) {
          throw new MalusError('invalid-input', `the key released for ${dataset} is not the one its owner signed for`);
        }
        const loaded = await loadDataset({ connection: db.connection, source: content, key, manifest: signed.manifest, table: verdict.table, as: `ds_${checked.length}` });
        checked.push({ dataset, keyCommitment: commitment, rows: loaded.rows, ciphertext: signed.manifest.ciphertext.sha256 });
      } finally {
        // A refused or half-read download is closed now, not when the connection times out.
        await content[Symbol.asyncIterator]().return?.();
      }
    }
    return checked;
  } finally {
    db.close();
  }
}

/** query: the planned query on the job's datasets, sealed to the receivers. */
async function queryJob(ctx: WorkerContext, job: ClaimedJob, plan: QueryPlan, keys: readonly HeldKey[]): ReturnType<typeof runQuery> {
  const active = activeAgreement(job.versions, ctx.now());
  if (active?.hash !== job.agreementHash) throw new MalusError('agreement-mismatch', 'the job names an agreement that is not the active one');
  return runQuery(
    { jobId: job.id, collaborationId: job.collaborationId, active, dataset: (dataset) => ctx.port.dataset(job.id, dataset), ...(ctx.limits === undefined ? {} : { limits: ctx.limits }) },
    plan,
    keys,
  );
}

/** Runs one claimed job to its signed result; the keys are zeroed before this returns. */
export async function runJob(ctx: WorkerContext, job: ClaimedJob): Promise<JobResult> {
  const agreement = checkJob(job, ctx.now(), ctx.attester.measurement);
  // A query is checked in full before any key is asked for.
  const plan = job.kind === 'query' ? await planQuery(job, agreement) : undefined;
  const { keys, evidence } = await fetchKeys(ctx, job, agreement);
  try {
    let output: ResultStatement['output'];
    let sealed: SealedResult | undefined;
    if (plan !== undefined) {
      const ran = await queryJob(ctx, job, plan, keys);
      output = { ...ran.output };
      sealed = ran.sealed;
    } else {
      const datasets: CheckedDataset[] =
        job.kind === 'dataset-check'
          ? await checkDatasets(ctx, job, keys)
          : keys.map(({ dataset, key }) => ({ dataset, keyCommitment: keyCommitment(key, job.collaborationId, dataset) }));
      output = { datasets };
    }
    const statement: ResultStatement = {
      format: 'malus.job-result/v1',
      job: job.id,
      collaboration: job.collaborationId,
      agreement: job.agreementHash,
      kind: job.kind,
      output,
      enclave: { platform: ctx.attester.platform, measurement: ctx.attester.measurement, signingKey: ctx.identity.id, evidence },
      ...(ctx.attester.platform === 'sim' ? { notice: SIMULATED_NOTICE } : {}),
      time: ctx.now().toISOString(),
    };
    const signed = signStatement(statement, ctx.identity.signing.secretKey);
    return sealed === undefined ? signed : { ...signed, sealed };
  } finally {
    for (const { key } of keys) key.fill(0);
  }
}

/**
 * Sends a job's end (a failure or a result), trying again while the server cannot be reached or
 * fails (an answer of exit class 3): a job left running is never refunded, and a result lost to a
 * dropped connection would turn into a charged result-undelivered. The server takes the same
 * result or failure twice (its first answer lost) as delivered; any refusal is final and thrown.
 */
async function finishWithRetries(ctx: WorkerContext, jobId: string, outcome: { error: string } | { result: JobResult }): Promise<void> {
  const delays = ctx.failureReportDelaysMs ?? FAILURE_REPORT_DELAYS_MS;
  const isResult = 'result' in outcome;
  for (let attempt = 0; ; attempt += 1) {
    try {
      await ctx.port.finish(jobId, outcome);
      return;
    } catch (error) {
      const transient = !(error instanceof MalusError) || ERROR_CODES[error.code].exit === 3;
      const delay = delays[attempt];
      if (!transient || delay === undefined) throw error;
      const note = isResult ? 'job result not delivered yet' : 'job failure not reported yet';
      ctx.log?.('warn', note, { job: jobId, reason: error instanceof MalusError ? error.code : 'internal', retryInMs: delay });
      await new Promise((resume) => setTimeout(resume, delay));
    }
  }
}

/** A refusal because the job no longer runs here: the server ended it (its lease ran out, docs/enclave.md). */
const isEnded = (error: unknown): boolean => error instanceof MalusError && error.code === 'conflict';

/** Reports a failed job (its message cut to what the server keeps); a job the server already ended is left as it is. */
async function reportFailure(ctx: WorkerContext, jobId: string, message: string): Promise<void> {
  try {
    await finishWithRetries(ctx, jobId, { error: message.slice(0, 1000) });
  } catch (error) {
    if (!isEnded(error)) throw error;
    ctx.log?.('warn', 'job ended by the server before its failure was reported', { job: jobId });
  }
}

/**
 * How often a worker at a job tells the control plane it is still at it. The server fails a job
 * whose worker it has not heard from in ten of these (JOB_LEASE_MS of src/server).
 */
export const HEARTBEAT_MS = 30_000;

/** Claims and runs at most one job; true when there was one. */
export async function pollOnce(ctx: WorkerContext): Promise<boolean> {
  const job = await ctx.port.claim();
  if (job === undefined) return false;
  // A lost beat is no failure (the next one, or the report, follows); only a long silence is.
  const beat = setInterval(() => {
    ctx.port.heartbeat(job.id).catch((error: unknown) => {
      // A conflict: the server ended the job; its result will be refused, and is not retried.
      ctx.log?.('warn', isEnded(error) ? 'the server ended this job (its lease ran out)' : 'heartbeat failed', { job: job.id, reason: error instanceof MalusError ? error.code : 'internal' });
    });
  }, ctx.heartbeatMs ?? HEARTBEAT_MS);
  beat.unref();
  try {
    await runAndReport(ctx, job);
  } finally {
    clearInterval(beat);
  }
  return true;
}

async function runAndReport(ctx: WorkerContext, job: ClaimedJob): Promise<void> {
  let result: JobResult;
  try {
    result = await runJob(ctx, job);
  } catch (error) {
    // Only the code and the safe message leave the enclave: never key bytes.
    const message = error instanceof MalusError ? `${error.code}: ${error.message}` : 'internal error in the enclave';
    ctx.log?.('warn', 'job failed', { job: job.id, reason: message });
    await reportFailure(ctx, job.id, message);
    return;
  }
  try {
    await finishWithRetries(ctx, job.id, { result });
    ctx.log?.('info', 'job finished', { job: job.id });
  } catch (error) {
    if (isEnded(error)) {
      ctx.log?.('warn', 'job ended by the server before its result was delivered', { job: job.id });
      return;
    }
    // The result may have left the enclave even though the server refused it (the operator holds
    // the bytes): the job fails with a code that never gives a privacy charge back.
    const reason = error instanceof MalusError ? `${error.code}: ${error.message}` : 'the connection failed';
    const message = `result-undelivered: the server did not accept the result (${reason})`;
    ctx.log?.('warn', 'job result refused', { job: job.id, reason: message });
    await reportFailure(ctx, job.id, message);
  }
}

export interface RunningWorker {
  readonly identity: WorkerIdentity;
  /** Stops polling after the current job. */
  stop(): Promise<void>;
}

/** Registers, then polls until stopped. Errors reaching the server are retried with backoff. */
export async function startWorker(ctx: WorkerContext, options: { pollIntervalMs?: number } = {}): Promise<RunningWorker> {
  await registerWorker(ctx);
  const interval = options.pollIntervalMs ?? 500;
  // An object, not a let: the loop reads what stop() writes later.
  const state = { stopped: false };
  let wake: (() => void) | undefined;
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (state.stopped) {
        resolve();
        return;
      }
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const loop = (async () => {
    let backoff = interval;
    while (!state.stopped) {
      try {
        const worked = await pollOnce(ctx);
        backoff = interval;
        if (!worked) await sleep(interval);
      } catch (error) {
        ctx.log?.('warn', 'poll failed', { reason: error instanceof MalusError ? error.code : 'internal' });
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  })();
  return {
    identity: ctx.identity,
    stop: async () => {
      state.stopped = true;
      wake?.();
      await loop;
    },
  };
}
