import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus dp sample`, through the real binary: the enclave's exact samplers, for auditors.

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir });

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir();
});
afterAll(() => { removeDir(dir); });

describe('malus dp sample', () => {
  it.each([
    ['laplace', '2.5'],
    ['gaussian', '7/2'],
  ])('prints integers from the %s sampler at scale %s', async (mechanism, scale) => {
    const result = await run(['dp', 'sample', '--mechanism', mechanism, '--scale', scale, '--count', '5000']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5000);
    for (const line of lines) expect(line).toMatch(/^-?\d+$/);
    const values = lines.map(Number);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(Math.abs(mean)).toBeLessThan(1);
    expect(new Set(values).size).toBeGreaterThan(5);
  });

  it.each([
    ['an unknown mechanism', ['--mechanism', 'cauchy', '--scale', '1']],
    ['a zero scale', ['--mechanism', 'laplace', '--scale', '0']],
    ['a float in exponent form', ['--mechanism', 'laplace', '--scale', '1e3']],
    ['a negative count', ['--mechanism', 'laplace', '--scale', '1', '--count', '-3']],
  ])('exits 2 on %s', async (_name, args) => {
    const result = await run(['dp', 'sample', ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(hasStackTrace(result.stderr)).toBe(false);
  });
});
