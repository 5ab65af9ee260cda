import type Database from 'better-sqlite3';
import { addCosts, describeCost, remainingBudget, subtractCosts, withinBudget, type PrivacyCost } from '../../dp/index.js';
import { MalusError } from '../../errors/index.js';
import type {
  JobRecord,
  JobRepository,
  JobRequest,
  JobState,
  LogAppend,
  PrivacyChargeInput,
  PrivacyChargeRecord,
  WorkerRecord,
  WorkerRepository,
} from '../types.js';
import { attempt, isUniqueViolation } from './errors.js';
import { logAppender } from './log.js';

interface JobRow {
  id: string;
  collaboration_id: string;
  agreement_hash: string;
  kind: string;
  spec: string;
  datasets: string;
  measurements: string;
  state: string;
  submitted_by: string;
  worker_id: string | null;
  result: string | null;
  error: string | null;
  finished_entry: number | null;
  created_at: string;
  updated_at: string;
}

const JOB_COLUMNS =
  'id, collaboration_id, agreement_hash, kind, spec, datasets, measurements, state, submitted_by, worker_id, result, error, finished_entry, created_at, updated_at';

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id,
    collaborationId: row.collaboration_id,
    agreementHash: row.agreement_hash,
    kind: row.kind,
    spec: JSON.parse(row.spec) as Record<string, unknown>,
    datasets: JSON.parse(row.datasets) as string[],
    measurements: JSON.parse(row.measurements) as string[],
    state: row.state as JobState,
    submittedBy: row.submitted_by,
    workerId: row.worker_id,
    result: row.result === null ? null : (JSON.parse(row.result) as Record<string, unknown>),
    error: row.error,
    finishedEntry: row.finished_entry,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

interface ChargeRow {
  job_id: string;
  kind: string;
  collaboration_id: string;
  analyst: string;
  period: string;
  epsilon: string | null;
  rho: string | null;
  delta: string | null;
  log_index: number;
  created_at: string;
}

const CHARGE_COLUMNS = 'job_id, kind, collaboration_id, analyst, period, epsilon, rho, delta, log_index, created_at';

const toCharge = (row: ChargeRow): PrivacyChargeRecord => ({
  collaborationId: row.collaboration_id,
  jobId: row.job_id,
  kind: row.kind as PrivacyChargeRecord['kind'],
  analyst: row.analyst,
  period: row.period,
  cost: {
    ...(row.epsilon === null ? {} : { epsilon: row.epsilon }),
    ...(row.rho === null ? {} : { rho: row.rho }),
    ...(row.delta === null ? {} : { delta: row.delta }),
  },
  entry: row.log_index,
  createdAt: row.created_at,
});

/** Charges minus refunds. */
function spentOf(rows: readonly PrivacyChargeRecord[]): PrivacyCost {
  const sum = (kind: PrivacyChargeRecord['kind']): PrivacyCost => addCosts(...rows.filter((r) => r.kind === kind).map((r) => r.cost));
  return subtractCosts(sum('charge'), sum('refund'));
}

/** Refuses a charge that does not fit what is left of one budget. */
function checkFits(whose: string, rows: readonly PrivacyChargeRecord[], charge: PrivacyChargeInput, budget: PrivacyCost): void {
  const spent = spentOf(rows);
  if (withinBudget(addCosts(spent, charge.cost), budget)) return;
  throw new MalusError(
    'budget-exhausted',
    `${whose} privacy budget for period ${charge.period} has ${describeCost(remainingBudget(budget, spent))} left; this query costs ${describeCost(charge.cost)}`,
  );
}

/** The key is named (the client chose it); the bodies are not: they may hold a query's SQL. */
function keyReused(key: string): MalusError {
  return new MalusError('idempotency-key-reused', `idempotency key ${key} was used for a different submission in this collaboration`);
}

