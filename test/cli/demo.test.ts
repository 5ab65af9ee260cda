import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, assertFreshBuild, baseEnv, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus demo`: the whole story against a real server, in a temporary or given data directory.
// TMPDIR points into this file's own directory, so whatever the demo leaves behind is ours to see.

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir, env: { TMPDIR: dir }, timeoutMs: 120_000 });

function namedDataDir(stdout: string): { path: string; note: string } {
  const match = /^data directory: (.+) \((kept|removed at the end)\)$/m.exec(stdout);
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`the demo named no data directory:\n${stdout}`);
  return { path: match[1], note: match[2] };
}

function expectCompleteStory(stdout: string): void {
  expect(stdout).toMatch(/^Malus demo: two organizations agree on what may be computed over their data\.\n/);
  expect(stdout).toMatch(/^server: http:\/\/127\.0\.0\.1:\d+ /m);
  expect(stdout).toContain('\n1. Each organization makes its own identity\n');
  expect(stdout).toContain('a stranger asking for campaign-measurement: 404 not found');
  expect(stdout).toContain('   state: active\n');
  expect(stdout).toMatch(/advertiser: sim evidence verified; measurement [0-9a-f]{16}… is pinned by the agreement/);
  expect(stdout).toMatch(/publisher\): 200,000 rows \(ad impressions of 60,000 viewers\), [\d.]+ MB CSV -> [\d.]+ MB ciphertext/);
  expect(stdout).toMatch(/advertiser\): 50,000 rows \(purchases of 20,000 buyers/);
  expect(stdout).toMatch(/impressions-2026-11 uploaded \([\d.]+ MB in \d+ pieces?\), key registered: yes/);
  expect(stdout).toMatch(/searched \d+ server files for 14 e-mail hashes and campaign names: 0 found/);
  expect(stdout).toContain("impressions-2026-11: the enclave's commitment matches the owner's key; 200,000 rows decrypted into DuckDB");
  expect(stdout).toContain("conversions-2026-11: the enclave's commitment matches the owner's key; 50,000 rows decrypted into DuckDB");
  expect(stdout).toContain('entries dataset.registered: 2');
  expect(stdout).toContain('key release denied: measurement-not-pinned');
  expect(stdout).toContain('entries key.granted: 1');
  expect(stdout).toContain('entries key.denied: 1');
  expect(stdout).toContain('\nDone: the agreement is active, and only an attested enclave got the keys.');
}

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir();
});

afterAll(() => {
  removeDir(dir);
});

describe('malus demo', () => {
  it('runs the whole collaboration and removes its temporary data directory', async () => {
    const demo = await run(['demo']);
    expect(demo.code).toBe(0);
    expect(demo.stderr).toBe('');
    expectCompleteStory(demo.stdout);
    const { path, note } = namedDataDir(demo.stdout);
    expect(note).toBe('removed at the end');
    expect(path.startsWith(join(dir, 'malus-demo-'))).toBe(true);
    expect(existsSync(path)).toBe(false);
  }, 150_000);

  it('keeps the temporary data directory with --keep', async () => {
    const demo = await run(['demo', '--keep']);
    expect(demo.code).toBe(0);
    expectCompleteStory(demo.stdout);
    const { path, note } = namedDataDir(demo.stdout);
    expect(note).toBe('kept');
    try {
      expect(path.startsWith(join(dir, 'malus-demo-'))).toBe(true);
      expect(readdirSync(join(path, 'parties')).sort()).toEqual(['advertiser', 'advertiser.key.json', 'operator.key.json', 'publisher', 'publisher.key.json']);
      // Each provider's machine: its input, and its prepared dataset with the data key sealed to itself.
      expect(readdirSync(join(path, 'parties', 'advertiser')).sort()).toEqual(['conversions-2026-11', 'conversions.csv']);
      expect(statSync(join(path, 'parties', 'advertiser.key.json')).mode & 0o777).toBe(0o600);
      expect(existsSync(join(path, 'logs', 'server.log'))).toBe(true);
    } finally {
      removeDir(path);
    }
  }, 150_000);

  it('uses and keeps a given --data-dir', async () => {
    const given = join(dir, 'given');
    const demo = await run(['demo', '--data-dir', given]);
    expect(demo.code).toBe(0);
    expectCompleteStory(demo.stdout);
    expect(namedDataDir(demo.stdout)).toEqual({ path: given, note: 'kept' });
    expect(statSync(given).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(given, 'parties'))).toHaveLength(5);
    // No temporary directory was made.
    expect(readdirSync(dir).filter((name) => name.startsWith('malus-demo-'))).toEqual([]);
  }, 150_000);

  it('refuses a --data-dir that is already in use, before doing anything', async () => {
    const used = join(dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'notes.txt'), 'mine\n');
    const demo = await run(['demo', '--data-dir', used]);
    expect(demo.code).toBe(2);
    expect(demo.stdout).toBe('');
    expect(demo.stderr).toBe(`error: demo data directory ${used} is not empty; give a new or empty directory (or omit --data-dir)\n`);
    expect(readdirSync(used)).toEqual(['notes.txt']);
    // An empty directory is fine.
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const ok = await run(['demo', '--data-dir', empty]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('\nDone: the agreement is active, and only an attested enclave got the keys.');
  });

  it('finishes and cleans up when its reader goes away (malus demo | head -2)', async () => {
    const child = spawn(process.execPath, [BIN, 'demo'], { cwd: dir, env: baseEnv({ TMPDIR: dir }), stdio: ['ignore', 'pipe', 'pipe'] });
    let first = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8');
    // Read the first lines, then close our end of the pipe, as `head` does.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        first += chunk;
        if (first.includes('\ndata directory: ')) {
          child.stdout.destroy();
          resolve();
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(hasStackTrace(stderr)).toBe(false);
    expect(code).toBe(0);
    expect(existsSync(namedDataDir(first).path)).toBe(false);
  });
});
