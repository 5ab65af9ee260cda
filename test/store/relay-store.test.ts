import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMalusError, type ErrorCode } from '../../src/errors/index.js';
import { leafHash } from '../../src/ledger/index.js';
import { openSqliteStore, type LogAppend, type RelayRunRecord, type Store } from '../../src/store/index.js';
import { MIGRATIONS, migrate } from '../../src/store/sqlite/migrations.js';

// The relay's repository on real SQLite files: runs and their log entries land together, messages
// are kept once and read in (step, seq) order within a byte budget, and a run ends once.

const T0 = new Date('2026-03-01T12:00:00.000Z');
const ALICE = 'a'.repeat(20);
const BOB = 'b'.repeat(20);
const CAROL = 'c'.repeat(20);
const COLLAB = 'collab-relay';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function freshFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'malus-relay-store-'));
  dirs.push(dir);
  return join(dir, 'malus.db');
}

let counter = 0;
function run(changes: Partial<RelayRunRecord> = {}): RelayRunRecord {
  counter += 1;
  return {
    id: `run-${counter.toString(16).padStart(32, '0')}`,
    collaborationId: COLLAB,
    kind: 'secagg',
    computation: 'spend_total',
    mode: null,
    agreementHash: `sha256:${'1'.repeat(64)}`,
    parties: [ALICE, BOB, CAROL],
    parameters: { threshold: 2, vectorLength: 4, clip: 1, fractionBits: 8, receivers: [ALICE] },
    state: 'open',
    startedBy: ALICE,
    summary: null,
    finishedBy: null,
    createdAt: T0.toISOString(),
    finishedAt: null,
    ...changes,
  };
}

function entry(type: string): LogAppend {
  const data = new TextEncoder().encode(JSON.stringify({ type, n: (counter += 1) }));
  return { data, leafHash: leafHash(data), collaborationId: COLLAB, type };
}

/** A leaf the log refuses (its hash is not 32 bytes): whatever was written with it must be undone. */
const broken: LogAppend = { data: new Uint8Array([1]), leafHash: new Uint8Array(31), collaborationId: COLLAB, type: 'run.started' };

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'no error'> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    if (isMalusError(error)) return error.code;
    throw error;
  }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

