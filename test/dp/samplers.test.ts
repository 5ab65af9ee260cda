import { describe, expect, it } from 'vitest';
import { bernoulli, bernoulliExp, discreteGaussian, discreteLaplace, parseRational, rational, uniformBelow } from '../../src/dp/index.js';
import { isMalusError } from '../../src/errors/index.js';

// The exact samplers (CKS 2020) against their exact distributions. Each bucket of 20,000 draws is
// tested with a binomial z-score bound of 6 (a false alarm below 1e-8 per bucket); the same test
// run against the distribution at 0.7x or 1.3x the scale must fail, which shows its power. The
// long statistical runs of the privacy issue go beyond these.

const N = 20_000;

function laplacePmf(b: number): (x: number) => number {
  const q = Math.exp(-1 / b);
  return (x) => ((1 - q) / (1 + q)) * q ** Math.abs(x);
}

function gaussianPmf(sigma: number): (x: number) => number {
  let total = 0;
  for (let x = -200; x <= 200; x++) total += Math.exp(-(x * x) / (2 * sigma * sigma));
  return (x) => Math.exp(-(x * x) / (2 * sigma * sigma)) / total;
}

/** The largest |z| over buckets -w..w (and the two tails) of the draws against the pmf. */
function worstZ(draws: readonly number[], pmf: (x: number) => number, width: number): number {
  const counts = new Map<number, number>();
  for (const d of draws) {
    const bucket = Math.max(-width - 1, Math.min(width + 1, d));
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  let worst = 0;
  for (let bucket = -width - 1; bucket <= width + 1; bucket++) {
    let p = 0;
    if (bucket === -width - 1 || bucket === width + 1) for (let x = width + 1; x < 2000; x++) p += pmf(x);
    else p = pmf(bucket);
    const expected = draws.length * p;
    const z = ((counts.get(bucket) ?? 0) - expected) / Math.sqrt(expected * (1 - p) + 1e-9);
    worst = Math.max(worst, Math.abs(z));
  }
  return worst;
}

describe('uniformBelow', () => {
  it('stays in range and reaches every value', () => {
    const seen = new Set<bigint>();
    for (let i = 0; i < 2000; i++) {
      const v = uniformBelow(7n);
      expect(v >= 0n && v < 7n).toBe(true);
      seen.add(v);
    }
    expect(seen.size).toBe(7);
    expect(uniformBelow(1n)).toBe(0n);
  });
});

describe('Bernoulli samplers', () => {
  it.each([[rational(1n, 3n)], [rational(0n)], [rational(1n)]])('bernoulli(%o) has the right frequency', (p) => {
    let ones = 0;
    for (let i = 0; i < N; i++) if (bernoulli(p)) ones++;
    const q = Number(p.num) / Number(p.den);
    expect(Math.abs(ones - N * q)).toBeLessThanOrEqual(6 * Math.sqrt(N * q * (1 - q)) + 1e-9);
  });

  it.each([['1/2'], ['3/2'], ['5']])('bernoulliExp(%s) is exp(-γ)', (text) => {
    const gamma = parseRational(text);
    const q = Math.exp(-Number(gamma.num) / Number(gamma.den));
    let ones = 0;
    for (let i = 0; i < N; i++) if (bernoulliExp(gamma)) ones++;
    expect(Math.abs(ones - N * q)).toBeLessThanOrEqual(6 * Math.sqrt(N * q * (1 - q)));
  });
});

describe('discreteLaplace', () => {
  it.each([['1'], ['5/2'], ['10']])('matches the discrete Laplace pmf at scale %s, and not at 0.7x or 1.3x', (text) => {
    const b = Number(parseRational(text).num) / Number(parseRational(text).den);
    const draws = Array.from({ length: N }, () => Number(discreteLaplace(parseRational(text))));
    const width = Math.max(4, Math.ceil(2 * b));
    expect(worstZ(draws, laplacePmf(b), width)).toBeLessThan(6);
    expect(worstZ(draws, laplacePmf(0.7 * b), width)).toBeGreaterThan(6);
    expect(worstZ(draws, laplacePmf(1.3 * b), width)).toBeGreaterThan(6);
  });
});

describe('discreteGaussian', () => {
  it.each([['1'], ['5/2'], ['8']])('matches the discrete Gaussian pmf at sigma %s, and not at 0.7x or 1.3x', (text) => {
    const sigma = Number(parseRational(text).num) / Number(parseRational(text).den);
    const draws = Array.from({ length: N }, () => Number(discreteGaussian(parseRational(text))));
    const width = Math.max(3, Math.ceil(2 * sigma));
    expect(worstZ(draws, gaussianPmf(sigma), width)).toBeLessThan(6);
    expect(worstZ(draws, gaussianPmf(0.7 * sigma), width)).toBeGreaterThan(6);
    expect(worstZ(draws, gaussianPmf(1.3 * sigma), width)).toBeGreaterThan(6);
  });
});

describe('parseRational', () => {
  it('reads decimals and fractions exactly', () => {
    expect(parseRational('2.5')).toEqual({ num: 5n, den: 2n });
    expect(parseRational('7/3')).toEqual({ num: 7n, den: 3n });
    expect(parseRational('100')).toEqual({ num: 100n, den: 1n });
    expect(parseRational('0.1')).toEqual({ num: 1n, den: 10n });
  });
  it.each([['0'], ['-1'], ['1e3'], ['abc'], ['1/0'], ['0/5'], ['']])('refuses %j', (text) => {
    let caught: unknown;
    try {
      parseRational(text);
    } catch (error) {
      caught = error;
    }
    expect(isMalusError(caught, 'invalid-input')).toBe(true);
  });
});

describe('parseRational', () => {
  it('reads decimals and fractions exactly, and names what it refuses', () => {
    expect(parseRational('2.50')).toEqual(rational(5n, 2n));
    expect(parseRational('7/3')).toEqual(rational(7n, 3n));
    expect(() => parseRational('-1')).toThrow('-1 is not positive');
    expect(() => parseRational('0')).toThrow('0 is not positive');
    expect(() => parseRational('1e3')).toThrow('"1e3" is not a decimal or a fraction a/b');
  });
});
