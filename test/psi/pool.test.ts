import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/crypto/index.js';
import { psiGroup, type PsiGroup } from '../../src/psi/group.js';
import { inThread, runBatch, type KernelResult } from '../../src/psi/kernel.js';
import { createPsiPool, type PsiPool } from '../../src/psi/pool.js';

// The workers run runKernel's own source; these check they give this thread's bytes, and pass on
// where an input was refused.

let group: PsiGroup;
let pool: PsiPool;
beforeAll(async () => {
  group = await psiGroup();
  pool = await createPsiPool(2);
});
afterAll(async () => {
  await pool.close();
});

const output = (result: KernelResult): string => ('output' in result ? toHex(result.output) : `failed at ${result.failedAt}`);

describe('the PSI worker pool', () => {
  it('gives the same bytes as this thread for every op', async () => {
    const n = 600;
    const scalar = group.randomScalar();
    const uniform = group.sodium.randombytes_buf(n * 64);
    const points = new Uint8Array(n * 32);
    const scalars = new Uint8Array(n * 32);
    for (let i = 0; i < n; i++) {
      points.set(group.sodium.crypto_core_ristretto255_random(), i * 32);
      scalars.set(group.randomScalar(), i * 32);
    }
    const here = inThread(group.sodium);
    for (const [op, input] of [['hash-mul', uniform], ['mul', points], ['base', scalars]] as const) {
      expect(output(await runBatch(pool, op, scalar, input))).toBe(output(await runBatch(here, op, scalar, input)));
    }
    const start = group.sodium.crypto_core_ristretto255_random();
    const step = group.sodium.crypto_core_ristretto255_random();
    const job = { op: 'chain', param: step, input: start, count: 300 } as const;
    expect(output(await pool.exec(job))).toBe(output(await here.exec(job)));
  });

  it('reports the index of the first refused input across chunks', async () => {
    const n = 1300;
    const points = new Uint8Array(n * 32);
    for (let i = 0; i < n; i++) points.set(group.sodium.crypto_core_ristretto255_random(), i * 32);
    points.fill(0, 1234 * 32, 1235 * 32);
    points.fill(0xff, 1500 * 32, 1501 * 32);
    const result = await runBatch(pool, 'mul', group.randomScalar(), points);
    expect(result).toEqual({ failedAt: 1234 });
  });

  it('leaves the caller its input', async () => {
    const points = group.sodium.crypto_core_ristretto255_random();
    await runBatch(pool, 'mul', group.randomScalar(), points);
    expect(points.length).toBe(32);
  });

  it('refuses work once closed', async () => {
    const other = await createPsiPool(1);
    await other.close();
    await expect(other.exec({ op: 'base', param: new Uint8Array(0), input: group.randomScalar(), count: 1 })).rejects.toThrow(/closed/);
  });

  it('refuses a thread count outside 1 to 64', async () => {
    await expect(createPsiPool(0)).rejects.toThrow(/1 to 64 threads/);
  });
});