export function sqliteJobs(db: Database.Database): JobRepository {
  const insert = db.prepare<[JobRow]>(
    `INSERT INTO jobs (${JOB_COLUMNS}, seq)
     VALUES (@id, @collaboration_id, @agreement_hash, @kind, @spec, @datasets, @measurements, @state, @submitted_by,
             @worker_id, @result, @error, @finished_entry, @created_at, @updated_at, (SELECT coalesce(max(seq) + 1, 0) FROM jobs))`,
  );
  const select = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`);
  // The match is in SQL: a filter after a LIMIT would starve a worker behind older jobs it cannot take.
  const queued = db.prepare<[string], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs
     WHERE state = 'queued' AND EXISTS (SELECT 1 FROM json_each(jobs.measurements) WHERE json_each.value = ?)
     ORDER BY seq LIMIT 1`,
  );
  const heldBy = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE state = 'running' AND worker_id = ? ORDER BY seq LIMIT 1`);
  const take = db.prepare<[string, string, string]>(
    `UPDATE jobs SET state = 'running', worker_id = ?, updated_at = ? WHERE id = ? AND state = 'queued'`,
  );
  const end = db.prepare<[string, string | null, string | null, string, string, string]>(
    `UPDATE jobs SET state = ?, result = ?, error = ?, updated_at = ? WHERE id = ? AND worker_id = ? AND state = 'running'`,
  );
  const cancelQueued = db.prepare<[string, string, string, string]>(
    `UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ? AND submitted_by = ? AND state = 'queued'`,
  );
  const markFinishedEntry = db.prepare<[number, string]>('UPDATE jobs SET finished_entry = ? WHERE id = ?');
  const ofCollaboration = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE collaboration_id = ? ORDER BY seq DESC`);
  const appendEvents = logAppender(db);
  const insertCharge = db.prepare<[ChargeRow]>(
    `INSERT INTO privacy_charges (${CHARGE_COLUMNS})
     VALUES (@job_id, @kind, @collaboration_id, @analyst, @period, @epsilon, @rho, @delta, @log_index, @created_at)`,
  );
  const chargesOfPeriod = db.prepare<[string, string], ChargeRow>(
    `SELECT ${CHARGE_COLUMNS} FROM privacy_charges WHERE collaboration_id = ? AND period = ? ORDER BY log_index`,
  );
  const chargesOfCollaboration = db.prepare<[string], ChargeRow>(
    `SELECT ${CHARGE_COLUMNS} FROM privacy_charges WHERE collaboration_id = ? ORDER BY log_index`,
  );
  const chargeOfJob = db.prepare<[string, string], ChargeRow>(`SELECT ${CHARGE_COLUMNS} FROM privacy_charges WHERE job_id = ? AND kind = ?`);

  /** Records a charge or refund row with its entry, which is appended here. */
  const recordCharge = (record: Omit<PrivacyChargeRecord, 'entry'>, event: LogAppend): void => {
    insertCharge.run({
      job_id: record.jobId,
      kind: record.kind,
      collaboration_id: record.collaborationId,
      analyst: record.analyst,
      period: record.period,
      epsilon: record.cost.epsilon ?? null,
      rho: record.cost.rho ?? null,
      delta: record.cost.delta ?? null,
      log_index: appendEvents([event]),
      created_at: record.createdAt,
    });
  };

  // Runs inside the IMMEDIATE transaction: no other writer, in this process or another, can charge
  // between the sum and the insert, so racing queries never spend more than the budget.
  const chargeOnce = (job: JobRow, charge: PrivacyChargeInput): void => {
    if (Object.keys(addCosts(charge.cost)).length === 0) throw new MalusError('invalid-input', 'a privacy charge names no amount');
    const rows = chargesOfPeriod.all(job.collaboration_id, charge.period).map(toCharge);
    checkFits("the collaboration's", rows, charge, charge.budget);
    if (charge.analystBudget !== undefined) {
      checkFits("the analyst's", rows.filter((r) => r.analyst === charge.analyst), charge, charge.analystBudget);
    }
    recordCharge(
      {
        collaborationId: job.collaboration_id,
        jobId: job.id,
        kind: 'charge',
        analyst: charge.analyst,
        period: charge.period,
        cost: addCosts(charge.cost),
        createdAt: job.created_at,
      },
      charge.event,
    );
  };

  const insertRequest = db.prepare<[string, string, string, string, string, string]>(
    'INSERT INTO job_requests (collaboration_id, submitted_by, request_key, fingerprint, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const requestRow = db.prepare<[string, string, string], { fingerprint: string; job_id: string }>(
    'SELECT fingerprint, job_id FROM job_requests WHERE collaboration_id = ? AND submitted_by = ? AND request_key = ?',
  );

  /** The row of the job a key queued, undefined for a new key; a key that came with another body is refused. */
  const requested = (collaborationId: string, submittedBy: string, request: JobRequest): JobRow | undefined => {
    const earlier = requestRow.get(collaborationId, submittedBy, request.key);
    if (earlier === undefined) return undefined;
    if (earlier.fingerprint !== request.fingerprint) throw keyReused(request.key);
    return select.get(earlier.job_id);
  };

  // The key is looked up inside the IMMEDIATE transaction: of two submissions racing with one key,
  // the second sees the first's row, so one job is queued and charged, never two.
  const createOnce = db.transaction((row: JobRow, events: readonly LogAppend[], charge: PrivacyChargeInput | undefined, request: JobRequest | undefined): JobRow => {
    const earlier = request === undefined ? undefined : requested(row.collaboration_id, row.submitted_by, request);
    if (earlier !== undefined) return earlier;
    insert.run(row);
    if (request !== undefined) insertRequest.run(row.collaboration_id, row.submitted_by, request.key, request.fingerprint, row.id, row.created_at);
    if (events.length > 0) appendEvents(events);
    if (charge !== undefined) chargeOnce(row, charge);
    return row;
  });
  const claimOnce = db.transaction(
    (workerId: string, measurement: string, now: string, events: ((job: JobRecord) => readonly LogAppend[]) | undefined): JobRow | undefined => {
      // A worker asks for work only when it holds none; a job it still holds is one whose claim
      // committed but whose answer never reached it. It gets that job again (no second entry):
      // else the job would stay running for good, charged, with no worker to end it.
      const held = heldBy.get(workerId);
      if (held !== undefined) return held;
      const job = queued.get(measurement);
      if (job === undefined) return undefined;
      take.run(workerId, now, job.id);
      const taken = select.get(job.id) as JobRow;
      const entries = events?.(toJob(taken)) ?? [];
      if (entries.length > 0) appendEvents(entries);
      return taken;
    },
  );
  // Inside the transaction that ends the job: a job ends once, so a refund can follow only its own
  // charge, and only once.
  const refundOnce = (id: string, now: string, refund: (charge: PrivacyChargeRecord) => LogAppend): void => {
    const charged = chargeOfJob.get(id, 'charge');
    if (charged === undefined || chargeOfJob.get(id, 'refund') !== undefined) return;
    const charge = toCharge(charged);
    recordCharge({ ...charge, kind: 'refund', createdAt: now }, refund(charge));
  };
  const finishOnce = db.transaction(
    (
      id: string,
      workerId: string,
      state: string,
      result: string | null,
      error: string | null,
      now: string,
      events: readonly LogAppend[],
      refund: ((charge: PrivacyChargeRecord) => LogAppend) | undefined,
    ) => {
      if (end.run(state, result, error, now, id, workerId).changes !== 1) {
        throw new MalusError('conflict', `job ${id} is not running on this worker`);
      }
      if (events.length > 0) markFinishedEntry.run(appendEvents(events), id);
      if (state === 'failed' && refund !== undefined) refundOnce(id, now, refund);
      return select.get(id) as JobRow;
    },
  );

  // Text comparison is time order: every time is written by toISOString (UTC, fixed width).
  const abandoned = db.prepare<[string], JobRow>(
    `SELECT ${JOB_COLUMNS.split(', ').map((c) => `jobs.${c}`).join(', ')} FROM jobs LEFT JOIN workers ON workers.id = jobs.worker_id
     WHERE jobs.state = 'running' AND (workers.id IS NULL OR workers.last_seen_at < ?) ORDER BY jobs.seq`,
  );
  const expireOne = db.prepare<[string, string, string]>(`UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ? AND state = 'running'`);
  const expireAll = db.transaction((cutoff: string, error: string, now: string, events: (job: JobRecord) => readonly LogAppend[]): JobRow[] => {
    const ended: JobRow[] = [];
    for (const row of abandoned.all(cutoff)) {
      if (expireOne.run(error, now, row.id).changes !== 1) continue;
      const entries = events(toJob(row));
      if (entries.length > 0) markFinishedEntry.run(appendEvents(entries), row.id);
      ended.push(select.get(row.id) as JobRow);
    }
    return ended;
  });

  const cancelOnce = db.transaction(
    (id: string, submittedBy: string, error: string, now: string, events: readonly LogAppend[], refund: (charge: PrivacyChargeRecord) => LogAppend) => {
      if (cancelQueued.run(error, now, id, submittedBy).changes !== 1) {
        throw new MalusError('conflict', `job ${id} is not queued: only a job no enclave has taken can be cancelled`);
      }
      if (events.length > 0) markFinishedEntry.run(appendEvents(events), id);
      // No enclave took the job, so nothing was read: its charge comes back.
      refundOnce(id, now, refund);
      return select.get(id) as JobRow;
    },
  );

  return {
    create(job, events = [], charge, request) {
      return attempt(db, 'queue a job', () => {
        try {
          const stored = createOnce.immediate(
            {
              id: job.id,
              collaboration_id: job.collaborationId,
              agreement_hash: job.agreementHash,
              kind: job.kind,
              spec: JSON.stringify(job.spec),
              datasets: JSON.stringify(job.datasets),
              measurements: JSON.stringify(job.measurements),
              state: job.state,
              submitted_by: job.submittedBy,
              worker_id: job.workerId,
              result: job.result === null ? null : JSON.stringify(job.result),
              error: job.error,
              finished_entry: null,
              created_at: job.createdAt,
              updated_at: job.updatedAt,
            },
            events,
            charge,
            request,
          );
          return toJob(stored);
        } catch (error) {
          if (isUniqueViolation(error)) throw new MalusError('conflict', `job ${job.id} exists`);
          throw error;
        }
      });
    },
    byRequest(collaborationId, submittedBy, request) {
      return attempt(db, 'read a job request', () => {
        const row = requested(collaborationId, submittedBy, request);
        return row === undefined ? undefined : toJob(row);
      });
    },
    get(id) {
      return attempt(db, 'read a job', () => {
        const row = select.get(id);
        return row === undefined ? undefined : toJob(row);
      });
    },
    claim(workerId, measurement, now, events) {
      return attempt(db, 'claim a job', () => {
        const row = claimOnce.immediate(workerId, measurement, now.toISOString(), events);
        return row === undefined ? undefined : toJob(row);
      });
    },
    finish(id, workerId, outcome, now, events = [], refund) {
      return attempt(db, 'finish a job', () => {
        const row = finishOnce.immediate(
          id,
          workerId,
          outcome.state,
          outcome.state === 'succeeded' ? JSON.stringify(outcome.result) : null,
          outcome.state === 'failed' ? outcome.error : null,
          now.toISOString(),
          events,
          refund,
        );
        return toJob(row);
      });
    },
    expire(cutoff, error, now, events) {
      return attempt(db, 'expire abandoned jobs', () => {
        // Looked for first without the write lock: this runs on every read of jobs, and nearly always finds none.
        if (abandoned.get(cutoff.toISOString()) === undefined) return [];
        return expireAll.immediate(cutoff.toISOString(), error, now.toISOString(), events).map(toJob);
      });
    },
    cancel(id, submittedBy, error, now, events = [], refund) {
      return attempt(db, 'cancel a job', () => toJob(cancelOnce.immediate(id, submittedBy, error, now.toISOString(), events, refund)));
    },
    list(collaborationId) {
      return attempt(db, 'list jobs', () => ofCollaboration.all(collaborationId).map(toJob));
    },
    charges(collaborationId, period) {
      return attempt(db, 'read privacy charges', () =>
        (period === undefined ? chargesOfCollaboration.all(collaborationId) : chargesOfPeriod.all(collaborationId, period)).map(toCharge),
      );
    },
  };
}

