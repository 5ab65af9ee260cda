import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/ledger/index.js';
import { loadOrCreateLogKey, openTransparencyLog, startServer } from '../../src/server/index.js';
import { openSqliteStore } from '../../src/store/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

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

async function open(dataDir: string) {
  const store = openSqliteStore({ path: join(dataDir, 'malus.db') });
  const now = () => new Date('2026-11-22T10:00:00Z');
  try {
    return { store, log: await openTransparencyLog({ store, key: loadOrCreateLogKey(dataDir, undefined, now()), now }) };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** A data dir with 10 entries and a checkpoint at 10, closed. */
async function prepared(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'malus-log-'));
  dirs.push(dataDir);
  const { store, log } = await open(dataDir);
  await log.append(Array.from({ length: 10 }, (_, i) => event(i)));
  await log.stop();
  await store.close();
  return dataDir;
}

function tamper(dataDir: string, sql: string): void {
  const db = new Database(join(dataDir, 'malus.db'));
  db.exec(sql);
  db.close();
}

describe('the transparency log service', () => {
  it('group-commits concurrent appends into dense indexes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'malus-log-'));
    dirs.push(dataDir);
    const { store, log } = await open(dataDir);
    const indexes = (await Promise.all(Array.from({ length: 500 }, (_, i) => log.append([event(i)])))).flat();
    expect(indexes.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(await store.log.size()).toBe(500);
    await store.close();
  });

  it('signs a checkpoint only when the log grew, and rebuilds the same root on restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'malus-log-'));
    dirs.push(dataDir);
    const first = await open(dataDir);
    await first.log.append([event(1), event(2)]);
    const a = await first.log.checkpoint();
    const b = await first.log.checkpoint();
    expect(b).toEqual(a);
    expect((await first.store.log.listCheckpoints()).length).toBe(1);
    await first.log.append([event(3)]);
    await first.log.stop();
    expect((await first.store.log.latestCheckpoint())?.size).toBe(3);
    const root = Buffer.from(first.log.tree.root());
    await first.store.close();
    const second = await open(dataDir);
    expect(Buffer.from(second.log.tree.root()).equals(root)).toBe(true);
    await second.store.close();
  });

  it('refuses to start on a truncated log', async () => {
    const dataDir = await prepared();
    tamper(dataDir, 'DELETE FROM log_entries WHERE idx = 9');
    await expect(open(dataDir)).rejects.toMatchObject({ code: 'store-failure', message: expect.stringContaining('truncated') });
  });

  it('refuses to start on a log whose leaf was edited', async () => {
    const dataDir = await prepared();
    tamper(dataDir, "UPDATE log_entries SET leaf_hash = zeroblob(32) WHERE idx = 4");
    await expect(open(dataDir)).rejects.toMatchObject({ code: 'store-failure', message: expect.stringContaining('forked') });
  });

  it('refuses to start when its checkpoint signature is tampered with', async () => {
    const dataDir = await prepared();
    const db = new Database(join(dataDir, 'malus.db'));
    const row = db.prepare('SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1').get() as { size: number; note: string };
    const [text, sigLine = ''] = row.note.split('\n\n');
    const [dash, name, b64] = sigLine.trim().split(' ');
    const bytes = Buffer.from(b64 ?? '', 'base64');
    bytes[20] = (bytes[20] ?? 0) ^ 1;
    db.prepare('UPDATE log_checkpoints SET note = ? WHERE size = ?').run(`${text}\n\n${dash} ${name} ${bytes.toString('base64')}\n`, row.size);
    db.close();
    await expect(open(dataDir)).rejects.toMatchObject({ code: 'store-failure', message: expect.stringContaining('does not verify') });
  });

  it('keeps the server from serving a forked log', async () => {
    const dataDir = await prepared();
    tamper(dataDir, 'UPDATE log_entries SET leaf_hash = zeroblob(32) WHERE idx = 0');
    await expect(startServer({ dataDir, host: '127.0.0.1', port: 0 })).rejects.toMatchObject({ code: 'store-failure' });
  });
});
