import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import {
  STORE_SCHEMA_VERSION,
  openSqliteStore,
  type ChallengeRecord,
  type DatasetKeyRecord,
  type JobRecord,
  type LogAppend,
  type Store,
  type WorkerRecord,
} from '../../src/store/index.js';
import { MIGRATIONS, migrate } from '../../src/store/sqlite/migrations.js';

// The repositories behind key release and the job queue, on SQLite in memory and in a file:
// single-use challenges, data keys registered once, jobs that go to exactly one worker.

const T0 = new Date('2026-03-01T12:00:00.000Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
const M1 = 'a1'.repeat(48);
const M2 = 'b2'.repeat(48);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function freshFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'malus-confidential-store-'));
  dirs.push(dir);
  return join(dir, 'malus.db');
}

async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'no error',
    (error: unknown) => {
      if (isMalusError(error)) return error.code;
      throw error;
    },
  );
}

let counter = 0;
const unique = (stem: string): string => `${stem}-${(counter += 1)}`;

function challenge(purpose = 'release', issuedAt = T0): ChallengeRecord {
  return { challenge: unique('challenge'), purpose, issuedAt, expiresAt: new Date(issuedAt.getTime() + 60_000) };
}

function key(changes: Partial<DatasetKeyRecord> = {}): DatasetKeyRecord {
  return {
    datasetId: unique('dataset'),
    collaborationId: 'collab-a',
    table: 'impressions',
    owner: '0123456789abcdef0123',
    wrappedKey: new Uint8Array(61).fill(7),
    keyCommitment: `sha256:${'1'.repeat(64)}`,
    agreementHash: `sha256:${'2'.repeat(64)}`,
    createdAt: T0.toISOString(),
    ...changes,
  };
}

function job(changes: Partial<JobRecord> = {}): JobRecord {
  const id = `job-${(counter += 1).toString(16).padStart(32, '0')}`;
  return {
    id,
    collaborationId: 'collab-a',
    agreementHash: `sha256:${'2'.repeat(64)}`,
    kind: 'key-check',
    spec: { kind: 'key-check', datasets: ['d-1'] },
    datasets: ['d-1'],
    measurements: [M1],
    state: 'queued',
    submittedBy: '0123456789abcdef0123',
    workerId: null,
    result: null,
    error: null,
    finishedEntry: null,
    createdAt: T0.toISOString(),
    updatedAt: T0.toISOString(),
    ...changes,
  };
}

function worker(changes: Partial<WorkerRecord> = {}): WorkerRecord {
  return {
    id: unique('worker'),
    platform: 'sim',
    measurement: M1,
    encryptionKey: 'k'.repeat(43),
    evidenceHash: `sha256:${'3'.repeat(64)}`,
    evidence: 'ZXZpZGVuY2U',
    certificates: ['Y2VydA', 'cm9vdA'],
    challenge: 'c'.repeat(43),
    registeredAt: T0.toISOString(),
    lastSeenAt: T0.toISOString(),
    ...changes,
  };
}

function event(collaborationId: string, type: string): LogAppend {
  const data = new TextEncoder().encode(JSON.stringify({ type, collaboration: collaborationId, n: (counter += 1) }));
  return { data, leafHash: new Uint8Array(32).fill(counter % 256), collaborationId, type };
}

