import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { createSimAttester, simPlatformAttester } from '../../src/attestation/index.js';
import { createClient, getJob, getLogKey, httpWorkerPort, runAudit, submitJob, submitQuery, type MalusClient } from '../../src/client/index.js';
import { fromHex } from '../../src/crypto/index.js';
import { createWorkerIdentity, pollOnce, readSimCa, registerWorker, type WorkerContext, type WorkerPort } from '../../src/engine/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { parseVerifierKey, type LogEvent } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { makeParties, removeDir, tempDir, uniqueId, type Parties } from './helpers.js';

// Job leases (docs/enclave.md, Claims): a running job whose worker stops reporting fails with
// `internal` once the lease runs out, its charge kept and its end logged by the queue; a worker
// that beats keeps its job. The lease here is 400 ms so that the test waits for real time.

const RUN = 'f1'.repeat(48);
const LEASE_MS = 400;

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;
let agreement: Agreement;

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function newWorker(): Promise<WorkerContext> {
  const identity = createWorkerIdentity();
  const sim = await createSimAttester(readSimCa(`${dataDir}/sim-ca.json`), new Date());
  const ctx: WorkerContext = {
    identity,
    attester: simPlatformAttester(sim, fromHex(RUN) ?? new Uint8Array()),
    port: httpWorkerPort(createClient({ server: server.url, keys: identity.keys })),
    now: () => new Date(),
  };
  await registerWorker(ctx);
  return ctx;
}

async function eventsOf(type: string): Promise<LogEvent[]> {
  const events = (await server.store.log.entriesOf([agreement.id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as LogEvent);
  return events.filter((e) => e.type === type);
}

beforeAll(async () => {
  dataDir = tempDir('malus-lease-');
  work = tempDir('malus-lease-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: RUN, jobLeaseMs: LEASE_MS });
  parties = makeParties('Lease ');
  agreement = await establishDp(server.url, parties, work, { id: uniqueId('lease'), measurements: [RUN] });
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

describe('a server that was down', () => {
  it('gives the workers of running jobs a whole lease from its start before it ends their jobs', async () => {
    const before = await newWorker();
    const job = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: ['d-1'] });
    expect((await before.port.claim())?.id).toBe(job.id);
    // A longer lease here, so that a slow start still leaves the first read inside it.
    const lease = 2000;
    await server.close();
    await pause(lease * 1.25);
    server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: RUN, jobLeaseMs: lease });
    // At once after the start: the job's worker has not been heard for longer than a lease, but
    // the server has not been up for one, so the job stays.
    expect((await getJob(clientOf(parties.publisher), agreement.id, job.id)).state).toBe('running');
    await pause(lease * 1.1);
    expect((await getJob(clientOf(parties.publisher), agreement.id, job.id)).state).toBe('failed');
    await server.close();
    server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: RUN, jobLeaseMs: LEASE_MS });
    // The other tests need the short lease from the start.
    await pause(LEASE_MS);
  }, 30_000);
});

describe('a running job whose worker goes silent', () => {
  it('fails with internal after the lease, logged by the queue, its charge kept, and the worker can no longer end it', async () => {
    const silent = await newWorker();
    const job = await submitQuery(clientOf(parties.advertiser), agreement.id, { sql: DP_SQL });
    expect((await silent.port.claim())?.id).toBe(job.id);
    await pause(LEASE_MS / 4);
    expect((await getJob(clientOf(parties.advertiser), agreement.id, job.id)).state).toBe('running');
    await pause(LEASE_MS * 1.5);

    const seen = await getJob(clientOf(parties.advertiser), agreement.id, job.id);
    expect(seen.state).toBe('failed');
    expect(seen.error).toBe('internal: the enclave worker holding the job stopped reporting for more than 400 ms');
    const ends = (await eventsOf('job.finished')).filter((e) => e.type === 'job.finished' && e.job === job.id);
    expect(ends).toEqual([expect.objectContaining({ actor: { kind: 'server', id: 'malus-queue' }, outcome: 'failed', result: null, code: 'internal' })]);
    expect((await server.store.jobs.charges(agreement.id)).filter((c) => c.jobId === job.id).map((c) => c.kind)).toEqual(['charge']);

    await expect(silent.port.heartbeat(job.id)).rejects.toMatchObject({ code: 'conflict' });
    await expect(silent.port.finish(job.id, { error: 'query-failed: late' })).rejects.toMatchObject({ code: 'conflict' });

    // The books still balance from the log alone: a job ended by the queue keeps its charge.
    const verifier = parseVerifierKey((await getLogKey(clientOf(parties.advertiser))).verifierKey);
    if (verifier === undefined) throw new Error('no log key');
    const audit = await runAudit(clientOf(parties.advertiser), verifier);
    expect(audit.problems).toEqual([]);
    expect(audit.budgets.find((b) => b.collaboration === agreement.id)).toMatchObject({ charges: 1, refunds: 0, server: { matches: true } });
  });

  it('is ended by any claim once its lease is out, and a worker back from a silence is given its own job again', async () => {
    const gone = await newWorker();
    const job = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: ['d-1'] });
    expect((await gone.port.claim())?.id).toBe(job.id);
    await pause(LEASE_MS * 1.5);
    const other = await newWorker();
    expect(await other.port.claim()).toBeUndefined();
    expect((await server.store.jobs.get(job.id))?.state).toBe('failed');

    const back = await newWorker();
    const second = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: ['d-1'] });
    expect((await back.port.claim())?.id).toBe(second.id);
    await pause(LEASE_MS * 1.5);
    // Its own claim comes first: it is seen again, so its job is not taken from it, and it gets it back.
    expect((await back.port.claim())?.id).toBe(second.id);
    expect((await server.store.jobs.get(second.id))?.state).toBe('running');
    await back.port.finish(second.id, { error: 'invalid-input: given up' });
  });
});