interface WorkerRow {
  id: string;
  platform: string;
  measurement: string;
  encryption_key: string;
  evidence_hash: string;
  evidence: string | null;
  certificates: string | null;
  challenge: string | null;
  registered_at: string;
  last_seen_at: string;
}

const WORKER_COLUMNS = 'id, platform, measurement, encryption_key, evidence_hash, evidence, certificates, challenge, registered_at, last_seen_at';

const toWorker = (row: WorkerRow): WorkerRecord => ({
  id: row.id,
  platform: row.platform,
  measurement: row.measurement,
  encryptionKey: row.encryption_key,
  evidenceHash: row.evidence_hash,
  evidence: row.evidence,
  certificates: row.certificates === null ? null : (JSON.parse(row.certificates) as string[]),
  challenge: row.challenge,
  registeredAt: row.registered_at,
  lastSeenAt: row.last_seen_at,
});

export function sqliteWorkers(db: Database.Database): WorkerRepository {
  const upsert = db.prepare<[WorkerRow]>(
    `INSERT INTO workers (${WORKER_COLUMNS})
     VALUES (@id, @platform, @measurement, @encryption_key, @evidence_hash, @evidence, @certificates, @challenge, @registered_at, @last_seen_at)
     ON CONFLICT (id) DO UPDATE SET platform = excluded.platform, measurement = excluded.measurement,
       encryption_key = excluded.encryption_key, evidence_hash = excluded.evidence_hash, evidence = excluded.evidence,
       certificates = excluded.certificates, challenge = excluded.challenge, registered_at = excluded.registered_at, last_seen_at = excluded.last_seen_at`,
  );
  const select = db.prepare<[string], WorkerRow>(`SELECT ${WORKER_COLUMNS} FROM workers WHERE id = ?`);
  const touch = db.prepare<[string, string]>('UPDATE workers SET last_seen_at = ? WHERE id = ?');
  const all = db.prepare<[], WorkerRow>(`SELECT ${WORKER_COLUMNS} FROM workers ORDER BY registered_at, id`);
  return {
    upsert(worker) {
      return attempt(db, 'register a worker', () => {
        upsert.run({
          id: worker.id,
          platform: worker.platform,
          measurement: worker.measurement,
          encryption_key: worker.encryptionKey,
          evidence_hash: worker.evidenceHash,
          evidence: worker.evidence,
          certificates: worker.certificates === null ? null : JSON.stringify(worker.certificates),
          challenge: worker.challenge,
          registered_at: worker.registeredAt,
          last_seen_at: worker.lastSeenAt,
        });
      });
    },
    get(id) {
      return attempt(db, 'read a worker', () => {
        const row = select.get(id);
        return row === undefined ? undefined : toWorker(row);
      });
    },
    touch(id, now) {
      return attempt(db, 'record a worker poll', () => {
        touch.run(now.toISOString(), id);
      });
    },
    list() {
      return attempt(db, 'list workers', () => all.all().map(toWorker));
    },
  };
}