describe('the relay repository', () => {
  let store: Store;
  beforeEach(() => {
    store = openSqliteStore({ path: freshFile() });
  });
  afterEach(async () => {
    await store.close();
  });

  const post = (r: RelayRunRecord, sender: string, recipient: string, step: number, data: string) =>
    store.relay.postMessage({ collaborationId: r.collaborationId, runId: r.id, sender, recipient, step, data: bytes(data), createdAt: T0.toISOString() });

  it('records a run with its entry, or neither', async () => {
    const started = run();
    await store.relay.createRun(started, [entry('run.started')]);
    expect(await store.relay.getRun(COLLAB, started.id)).toEqual({ ...started, relayed: { messages: 0, bytes: 0 } });
    expect(await store.log.size()).toBe(1);

    const failed = run();
    expect(await codeOf(store.relay.createRun(failed, [broken]))).toBe('invalid-input');
    expect(await store.relay.getRun(COLLAB, failed.id)).toBeUndefined();
    expect(await store.log.size()).toBe(1);
    expect(await codeOf(store.relay.createRun(started))).toBe('conflict');
    expect(await store.relay.getRun('another-collab', started.id)).toBeUndefined();
    const later = run();
    await store.relay.createRun(later);
    expect((await store.relay.listRuns(COLLAB)).map((r) => r.id)).toEqual([later.id, started.id]);
  });

  it('keeps a message once, numbering a run’s messages in the order they arrive', async () => {
    const r = run();
    await store.relay.createRun(r);
    expect(await post(r, ALICE, BOB, 0, 'first')).toMatchObject({ added: true, message: { seq: 0, sha256: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) } });
    expect((await post(r, BOB, '*', 0, 'second')).message.seq).toBe(1);
    const again = await post(r, ALICE, BOB, 0, 'first');
    expect(again).toMatchObject({ added: false, message: { seq: 0 } });
    expect(text(again.message.data)).toBe('first');
    expect(await codeOf(post(r, ALICE, BOB, 0, 'changed'))).toBe('conflict');
    expect((await post(r, ALICE, CAROL, 0, 'first')).message.seq).toBe(2);
    expect(await store.relay.getRun(COLLAB, r.id)).toMatchObject({ relayed: { messages: 3, bytes: 16 } });

    expect(await codeOf(post(r, 'd'.repeat(20), BOB, 1, 'x'))).toBe('invalid-input');
    expect(await codeOf(post(r, ALICE, ALICE, 1, 'x'))).toBe('invalid-input');
    expect(await codeOf(post(r, ALICE, 'd'.repeat(20), 1, 'x'))).toBe('invalid-input');
    expect(await codeOf(post(r, ALICE, BOB, -1, 'x'))).toBe('invalid-input');
    expect(await codeOf(post({ ...r, id: `run-${'f'.repeat(32)}` }, ALICE, BOB, 1, 'x'))).toBe('not-found');
    expect(await codeOf(post({ ...r, collaborationId: 'another-collab' }, ALICE, BOB, 1, 'x'))).toBe('not-found');
  });

  it('reads the messages for a party in (step, seq) order after a cursor, as many as fit the budget', async () => {
    const r = run();
    await store.relay.createRun(r);
    await post(r, BOB, ALICE, 2, 'b2');
    await post(r, CAROL, '*', 1, 'c1');
    await post(r, ALICE, '*', 1, 'mine');
    await post(r, BOB, CAROL, 1, 'not for alice');
    await post(r, BOB, ALICE, 1, 'b1');
    await post(r, CAROL, ALICE, 2, 'c2-longer');
    const read = async (after: number, maxBytes: number, afterSeq?: number) => {
      const answer = await store.relay.messagesFor(COLLAB, r.id, ALICE, { after, ...(afterSeq === undefined ? {} : { afterSeq }) }, maxBytes);
      return { got: answer.messages.map((m) => `${m.step}/${m.seq}:${text(m.data)}`), more: answer.more };
    };
    expect(await read(-1, 1000)).toEqual({ got: ['1/1:c1', '1/4:b1', '2/0:b2', '2/5:c2-longer'], more: false });
    expect(await read(1, 1000)).toEqual({ got: ['2/0:b2', '2/5:c2-longer'], more: false });
    // A budget cuts between messages, never inside one, and always gives at least one.
    expect(await read(-1, 5)).toEqual({ got: ['1/1:c1', '1/4:b1'], more: true });
    expect(await read(1, 5, 4)).toEqual({ got: ['2/0:b2'], more: true });
    expect(await read(2, 5, 0)).toEqual({ got: ['2/5:c2-longer'], more: false });
    expect(await read(2, 1000)).toEqual({ got: [], more: false });
    expect(await codeOf(store.relay.messagesFor(COLLAB, r.id, ALICE, { after: -2 }, 10))).toBe('invalid-input');
    expect(await codeOf(store.relay.messagesFor('another-collab', r.id, ALICE, { after: -1 }, 10))).toBe('not-found');
  });

  it('ends a run once, with entries made from it and its totals in the same transaction', async () => {
    const r = run();
    await store.relay.createRun(r);
    await post(r, ALICE, '*', 0, 'abc');
    await post(r, BOB, '*', 0, 'de');
    const finish = { state: 'finished' as const, by: BOB, summary: { kind: 'secagg', dropouts: 0 }, now: new Date(T0.getTime() + 1000) };

    expect(await codeOf(store.relay.finishRun(COLLAB, r.id, finish, () => [broken]))).toBe('invalid-input');
    expect(await store.relay.getRun(COLLAB, r.id)).toMatchObject({ state: 'open', summary: null, finishedAt: null });
    const size = await store.log.size();

    let seen: { run: RelayRunRecord; relayed: { messages: number; bytes: number } } | undefined;
    const ended = await store.relay.finishRun(COLLAB, r.id, finish, (endedRun, relayed) => {
      seen = { run: endedRun, relayed };
      return [entry('run.finished')];
    });
    expect(seen?.relayed).toEqual({ messages: 2, bytes: 5 });
    expect(seen?.run.state).toBe('finished');
    expect(ended).toMatchObject({ state: 'finished', finishedBy: BOB, summary: { kind: 'secagg', dropouts: 0 }, finishedAt: finish.now.toISOString(), relayed: { messages: 2, bytes: 5 } });
    expect(await store.relay.getRun(COLLAB, r.id)).toEqual(ended);
    expect(await store.log.size()).toBe(size + 1);

    expect(await codeOf(store.relay.finishRun(COLLAB, r.id, { ...finish, state: 'failed' }))).toBe('conflict');
    expect(await codeOf(post(r, CAROL, '*', 0, 'late'))).toBe('conflict');
    expect((await post(r, ALICE, '*', 0, 'abc')).added).toBe(false);
    expect(await codeOf(store.relay.finishRun(COLLAB, `run-${'e'.repeat(32)}`, finish))).toBe('not-found');
  });
});

describe('migration of a version-6 file', () => {
  it('adds the relay tables and keeps what was there', async () => {
    const path = freshFile();
    const old = new Database(path);
    migrate(old, MIGRATIONS.slice(0, 6), () => T0);
    old.close();
    const store = openSqliteStore({ path });
    try {
      const r = run();
      await store.relay.createRun(r);
      expect((await store.relay.listRuns(COLLAB)).map((x) => x.id)).toEqual([r.id]);
    } finally {
      await store.close();
    }
  });
});