describe('the lease and the worker', () => {
  it('refuses a beat for a job the worker does not hold (404), and from a worker never registered (403)', async () => {
    const holder = await newWorker();
    const stranger = await newWorker();
    const job = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: ['d-1'] });
    expect((await holder.port.claim())?.id).toBe(job.id);
    await expect(stranger.port.heartbeat(job.id)).rejects.toMatchObject({ code: 'not-found' });
    const unregistered = httpWorkerPort(createClient({ server: server.url, keys: createWorkerIdentity().keys }));
    await expect(unregistered.heartbeat(job.id)).rejects.toMatchObject({ code: 'forbidden' });
    await holder.port.heartbeat(job.id);
    await holder.port.finish(job.id, { error: 'invalid-input: given up' });
    await expect(holder.port.heartbeat(job.id)).rejects.toMatchObject({ code: 'conflict' });
  });

  it('leaves a job the lease ended as the queue ended it: a late result is not turned into result-undelivered', async () => {
    const late = await newWorker();
    const uploaded = (await server.store.datasets.list(agreement.id)).map((d) => d.datasetId);
    const job = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: uploaded });
    const stalled: WorkerPort = {
      ...late.port,
      releaseChallenge: async (service) => {
        await pause(LEASE_MS * 2);
        // Someone reads the jobs meanwhile: the sweep ends the silent worker's job.
        await getJob(clientOf(parties.publisher), agreement.id, job.id);
        return late.port.releaseChallenge(service);
      },
    };
    expect(await pollOnce({ ...late, port: stalled, heartbeatMs: 60_000, failureReportDelaysMs: [1] })).toBe(true);
    const ended = await server.store.jobs.get(job.id);
    expect([ended?.state, ended?.error]).toEqual(['failed', 'internal: the enclave worker holding the job stopped reporting for more than 400 ms']);
    expect((await eventsOf('job.finished')).filter((e) => e.type === 'job.finished' && e.job === job.id)).toHaveLength(1);
  });
});

describe('a worker at its job', () => {
  it('keeps the job past the lease by beating, and the worker loop beats on its own while the job runs', async () => {
    const busy = await newWorker();
    const uploaded = (await server.store.datasets.list(agreement.id)).map((d) => d.datasetId);
    const job = await submitJob(clientOf(parties.publisher), agreement.id, { kind: 'key-check', datasets: uploaded });
    let beats = 0;
    // A job that takes three leases: its key release is slow to come, as a large download would be.
    let slowed = 0;
    const slow: WorkerPort = {
      ...busy.port,
      heartbeat: async (id) => {
        beats += 1;
        await busy.port.heartbeat(id);
      },
      releaseChallenge: async (service) => {
        slowed += 1;
        await pause(LEASE_MS * 3);
        return busy.port.releaseChallenge(service);
      },
    };
    const watcher = await newWorker();
    const polled = pollOnce({ ...busy, port: slow, heartbeatMs: LEASE_MS / 4 });
    await pause(LEASE_MS * 2);
    // Another worker's claim sweeps the queue: the beating worker's job stays.
    await watcher.port.claim();
    expect((await server.store.jobs.get(job.id))?.state).toBe('running');
    expect(await polled).toBe(true);
    expect(slowed).toBe(1);
    expect(beats).toBeGreaterThanOrEqual(4);
    // It ended as the worker reported it: a key check that the enclave signed.
    const ended = await server.store.jobs.get(job.id);
    expect(ended?.state, ended?.error ?? '').toBe('succeeded');
  });
});