describe.each([
  { name: ':memory:', path: () => ':memory:' },
  { name: 'a file', path: freshFile },
])('confidential repositories on SQLite ($name)', ({ path }) => {
  let store: Store;

  beforeEach(() => {
    store = openSqliteStore({ path: path() });
  });

  afterEach(async () => {
    await store.close();
  });

  describe('challenges', () => {
    it('are single use under concurrency: of ten consumers, exactly one gets it', async () => {
      const issued = challenge();
      await store.keys.issueChallenge(issued);
      const results = await Promise.all(Array.from({ length: 10 }, () => store.keys.consumeChallenge(issued.challenge, 'release', at(1))));
      const won = results.filter((r) => r !== undefined);
      expect(won).toEqual([issued]);
      expect(await store.keys.consumeChallenge(issued.challenge, 'release', at(2))).toBeUndefined();
    });

    it('are refused once expired, and accepted until then', async () => {
      const late = challenge();
      const inTime = challenge();
      await store.keys.issueChallenge(late);
      await store.keys.issueChallenge(inTime);
      expect(await store.keys.consumeChallenge(late.challenge, 'release', at(60))).toBeUndefined();
      expect(await store.keys.consumeChallenge(inTime.challenge, 'release', new Date(inTime.expiresAt.getTime() - 1))).toEqual(inTime);
    });

    it('are refused for another purpose, and stay usable for their own', async () => {
      const issued = challenge('registration');
      await store.keys.issueChallenge(issued);
      expect(await store.keys.consumeChallenge(issued.challenge, 'release', at(1))).toBeUndefined();
      expect(await store.keys.consumeChallenge(issued.challenge, 'service', at(1))).toBeUndefined();
      expect(await store.keys.consumeChallenge(issued.challenge, 'registration', at(1))).toEqual(issued);
    });

    it('are refused when never issued', async () => {
      expect(await store.keys.consumeChallenge('never-issued', 'release', at(1))).toBeUndefined();
    });

    it('are pruned once expired, without touching live ones', async () => {
      const old = challenge('release', at(-3600));
      await store.keys.issueChallenge(old);
      const live = challenge();
      await store.keys.issueChallenge(live);
      expect(await store.keys.consumeChallenge(old.challenge, 'release', at(-3599))).toBeUndefined();
      expect(await store.keys.consumeChallenge(live.challenge, 'release', at(1))).toEqual(live);
    });
  });

  describe('data keys', () => {
    it('stores a key with its events, answers the same key again as a duplicate without writing', async () => {
      const record = key();
      expect(await store.keys.putKey(record, [event('collab-a', 'key.registered')])).toBe('added');
      expect(await store.log.size()).toBe(1);
      expect(await store.keys.putKey({ ...record, createdAt: at(5).toISOString(), wrappedKey: new Uint8Array(61).fill(9) }, [event('collab-a', 'key.registered')])).toBe(
        'duplicate',
      );
      expect(await store.log.size()).toBe(1);
      expect(await store.keys.keysOf(record.collaborationId, [record.datasetId])).toEqual([record]);
    });

    it('refuses another key, owner or table under the same dataset id (conflict), writing nothing', async () => {
      const record = key();
      await store.keys.putKey(record);
      const others: Partial<DatasetKeyRecord>[] = [
        { keyCommitment: `sha256:${'9'.repeat(64)}` },
        { owner: 'fedcba9876543210fedc' },
        { table: 'conversions' },
      ];
      for (const other of others) {
        expect(await rejectionCode(store.keys.putKey({ ...record, ...other }, [event('collab-a', 'key.registered')])), JSON.stringify(other)).toBe('conflict');
      }
      expect(await store.log.size()).toBe(0);
      expect(await store.keys.keysOf(record.collaborationId, [record.datasetId])).toEqual([record]);
    });

    it('scopes dataset ids to their collaboration: the same id elsewhere is another dataset, and reveals nothing', async () => {
      const record = key();
      await store.keys.putKey(record);
      const elsewhere = { ...record, collaborationId: 'collab-b', keyCommitment: `sha256:${'9'.repeat(64)}` };
      expect(await store.keys.putKey(elsewhere)).toBe('added');
      expect(await store.keys.keysOf('collab-b', [record.datasetId])).toEqual([elsewhere]);
      expect(await store.keys.keysOf(record.collaborationId, [record.datasetId])).toEqual([record]);
    });

    it('reads keys in the order asked, skipping unknown ones, and lists a collaboration sorted by dataset', async () => {
      const b = key({ datasetId: unique('list-b'), collaborationId: 'collab-list' });
      const a = key({ datasetId: unique('list-a'), collaborationId: 'collab-list' });
      const elsewhere = key({ collaborationId: 'collab-other' });
      for (const record of [b, a, elsewhere]) await store.keys.putKey(record);
      expect(await store.keys.keysOf(a.collaborationId, [b.datasetId, 'unknown', a.datasetId])).toEqual([b, a]);
      expect(await store.keys.listKeys('collab-list')).toEqual([a, b]);
      expect(await store.keys.listKeys('collab-none')).toEqual([]);
      expect(await rejectionCode(store.keys.keysOf('collab-a', Array.from({ length: 501 }, (_, i) => `d-${i}`)))).toBe('invalid-input');
    });
  });

  describe('jobs', () => {
    it('gives a job to exactly one of two workers claiming at once', async () => {
      const queued = job();
      await store.jobs.create(queued, [event('collab-a', 'job.submitted')]);
      expect(await store.log.size()).toBe(1);
      const [first, second] = await Promise.all([store.jobs.claim('worker-1', M1, at(1)), store.jobs.claim('worker-2', M1, at(1))]);
      const winners = [first, second].filter((j) => j !== undefined);
      expect(winners).toHaveLength(1);
      expect(winners[0]).toMatchObject({ id: queued.id, state: 'running', updatedAt: at(1).toISOString() });
      expect((await store.jobs.get(queued.id))?.workerId).toBe(first === undefined ? 'worker-2' : 'worker-1');
    });

    it('gives a worker only jobs that accept its measurement, oldest first', async () => {
      const older = job({ measurements: [M2] });
      const newer = job({ measurements: [M1, M2] });
      await store.jobs.create(older);
      await store.jobs.create(newer);
      expect(await store.jobs.claim('worker-x', 'c3'.repeat(48), at(1))).toBeUndefined();
      expect((await store.jobs.claim('worker-1', M1, at(1)))?.id).toBe(newer.id);
      expect(await store.jobs.claim('worker-3', M1, at(2))).toBeUndefined();
      expect((await store.jobs.claim('worker-2', M2, at(3)))?.id).toBe(older.id);
      // A worker that asks while it holds a job (its claim's answer was lost) gets that job again.
      expect((await store.jobs.claim('worker-1', M1, at(4)))?.id).toBe(newer.id);
    });

    it("keeps a submission's idempotency key: the same key and fingerprint give the first job back, another fingerprint is refused", async () => {
      const first = job();
      const request = { key: unique('retry-key-0000'), fingerprint: `sha256:${'1'.repeat(64)}` };
      expect((await store.jobs.create(first, [event(first.collaborationId, 'job.submitted')], undefined, request)).id).toBe(first.id);
      const size = await store.log.size();
      const retry = job();
      expect((await store.jobs.create(retry, [event(retry.collaborationId, 'job.submitted')], undefined, request)).id).toBe(first.id);
      expect(await store.jobs.get(retry.id)).toBeUndefined();
      expect(await store.log.size()).toBe(size);
      expect(await rejectionCode(store.jobs.create(job(), [], undefined, { ...request, fingerprint: `sha256:${'2'.repeat(64)}` }))).toBe('idempotency-key-reused');
      expect(await store.jobs.byRequest(first.collaborationId, first.submittedBy, request)).toMatchObject({ id: first.id });
      expect(await rejectionCode(store.jobs.byRequest(first.collaborationId, first.submittedBy, { ...request, fingerprint: `sha256:${'2'.repeat(64)}` }))).toBe('idempotency-key-reused');
      expect(await store.jobs.byRequest(first.collaborationId, 'someone-else', request)).toBeUndefined();
      // Another submitter's same key is a key of its own.
      const theirs = job({ submittedBy: 'other-party' });
      expect((await store.jobs.create(theirs, [], undefined, request)).id).toBe(theirs.id);
    });

    it('expires the running jobs of workers unseen since the cutoff, or gone, once each, with their entries, and no other job', async () => {
      const silent = worker();
      const beating = worker();
      for (const w of [silent, beating]) await store.workers.upsert(w);
      const abandoned = job({ measurements: [M1] });
      const alive = job({ measurements: [M1] });
      const orphan = job({ measurements: [M1] });
      const waiting = job({ measurements: [M2] });
      for (const j of [abandoned, alive, orphan, waiting]) await store.jobs.create(j);
      expect((await store.jobs.claim(silent.id, M1, at(1)))?.id).toBe(abandoned.id);
      expect((await store.jobs.claim(beating.id, M1, at(1)))?.id).toBe(alive.id);
      expect((await store.jobs.claim('unregistered-worker', M1, at(1)))?.id).toBe(orphan.id);
      await store.workers.touch(silent.id, at(10));
      await store.workers.touch(beating.id, at(100));
      const size = await store.log.size();
      const ended = await store.jobs.expire(at(50), 'internal: gone', at(200), (j) => [event(j.collaborationId, `ended ${j.id}`)]);
      expect(ended.map((j) => [j.id, j.state, j.error, j.updatedAt])).toEqual([
        [abandoned.id, 'failed', 'internal: gone', at(200).toISOString()],
        [orphan.id, 'failed', 'internal: gone', at(200).toISOString()],
      ]);
      expect(ended.every((j) => typeof j.finishedEntry === 'number')).toBe(true);
      expect(await store.log.size()).toBe(size + 2);
      expect((await store.jobs.get(alive.id))?.state).toBe('running');
      expect((await store.jobs.get(waiting.id))?.state).toBe('queued');
      expect(await store.jobs.expire(at(50), 'internal: gone', at(300), () => [])).toEqual([]);
    });

    it('finds a job for a worker behind a long queue of jobs for other measurements', async () => {
      for (let i = 0; i < 120; i += 1) await store.jobs.create(job({ measurements: [M2] }));
      const wanted = job({ measurements: [M1] });
      await store.jobs.create(wanted);
      expect((await store.jobs.claim('worker-1', M1, at(1)))?.id).toBe(wanted.id);
    });

    it('lets only the holding worker finish a running job, once (conflict otherwise)', async () => {
      const queued = job();
      await store.jobs.create(queued);
      expect(await rejectionCode(store.jobs.finish(queued.id, 'worker-1', { state: 'failed', error: 'x' }, at(1)))).toBe('conflict');
      await store.jobs.claim('worker-1', M1, at(1));
      expect(await rejectionCode(store.jobs.finish(queued.id, 'worker-2', { state: 'failed', error: 'x' }, at(2), [event('collab-a', 'job.finished')]))).toBe(
        'conflict',
      );
      const result = { statement: { job: queued.id }, signature: 'sig' };
      const finished = await store.jobs.finish(queued.id, 'worker-1', { state: 'succeeded', result }, at(3), [event('collab-a', 'job.finished')]);
      expect(finished).toMatchObject({ state: 'succeeded', result, error: null, workerId: 'worker-1', updatedAt: at(3).toISOString(), finishedEntry: 0 });
      expect(await rejectionCode(store.jobs.finish(queued.id, 'worker-1', { state: 'failed', error: 'again' }, at(4)))).toBe('conflict');
      expect(await store.jobs.get(queued.id)).toEqual(finished);
      // Only the one finish that happened was logged.
      expect((await store.log.entriesOf(['collab-a'])).map((e) => e.type)).toEqual(['job.finished']);
    });

    it('appends the events of a claim with it, made from the job taken, and none when there is no job', async () => {
      const queued = job();
      await store.jobs.create(queued);
      const seen: string[] = [];
      const started = (taken: JobRecord): LogAppend[] => {
        seen.push(`${taken.id}:${taken.state}:${taken.workerId ?? ''}`);
        return [event('collab-a', 'job.started')];
      };
      expect((await store.jobs.claim('worker-1', M1, at(1), started))?.id).toBe(queued.id);
      expect(await store.jobs.claim('worker-2', M1, at(2), started)).toBeUndefined();
      // The held job again, with no second entry.
      expect((await store.jobs.claim('worker-1', M1, at(2), started))?.id).toBe(queued.id);
      expect(seen).toEqual([`${queued.id}:running:worker-1`]);
      expect((await store.log.entriesOf(['collab-a'])).map((e) => e.type)).toEqual(['job.started']);
      // An event that cannot be appended undoes the claim.
      const other = job();
      await store.jobs.create(other);
      const broken = (): LogAppend[] => [{ ...event('collab-a', 'job.started'), leafHash: new Uint8Array(3) }];
      expect(await rejectionCode(store.jobs.claim('worker-2', M1, at(3), broken))).toBe('invalid-input');
      expect((await store.jobs.get(other.id))?.state).toBe('queued');
    });

    it('records a failure with its error', async () => {
      const queued = job();
      await store.jobs.create(queued);
      await store.jobs.claim('worker-1', M1, at(1));
      expect(await store.jobs.finish(queued.id, 'worker-1', { state: 'failed', error: 'key-release-denied: no key' }, at(2))).toMatchObject({
        state: 'failed',
        result: null,
        error: 'key-release-denied: no key',
      });
    });

    it('refuses a second job under the same id (conflict), and lists a collaboration newest first', async () => {
      const first = job({ collaborationId: 'collab-jobs' });
      const second = job({ collaborationId: 'collab-jobs' });
      await store.jobs.create(first);
      await store.jobs.create(second);
      expect(await rejectionCode(store.jobs.create({ ...first, kind: 'other' }, [event('collab-jobs', 'job.submitted')]))).toBe('conflict');
      expect(await store.log.size()).toBe(0);
      expect((await store.jobs.list('collab-jobs')).map((j) => j.id)).toEqual([second.id, first.id]);
      expect(await store.jobs.get(first.id)).toEqual(first);
      expect(await store.jobs.get(`job-${'f'.repeat(32)}`)).toBeUndefined();
    });
  });

  describe('workers', () => {
    it('upserts, reads, touches and lists workers', async () => {
      const a = worker();
      const b = worker({ registeredAt: at(10).toISOString(), lastSeenAt: at(10).toISOString() });
      await store.workers.upsert(b);
      await store.workers.upsert(a);
      expect(await store.workers.get(a.id)).toEqual(a);
      expect(await store.workers.get('unknown')).toBeUndefined();
      expect(await store.workers.list()).toEqual([a, b]);

      await store.workers.touch(a.id, at(20));
      expect(await store.workers.get(a.id)).toEqual({ ...a, lastSeenAt: at(20).toISOString() });
      await store.workers.touch('unknown', at(20));
      expect(await store.workers.list()).toHaveLength(2);

      const refreshed = { ...a, measurement: M2, evidenceHash: `sha256:${'4'.repeat(64)}`, registeredAt: at(30).toISOString(), lastSeenAt: at(30).toISOString() };
      await store.workers.upsert(refreshed);
      expect(await store.workers.get(a.id)).toEqual(refreshed);
      expect(await store.workers.list()).toHaveLength(2);
    });
  });
});

