import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeEvent, openCheckpoint, parseVerifierKey, rootFromLeafHashes, type LogEvent } from '../../src/ledger/index.js';
import { loadOrCreateLogKey, openTransparencyLog, startServer } from '../../src/server/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

// The log service over a real SQLite store in a temporary data directory: group commit, checkpoint
// cadence, restart, and refusal to start on a log that was truncated, forked or badly signed
// (tampered with through better-sqlite3, on the database file itself).

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function newDataDir(): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'malus-log-'));
  dirs.push(dataDir);
  return dataDir;
}

const event = (i: number): LogEvent => ({
  format: 'malus.event/v1',
  type: 'agreement.proposed',
  collaboration: 'log-test',
  actor: { kind: 'server', id: 'test' },
  time: '2026-11-22T10:00:00.000Z',
  agreement: `sha256:${i.toString(16).padStart(64, '0')}`,
  version: 1,
  previous: null,
});

const NOW = new Date('2026-11-22T10:00:00Z');

/** Opens the store and the log of a data directory; `appends` counts the store's append transactions. */
async function open(dataDir: string) {
  const store = openSqliteStore({ path: join(dataDir, 'malus.db') });
  let appends = 0;
  const counted: Store = {
    ...store,
    log: {
      ...store.log,
      append: (entries) => {
        appends += 1;
        return store.log.append(entries);
      },
    },
  };
  const now = () => NOW;
  try {
    const log = await openTransparencyLog({ store: counted, key: loadOrCreateLogKey(dataDir, undefined, now()), now });
    return { store, log, appends: () => appends };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** A data dir with 10 entries and a checkpoint at 10 (written by stop()), closed. */
async function prepared(): Promise<string> {
  const dataDir = newDataDir();
  const { store, log } = await open(dataDir);
  await log.append(Array.from({ length: 10 }, (_, i) => event(i)));
  await log.stop();
  expect((await store.log.latestCheckpoint())?.size).toBe(10);
  await store.close();
  return dataDir;
}

function withDatabase(dataDir: string, change: (db: Database.Database) => void): void {
  const db = new Database(join(dataDir, 'malus.db'));
  try {
    change(db);
  } finally {
    db.close();
  }
}

describe('group commit', () => {
  it('commits 500 concurrent appends in one transaction, with dense indexes in call order', async () => {
    const { store, log, appends } = await open(newDataDir());
    try {
      const results = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append([event(i)])));
      const indexes = results.flat();
      expect(new Set(indexes).size).toBe(500);
      expect([...indexes].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
      expect(appends()).toBe(1);
      expect(await store.log.size()).toBe(500);
      // Each caller's index holds that caller's entry.
      const stored = await store.log.entries(0, 500);
      results.forEach(([index], i) => {
        expect(Buffer.from(stored[index ?? -1]?.data ?? []).equals(Buffer.from(encodeEvent(event(i)))), `append ${i}`).toBe(true);
      });
      // Multi-entry appends keep their entries together.
      const [a, b] = await Promise.all([log.append([event(1000), event(1001), event(1002)]), log.append([event(2000), event(2001)])]);
      expect(a).toEqual([500, 501, 502]);
      expect(b).toEqual([503, 504]);
      expect(appends()).toBe(2);
      await log.sync();
      expect(log.tree.size).toBe(505);
    } finally {
      await store.close();
    }
  });
});

describe('checkpoints and restart', () => {
  it('signs a checkpoint only when the tree grew', async () => {
    const dataDir = newDataDir();
    const { store, log } = await open(dataDir);
    try {
      const verifier = parseVerifierKey(log.verifierKey)!;
      await log.append([event(1), event(2)]);
      const a = await log.checkpoint();
      const b = await log.checkpoint();
      expect(a.size).toBe(2);
      expect(b).toEqual(a);
      expect((await store.log.listCheckpoints()).map((c) => c.size)).toEqual([2]);
      const opened = openCheckpoint(a.note, verifier, log.origin);
      expect(opened.ok && Buffer.from(opened.checkpoint.root).equals(Buffer.from(log.tree.root(2)))).toBe(true);
      await log.append([event(3)]);
      const c = await log.checkpoint();
      expect(c.size).toBe(3);
      expect(await log.checkpoint()).toEqual(c);
      expect((await store.log.listCheckpoints()).map((x) => x.size)).toEqual([2, 3]);
      expect((await log.latestNote()).size).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('writes a final checkpoint on stop, and rebuilds the same root on restart', async () => {
    const dataDir = newDataDir();
    const first = await open(dataDir);
    await first.log.append([event(1), event(2)]);
    await first.log.checkpoint();
    await first.log.append([event(3)]);
    expect((await first.store.log.latestCheckpoint())?.size).toBe(2);
    await first.log.stop();
    const final = await first.store.log.latestCheckpoint();
    expect(final?.size).toBe(3);
    const root = Buffer.from(first.log.tree.root());
    const origin = first.log.origin;
    await first.store.close();

    const second = await open(dataDir);
    try {
      expect(second.log.origin).toBe(origin);
      expect(second.log.tree.size).toBe(3);
      expect(Buffer.from(second.log.tree.root()).equals(root)).toBe(true);
      expect(Buffer.from(final?.root ?? []).equals(root)).toBe(true);
      // Appends continue where the log left off.
      expect(await second.log.append([event(4)])).toEqual([3]);
      const next = await second.log.checkpoint();
      expect(next.size).toBe(4);
      const hashes = await second.store.log.leafHashes(0, 4);
      expect(Buffer.from(next.root).equals(Buffer.from(rootFromLeafHashes(hashes)))).toBe(true);
    } finally {
      await second.store.close();
    }
  });
});

describe('start-up refusal', () => {
  it('refuses a truncated log (its last entry deleted)', async () => {
    const dataDir = await prepared();
    withDatabase(dataDir, (db) => db.prepare('DELETE FROM log_entries WHERE idx = (SELECT max(idx) FROM log_entries)').run());
    await expect(open(dataDir)).rejects.toMatchObject({ name: 'MalusError', code: 'store-failure', message: expect.stringContaining('truncated') });
  });

  it('refuses a forked log (one byte of one leaf hash changed)', async () => {
    const dataDir = await prepared();
    withDatabase(dataDir, (db) => {
      const leaf = db.prepare<[], Buffer>('SELECT leaf_hash FROM log_entries WHERE idx = 4').pluck().get();
      if (leaf === undefined) throw new Error('no leaf 4');
      leaf[7] = (leaf[7] ?? 0) ^ 0x01;
      db.prepare('UPDATE log_entries SET leaf_hash = ? WHERE idx = 4').run(leaf);
    });
    await expect(open(dataDir)).rejects.toMatchObject({ name: 'MalusError', code: 'store-failure', message: expect.stringContaining('forked') });
  });

  it('refuses a log whose entry bytes were edited (its leaf hash left alone)', async () => {
    const dataDir = await prepared();
    withDatabase(dataDir, (db) => {
      const data = db.prepare<[], Buffer>('SELECT data FROM log_entries WHERE idx = 3').pluck().get();
      if (data === undefined) throw new Error('no entry 3');
      db.prepare('UPDATE log_entries SET data = ? WHERE idx = 3').run(Buffer.from(data.toString('utf8').replace('"version":1', '"version":2')));
    });
    await expect(open(dataDir)).rejects.toMatchObject({ name: 'MalusError', code: 'store-failure', message: expect.stringContaining('entry 3 does not hash to its leaf') });
  });

  it('refuses a checkpoint whose signature was changed', async () => {
    const dataDir = await prepared();
    withDatabase(dataDir, (db) => {
      const row = db.prepare<[], { size: number; note: string }>('SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1').get();
      if (row === undefined) throw new Error('no checkpoint');
      const [text, block = ''] = row.note.split('\n\n');
      const [dash, name, b64] = block.trim().split(' ');
      const bytes = Buffer.from(b64 ?? '', 'base64');
      bytes[20] = (bytes[20] ?? 0) ^ 1; // inside the Ed25519 signature, after the 4-byte key id
      db.prepare('UPDATE log_checkpoints SET note = ? WHERE size = ?').run(`${text}\n\n${dash} ${name} ${bytes.toString('base64')}\n`, row.size);
    });
    await expect(open(dataDir)).rejects.toMatchObject({ name: 'MalusError', code: 'store-failure', message: expect.stringContaining('does not verify') });
  });

  it('refuses a log whose key was lost or replaced: its checkpoints do not verify under the new one', async () => {
    const dataDir = await prepared();
    rmSync(join(dataDir, 'log-key.json'));
    await expect(open(dataDir)).rejects.toMatchObject({ code: 'store-failure', message: expect.stringContaining('does not verify') });
  });

  it('keeps the server from serving a tampered log, and changes nothing on the way', async () => {
    const dataDir = await prepared();
    const running = await startServer({ dataDir, host: '127.0.0.1', port: 0 });
    expect(running.log.tree.size).toBe(10);
    await running.close();
    withDatabase(dataDir, (db) => db.prepare('UPDATE log_entries SET leaf_hash = zeroblob(32) WHERE idx = 0').run());
    await expect(startServer({ dataDir, host: '127.0.0.1', port: 0 })).rejects.toMatchObject({
      code: 'store-failure',
      message: expect.stringContaining('forked'),
    });
    withDatabase(dataDir, (db) => {
      expect(db.prepare('SELECT count(*) FROM log_checkpoints').pluck().get()).toBe(1);
      expect(db.prepare('SELECT count(*) FROM log_entries').pluck().get()).toBe(10);
    });
  });
});
