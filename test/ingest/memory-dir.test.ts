import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MEMORY_DIR, isMemoryBacked, memoryScratchDir, sweepAbandoned } from '../../src/ingest/memory-dir.js';

// The scratch folders that hold plaintext Parquet on tmpfs must not outlive their work: removed
// when it ends, when the process is stopped by a signal, and, after a kill that leaves no chance
// to clean up, by the next process that makes one.

const root = mkdtempSync(join(DEFAULT_MEMORY_DIR, 'memory-dir-test-'));
const module = join(import.meta.dirname, '../../src/ingest/memory-dir.ts');

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Runs a script that makes a scratch folder with a file in it, then waits; resolves with how it ended and the folder. */
function stopped(signal: NodeJS.Signals, ownListener: boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; dir: string; stdout: string }> {
  const script = `import { writeFileSync } from 'node:fs';
import { memoryScratchDir } from ${JSON.stringify(module)};
${ownListener ? `process.on(${JSON.stringify(signal)}, () => { console.log('own listener ran'); setTimeout(() => process.exit(0), 50); });` : ''}
const scratch = memoryScratchDir(${JSON.stringify(root)}, 'prepare');
writeFileSync(scratch.path + '/payload.parquet', 'PAR1 plaintext');
console.log(scratch.path);
setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString('utf8');
      if (stdout.includes('\n') && !child.killed) child.kill(signal);
    });
    child.on('error', reject);
    child.on('exit', (code, sig) => { resolve({ code, signal: sig, dir: stdout.split('\n')[0] ?? '', stdout }); });
  });
}

describe('memory scratch folders', () => {
  it('lives on tmpfs here (the tests below need one)', () => {
    expect(isMemoryBacked(root)).toBe(true);
  });

  it('is a 0700 folder named by kind and pid, gone once removed, and removing twice is harmless', () => {
    const scratch = memoryScratchDir(root, 'load');
    expect(scratch.path).toMatch(new RegExp(`/malus-load-${process.pid}-[A-Za-z0-9]{6}$`));
    writeFileSync(join(scratch.path, 'payload.parquet'), 'x');
    scratch.remove();
    scratch.remove();
    expect(existsSync(scratch.path)).toBe(false);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('is removed when %s stops the process, which then ends by that signal', async (signal) => {
    const run = await stopped(signal, false);
    expect(run.dir).toMatch(/malus-prepare-/);
    expect(run.signal).toBe(signal);
    expect(existsSync(run.dir)).toBe(false);
  }, 30_000);

  it('is removed on a signal the process handles itself, and the process goes on to its own end', async () => {
    const run = await stopped('SIGINT', true);
    expect(run.stdout).toContain('own listener ran');
    expect(run.code).toBe(0);
    expect(existsSync(run.dir)).toBe(false);
  }, 30_000);

  it('is swept by the next process after a SIGKILL, while folders of live processes and other names stay', () => {
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    const sweepRoot = mkdtempSync(join(root, 'sweep-'));
    const abandoned = join(sweepRoot, `malus-prepare-${gone}-AbC123`);
    const alive = join(sweepRoot, `malus-load-${process.ppid}-XyZ789`);
    const other = join(sweepRoot, 'malus-prepare-notapid-AbC123');
    for (const dir of [abandoned, alive, other]) {
      mkdirSync(dir);
      writeFileSync(join(dir, 'payload.parquet'), 'PAR1');
    }
    sweepAbandoned(sweepRoot);
    expect(readdirSync(sweepRoot).sort()).toEqual([`malus-load-${process.ppid}-XyZ789`, 'malus-prepare-notapid-AbC123'].sort());
    // Making a folder sweeps first.
    mkdirSync(abandoned);
    memoryScratchDir(sweepRoot, 'prepare').remove();
    expect(existsSync(abandoned)).toBe(false);
  });
});