describe('two connections to one file', () => {
  it('share a challenge: presented on both at once, it is used once', async () => {
    const path = freshFile();
    const [one, two] = [openSqliteStore({ path }), openSqliteStore({ path })];
    try {
      const issued = challenge();
      await one.keys.issueChallenge(issued);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? one : two).keys.consumeChallenge(issued.challenge, 'release', at(1))));
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('give a job to one of them only', async () => {
    const path = freshFile();
    const [one, two] = [openSqliteStore({ path }), openSqliteStore({ path })];
    try {
      await one.jobs.create(job());
      const claims = await Promise.all([one.jobs.claim('worker-1', M1, at(1)), two.jobs.claim('worker-2', M1, at(1))]);
      expect(claims.filter((c) => c !== undefined)).toHaveLength(1);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('migration of a version-2 file', () => {
  it('upgrades to the current schema version, keeping the log, with working key, job and worker tables', async () => {
    const path = freshFile();
    const old = new Database(path);
    migrate(old, MIGRATIONS.slice(0, 2), () => T0);
    old
      .prepare('INSERT INTO log_entries (idx, leaf_hash, data, collaboration_id, type) VALUES (0, ?, ?, ?, ?)')
      .run(Buffer.alloc(32, 1), Buffer.from('{"type":"agreement.proposed"}'), 'collab-old', 'agreement.proposed');
    expect(old.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(2);
    old.close();
    expect(STORE_SCHEMA_VERSION).toBeGreaterThan(2);

    const store = openSqliteStore({ path });
    try {
      expect(await store.log.size()).toBe(1);
      expect((await store.log.entry(0))?.type).toBe('agreement.proposed');
      const issued = challenge();
      await store.keys.issueChallenge(issued);
      expect(await store.keys.consumeChallenge(issued.challenge, 'release', at(1))).toEqual(issued);
      const record = key();
      expect(await store.keys.putKey(record)).toBe('added');
      await store.jobs.create(job());
      expect(await store.jobs.claim('worker-1', M1, at(1))).toBeDefined();
      await store.workers.upsert(worker());
      expect(await store.workers.list()).toHaveLength(1);
    } finally {
      await store.close();
    }
    const check = new Database(path, { readonly: true });
    try {
      const versions = check.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
      expect(versions).toEqual(Array.from({ length: STORE_SCHEMA_VERSION }, (_, i) => i + 1));
    } finally {
      check.close();
    }
  });
});

describe('migration of a version-4 file', () => {
  it('keeps workers and jobs, with no registration evidence and no finished entry', async () => {
    const path = freshFile();
    const old = new Database(path);
    migrate(old, MIGRATIONS.slice(0, 4), () => T0);
    old
      .prepare(`INSERT INTO workers (id, platform, measurement, encryption_key, evidence_hash, registered_at, last_seen_at) VALUES ('w-old', 'sim', ?, ?, ?, ?, ?)`)
      .run(M1, 'k'.repeat(43), `sha256:${'3'.repeat(64)}`, T0.toISOString(), T0.toISOString());
    old.close();
    const store = openSqliteStore({ path });
    try {
      expect(await store.workers.get('w-old')).toMatchObject({ id: 'w-old', evidence: null, certificates: null, challenge: null });
      const queued = job();
      await store.jobs.create(queued);
      expect((await store.jobs.get(queued.id))?.finishedEntry).toBeNull();
    } finally {
      await store.close();
    }
  });
});
