import { lstatSync, mkdtempSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

// A folder whose files live in memory (tmpfs): where decrypted or not-yet-encrypted Parquet may
// wait for DuckDB, since Parquet cannot be streamed in both directions through a pipe.
//
// Such a folder holds plaintext, so it must not outlive the work that made it: it is removed when
// the work ends, when the process exits, and when it is stopped by SIGINT, SIGTERM or SIGHUP (the
// signal then takes its usual course). A process killed outright (SIGKILL, a crash) cannot clean
// up; its folders carry its pid, and the next one to make such a folder removes those of
// processes that are gone.

const TMPFS_MAGIC = 0x01021994;
export const DEFAULT_MEMORY_DIR = '/dev/shm';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const NAME = /^(malus-(?:prepare|load))-(\d+)-[A-Za-z0-9]{6}$/;

export function isMemoryBacked(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

const live = new Set<string>();

function removeAll(): void {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  removeAll();
  stopWatching();
  // With no other listener Node would have ended the process: do so, by the same signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function startWatching(): void {
  process.on('exit', removeAll);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function stopWatching(): void {
  process.off('exit', removeAll);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Removes the scratch folders under `memoryDir` that this user's processes left when they were killed. */
export function sweepAbandoned(memoryDir: string): void {
  let names: string[];
  try {
    names = readdirSync(memoryDir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const pid = Number(NAME.exec(name)?.[2]);
    if (!Number.isSafeInteger(pid) || pid === process.pid || !processIsGone(pid)) continue;
    const path = join(memoryDir, name);
    try {
      const stat = lstatSync(path);
      if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
      rmSync(path, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}

export interface ScratchDir {
  readonly path: string;
  /** Removes the folder and everything in it; safe to call twice. */
  remove(): void;
}

/** A new folder (mode 0700) under the memory-backed `memoryDir`, removed however the process ends. */
export function memoryScratchDir(memoryDir: string, kind: 'prepare' | 'load'): ScratchDir {
  sweepAbandoned(memoryDir);
  const path = mkdtempSync(join(memoryDir, `malus-${kind}-${process.pid}-`));
  if (live.size === 0) startWatching();
  live.add(path);
  return {
    path,
    remove() {
      rmSync(path, { recursive: true, force: true });
      if (live.delete(path) && live.size === 0) stopWatching();
    },
  };
}
