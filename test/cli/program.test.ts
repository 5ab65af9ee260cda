import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// The top level of the `malus` binary: help, version and bad usage.

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir });

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir();
});

afterAll(() => {
  removeDir(dir);
});

describe('malus', () => {
  it('--help lists the commands and exits 0', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(/^Usage: malus \[options\] \[command\]\n/);
    for (const command of ['demo', 'keygen', 'agreement', 'collab', 'serve', 'docs']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
  });

  it('--help on a subcommand', async () => {
    const help = await run(['agreement', 'verify', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: malus agreement verify \[options\] <file>\n/);
    expect(help.stdout).toContain('--signatures <paths...>');
  });

  it('--version prints the package version', async () => {
    const { version: packageVersion } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = await run(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toBe(`${packageVersion}\n`);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('an unknown command is bad usage', async () => {
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^error: unknown command 'frobnicate'\n/);
    expect(unknown.stderr).toContain('Usage: malus [options] [command]');
  });

  it('an unknown option is bad usage', async () => {
    const unknown = await run(['keygen', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error: unknown option '--bogus'\n/);
  });

  it('serve refuses an upload limit that is not a whole number of at least 1, before anything is made', async () => {
    for (const [flag, value] of [['--max-dataset-bytes', '0'], ['--max-pending-uploads', '2.5'], ['--max-dataset-bytes', '1e12'], ['--job-lease', '-5']] as const) {
      const refused = await run(['serve', '--data-dir', join(dir, 'never'), flag, value]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`${flag} takes a whole number of at least 1 (not "${value}")`);
      expect(hasStackTrace(refused.stderr)).toBe(false);
    }
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('serve refuses a job lease that two missed worker beats would run out', async () => {
    const refused = await run(['serve', '--data-dir', join(dir, 'never'), '--job-lease', '60']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--job-lease takes at least 90 seconds: two missed beats of the worker's 30 s must not end a job (not 60)");
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('no command at all prints help on standard error and exits 2', async () => {
    const bare = await run([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toContain('Usage: malus [options] [command]');
    expect(hasStackTrace(bare.stderr)).toBe(false);
  });
});
