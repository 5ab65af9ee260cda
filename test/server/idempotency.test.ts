import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { createClient, listJobs, submitJob, submitQuery, type MalusClient } from '../../src/client/index.js';
import { isMalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import type { LogEvent } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { expectProblem, inject, makeParties, prepare, removeDir, tempDir, uniqueId, wallClock, type Parties } from './helpers.js';

// Retrying a job submission (docs/api.md): a body's idempotencyKey makes a retry give back the job
// the first try queued, charged and logged once, even when the tries race or the first answer is
// lost on the wire. No worker has QUEUED's measurement, so every job here stays queued.

const QUEUED = 'e9'.repeat(48);
const clock = wallClock;

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;

const clientOf = (keys: PartyKeys, url = server.url): MalusClient => createClient({ server: url, keys, timeoutMs: 10_000 });
const jobsPath = (id: string): string => `/v1/collaborations/${id}/jobs`;
const post = (as: PartyKeys, id: string, json: unknown) => inject(server, prepare({ clock }, { method: 'POST', path: jobsPath(id), json, as }));

async function eventsOf(id: string, type: string): Promise<LogEvent[]> {
  const events = (await server.store.log.entriesOf([id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as LogEvent);
  return events.filter((e) => e.type === type);
}

beforeAll(async () => {
  dataDir = tempDir('malus-idempotency-');
  work = tempDir('malus-idempotency-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: QUEUED });
  parties = makeParties('Retry ');
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

describe('a submission with an idempotency key', () => {
  let agreement: Agreement;
  beforeAll(async () => {
    // A budget of two queries: a retry that charged again would show at once.
    agreement = await establishDp(server.url, parties, work, { id: uniqueId('retry'), measurements: [QUEUED], privacy: { budget: { epsilon: 0.2, delta: 0.001 } } });
  }, 30_000);

  it('queues one job on the first try (201) and gives the same job back on a retry (200), charged and logged once', async () => {
    const body = { kind: 'query', sql: DP_SQL, idempotencyKey: 'retry-first-0000000001' };
    const first = await post(parties.advertiser, agreement.id, body);
    expect(first.statusCode, first.body).toBe(201);
    const again = await post(parties.advertiser, agreement.id, body);
    expect(again.statusCode, again.body).toBe(200);
    const job = first.json().id as string;
    expect(again.json().id as string).toBe(job);
    expect((await server.store.jobs.charges(agreement.id)).map((c) => c.jobId)).toEqual([job]);
    expect((await eventsOf(agreement.id, 'job.submitted')).map((e) => (e.type === 'job.submitted' ? e.job : ''))).toEqual([job]);
  });

  it('gives the job back even once the budget is spent, and refuses a fresh key then', async () => {
    const spending = await post(parties.advertiser, agreement.id, { kind: 'query', sql: DP_SQL, idempotencyKey: 'retry-second-000000001' });
    expect(spending.statusCode, spending.body).toBe(201);
    expectProblem(await post(parties.advertiser, agreement.id, { kind: 'query', sql: DP_SQL, idempotencyKey: 'retry-third-0000000001' }), 409, 'budget-exhausted');
    const replay = await post(parties.advertiser, agreement.id, { kind: 'query', sql: DP_SQL, idempotencyKey: 'retry-first-0000000001' });
    expect(replay.statusCode, replay.body).toBe(200);
    expect(await server.store.jobs.charges(agreement.id)).toHaveLength(2);
  });

  it('refuses the key with another body as 422 idempotency-key-reused, writing nothing', async () => {
    const before = (await listJobs(clientOf(parties.advertiser), agreement.id)).length;
    const other = { kind: 'query', sql: `${DP_SQL} ORDER BY campaign_id`, idempotencyKey: 'retry-first-0000000001' };
    expectProblem(await post(parties.advertiser, agreement.id, other), 422, 'idempotency-key-reused', 'idempotency key retry-first-0000000001 was used for a different submission in this collaboration');
    expectProblem(await post(parties.advertiser, agreement.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: 'retry-first-0000000001' }), 422, 'idempotency-key-reused');
    expect(await listJobs(clientOf(parties.advertiser), agreement.id)).toHaveLength(before);
    expect(await server.store.jobs.charges(agreement.id)).toHaveLength(2);
  });

  it("keeps keys apart per submitter: another party's same key queues its own job", async () => {
    const mine = await post(parties.advertiser, agreement.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: 'shared-key-0000000001' });
    const theirs = await post(parties.publisher, agreement.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: 'shared-key-0000000001' });
    expect([mine.statusCode, theirs.statusCode]).toEqual([201, 201]);
    expect(mine.json().id as string).not.toBe(theirs.json().id as string);
  });

  it('refuses a key of the wrong shape, naming the field', async () => {
    const problem = expectProblem(await post(parties.advertiser, agreement.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: 'short' }), 400, 'invalid-input');
    expect(JSON.stringify(problem.issues)).toContain('body.idempotencyKey');
  });
});

describe('racing and lost answers', () => {
  let agreement: Agreement;
  beforeAll(async () => {
    agreement = await establishDp(server.url, parties, work, { id: uniqueId('retry-race'), measurements: [QUEUED] });
  }, 30_000);

  it('queues and charges one job for 20 tries racing with one key, and answers each with it', async () => {
    const analyst = clientOf(parties.advertiser);
    const jobs = await Promise.all(Array.from({ length: 20 }, () => submitQuery(analyst, agreement.id, { sql: DP_SQL, idempotencyKey: 'racing-key-0000000001' })));
    expect(new Set(jobs.map((j) => j.id)).size).toBe(1);
    expect(await server.store.jobs.charges(agreement.id)).toHaveLength(1);
    expect(await eventsOf(agreement.id, 'privacy.charged')).toHaveLength(1);
  });

  it('queues one job when tries with one key but different bodies race, and refuses the others as idempotency-key-reused', async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => ({ kind: 'key-check', datasets: [`d-${i % 2}`], idempotencyKey: 'racing-other-key-000001' }));
    const answers = await Promise.all(bodies.map((body) => post(parties.advertiser, agreement.id, body)));
    const codes = answers.map((a) => a.statusCode).sort();
    expect(codes.filter((c) => c === 201)).toHaveLength(1);
    // Those with the winner's body get its job; the others are refused.
    const winner = answers.find((a) => a.statusCode === 201)?.json().id as string;
    for (const answer of answers.filter((a) => a.statusCode === 200)) expect(answer.json().id).toBe(winner);
    expect(codes.filter((c) => c === 422)).toHaveLength(3);
  });

  it('keeps keys apart per collaboration: the same key elsewhere queues a job of its own', async () => {
    const elsewhere = await establishDp(server.url, parties, work, { id: uniqueId('retry-elsewhere'), measurements: [QUEUED] });
    const key = 'same-key-each-room-0001';
    const here = await post(parties.advertiser, agreement.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: key });
    const there = await post(parties.advertiser, elsewhere.id, { kind: 'key-check', datasets: ['d-1'], idempotencyKey: key });
    expect([here.statusCode, there.statusCode]).toEqual([201, 201]);
    expect(here.json().id).not.toBe(there.json().id);
  }, 30_000);

  it('gives every submission of the SDK a fresh key: two calls queue two jobs', async () => {
    const analyst = clientOf(parties.advertiser);
    const [a, b] = await Promise.all([submitQuery(analyst, agreement.id, { sql: DP_SQL }), submitQuery(analyst, agreement.id, { sql: DP_SQL })]);
    expect(a.id).not.toBe(b.id);
  });

  it('tries again under the same key when the answer is lost on the wire, and gets the one job back', async () => {
    // A real fault: the first connection reaches the server, and is cut before its answer returns.
    const proxy = await cuttingProxy(new URL(server.url).port);
    try {
      const before = await listJobs(clientOf(parties.advertiser), agreement.id);
      const charged = (await server.store.jobs.charges(agreement.id)).length;
      const job = await submitQuery(clientOf(parties.advertiser, proxy.url), agreement.id, { sql: DP_SQL });
      expect(proxy.cut).toBe(1);
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
      const queued = (await listJobs(clientOf(parties.advertiser), agreement.id)).filter((j) => !before.some((b) => b.id === j.id));
      expect(queued.map((j) => j.id)).toEqual([job.id]);
      // Charged once, for that job.
      const charges = await server.store.jobs.charges(agreement.id);
      expect(charges).toHaveLength(charged + 1);
      expect(charges.at(-1)?.jobId).toBe(job.id);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after its tries when the server stays unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => { resolve(); }));
    const error = await submitJob(clientOf(parties.publisher, `http://127.0.0.1:${port}`), agreement.id, { kind: 'key-check', datasets: ['d-1'] }).catch((e: unknown) => e);
    expect(isMalusError(error, 'server-unreachable'), String(error)).toBe(true);
  }, 20_000);
});

/** A TCP proxy to the server that cuts its first connection once the server starts answering. */
async function cuttingProxy(port: string): Promise<{ url: string; cut: number; connections: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { cut: 0, connections: 0 };
  const proxy: Server = createServer((client) => {
    state.connections += 1;
    const cutThis = state.cut === 0;
    const upstream = connect(Number(port), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (data: Buffer) => {
      if (cutThis) {
        state.cut += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(data);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    get cut() {
      return state.cut;
    },
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => { resolve(); });
      }),
  };
}
