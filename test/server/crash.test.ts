import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeEvent, rootFromLeafHashes } from '../../src/ledger/index.js';
import { loadOrCreateLogKey, openTransparencyLog } from '../../src/server/index.js';
import { openSqliteStore } from '../../src/store/index.js';

// Faults a mock cannot produce: a process killed in the middle of appending, and two processes
// appending to the same log at once. Both run the built code (dist/) in real child processes.

const SCRIPT = resolve('test/fixtures/processes/append-forever.mjs');
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function appender(dataDir: string, tag: string, limit?: number): { child: ChildProcess; ready: Promise<void>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [SCRIPT, dataDir, tag, ...(limit === undefined ? [] : [String(limit)])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ready = new Promise<void>((resolveReady, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolveReady();
    });
    child.on('exit', (code) => {
      reject(new Error(`appender exited early (${String(code)}): ${stderr}`));
    });
  });
  const exited = new Promise<number | null>((resolveExit) => {
    child.on('exit', (code) => {
      resolveExit(code);
    });
  });
  return { child, ready, exited };
}

async function reopenAndCheck(dataDir: string): Promise<number> {
  const store = openSqliteStore({ path: join(dataDir, 'malus.db') });
  try {
    const now = () => new Date();
    // Refuses to open if the stored leaves do not reproduce the newest checkpoint.
    const log = await openTransparencyLog({ store, key: loadOrCreateLogKey(dataDir, 'crash.test/log', now()), now });
    const size = await store.log.size();
    const entries = await store.log.entries(0, size);
    expect(entries.map((e) => e.index)).toEqual(Array.from({ length: size }, (_, i) => i));
    for (const entry of entries) expect(decodeEvent(entry.data).ok, `entry ${entry.index}`).toBe(true);
    expect(Buffer.from(log.tree.root()).equals(Buffer.from(rootFromLeafHashes(entries.map((e) => e.leafHash))))).toBe(true);
    const checkpoint = await store.log.latestCheckpoint();
    expect(checkpoint?.size ?? 0).toBeLessThanOrEqual(size);
    return size;
  } finally {
    await store.close();
  }
}

describe('the log under faults', () => {
  it('keeps no partial entry and an intact tree after a process is killed mid-append', async () => {
    if (!existsSync('dist/server/index.js')) throw new Error('run npm run build first');
    const dataDir = mkdtempSync(join(tmpdir(), 'malus-crash-'));
    dirs.push(dataDir);
    const run = appender(dataDir, 'killed');
    await run.ready;
    await new Promise((r) => setTimeout(r, 700));
    run.child.kill('SIGKILL');
    await run.exited;
    const size = await reopenAndCheck(dataDir);
    expect(size).toBeGreaterThan(0);
    // And the log keeps working after the crash.
    const again = appender(dataDir, 'after', 40);
    expect(await again.exited).toBe(0);
    expect(await reopenAndCheck(dataDir)).toBe(size + 40);
  });

  it('gives two concurrent appender processes no gap and no duplicate index', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'malus-concurrent-'));
    dirs.push(dataDir);
    // Make the log key first so that both processes share it rather than race to create it.
    loadOrCreateLogKey(dataDir, 'crash.test/log', new Date());
    const a = appender(dataDir, 'a', 400);
    const b = appender(dataDir, 'b', 400);
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    expect(await reopenAndCheck(dataDir)).toBe(800);
    const store = openSqliteStore({ path: join(dataDir, 'malus.db') });
    const tags = (await store.log.entries(0, 800)).map((e) => JSON.parse(new TextDecoder().decode(e.data)).actor.id as string);
    await store.close();
    expect(tags.filter((t) => t === 'a')).toHaveLength(400);
    expect(tags.filter((t) => t === 'b')).toHaveLength(400);
  });
});
