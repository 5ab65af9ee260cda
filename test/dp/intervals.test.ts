import { describe, expect, it } from 'vitest';
import { erfc } from '../../src/dp/intervals.js';
import { discreteGaussian, discreteLaplace, gaussianHalfWidth, laplaceHalfWidth, noiseHalfWidth, parseRational, rational } from '../../src/dp/index.js';
import { isMalusError } from '../../src/errors/index.js';

// Half-widths of the noise's 95% interval against values computed by hand and with mpmath (40
// digits), against brute-force sums of the pmf, and against draws from the real samplers.

const num = (text: string): number => {
  const r = parseRational(text);
  return Number(r.num) / Number(r.den);
};

/** P(|X| ≤ w) for w = 0, 1, …, summed term by term from an unnormalised symmetric pmf. */
function bruteWidth(weight: (x: number) => number, reach: number, level: number): number {
  let total = weight(0);
  for (let x = 1; x <= reach; x++) total += 2 * weight(x);
  let inside = weight(0);
  let w = 0;
  while (inside / total < level) {
    w += 1;
    inside += 2 * weight(w);
  }
  return w;
}

describe('erfc', () => {
  // mpmath's 30-digit values, rounded to the nearest double.
  it.each([
    [0, 1],
    [0.1, 0.8875370839817152],
    [0.5, 0.4795001221869535],
    [1, 0.15729920705028513],
    [1.5, 0.033894853524689274],
    [1.9999, 0.004679802092970609],
    [2, 0.004677734981047266],
    [2.5, 0.0004069520174449589],
    [3, 2.209049699858544e-5],
    [5, 1.537459794428035e-12],
    [10, 2.088487583762545e-45],
    [26, 5.663192408856143e-296],
    [-1, 1.8427007929497148],
  ])('erfc(%d) has a relative error below 1e-13', (x, value) => {
    expect(Math.abs(erfc(x) - value) / value).toBeLessThan(1e-13);
  });
});

describe('laplaceHalfWidth', () => {
  it('matches the closed form worked by hand', () => {
    // b = 1: P(|X| > w) = 2e^-(w+1)/(1 + e^-1) is 0.0728 at w = 2 and 0.0268 at w = 3.
    expect(laplaceHalfWidth(rational(1n))).toBe(3);
    expect(laplaceHalfWidth(rational(1n), 0.99)).toBe(4);
  });

  it.each([
    ['7/3', 7],
    ['10', 30],
    ['100', 300],
    ['0.1', 0],
    ['1000000', 2995732],
  ])('scale %s gives %d (mpmath)', (scale, width) => {
    expect(laplaceHalfWidth(parseRational(scale))).toBe(width);
  });

  it.each([['1/2'], ['1'], ['7/3'], ['5'], ['33'], ['250']])('scale %s agrees with a brute-force sum', (scale) => {
    const b = num(scale);
    for (const level of [0.5, 0.9, 0.95, 0.999]) {
      const brute = bruteWidth((x) => Math.exp(-x / b), Math.ceil(60 * b) + 10, level);
      expect(laplaceHalfWidth(parseRational(scale), level)).toBe(brute);
    }
  });
});

describe('gaussianHalfWidth', () => {
  it('matches small cases worked by hand', () => {
    // σ = 1: P(|X| ≤ 1) = 0.883 and P(|X| ≤ 2) = 0.991.
    expect(gaussianHalfWidth(rational(1n))).toBe(2);
    expect(gaussianHalfWidth(rational(1n), 0.99)).toBe(2);
    // σ = 1/3: P(X = 0) = 0.978.
    expect(gaussianHalfWidth(rational(1n, 3n))).toBe(0);
    expect(gaussianHalfWidth(rational(1n, 10n ** 300n))).toBe(0);
  });

  it.each([
    ['5/2', 0.95, 5],
    ['10', 0.95, 20],
    ['1/2', 0.95, 1],
    ['100', 0.95, 196],
    ['30', 0.999, 99],
    ['1000', 0.95, 1960],
    ['4096', 0.95, 8028],
  ])('σ = %s at %d gives %d exactly (mpmath), by summation', (sigma, level, width) => {
    expect(gaussianHalfWidth(parseRational(sigma), level)).toBe(width);
  });

  it.each([
    ['4097', 8030],
    ['5000', 9800],
    ['1000000', 1959964],
    ['1000000000', 1959963985],
  ])('σ = %s, above the summation limit, gives at least %d and at most two more', (sigma, exact) => {
    const width = gaussianHalfWidth(parseRational(sigma));
    expect(width).toBeGreaterThanOrEqual(exact);
    expect(width).toBeLessThanOrEqual(exact + 2);
  });

  it.each([['1/2'], ['1'], ['5/2'], ['7'], ['40']])('σ = %s agrees with a brute-force sum', (sigma) => {
    const s = num(sigma);
    for (const level of [0.5, 0.9, 0.95, 0.999]) {
      const brute = bruteWidth((x) => Math.exp(-(x * x) / (2 * s * s)), Math.ceil(40 * s) + 10, level);
      expect(gaussianHalfWidth(parseRational(sigma), level)).toBe(brute);
    }
  });

  it('is dispatched by noiseHalfWidth', () => {
    expect(noiseHalfWidth('laplace', rational(1n))).toBe(3);
    expect(noiseHalfWidth('gaussian', rational(1n))).toBe(2);
  });
});

describe('invalid inputs', () => {
  it.each([
    ['a zero scale', () => laplaceHalfWidth(rational(0n))],
    ['a negative σ', () => gaussianHalfWidth(rational(-1n))],
    ['level 0', () => laplaceHalfWidth(rational(1n), 0)],
    ['level 1', () => gaussianHalfWidth(rational(1n), 1)],
    ['level 1.5', () => gaussianHalfWidth(rational(1n), 1.5)],
    ['level NaN', () => laplaceHalfWidth(rational(1n), Number.NaN)],
  ])('refuses %s', (_name, fn) => {
    let caught: unknown;
    try {
      fn();
    } catch (error) {
      caught = error;
    }
    expect(isMalusError(caught, 'invalid-input')).toBe(true);
  });
});

describe('the interval on real draws', () => {
  // With n = 20,000 draws and P(|X| ≤ w) ≥ 0.95 > P(|X| ≤ w − 1), the Chernoff bound
  // exp(−n·KL(0.94 ‖ 0.95)) < 3e-9 makes "within ±w below 0.94" a false alarm, and
  // exp(−n·KL(0.96 ‖ 0.95)) < 2e-10 does the same for "within ±(w − 1) at 0.96 or more".
  const N = 20_000;
  it.each([
    ['laplace', '7/3'],
    ['laplace', '100'],
    ['gaussian', '5/2'],
    ['gaussian', '100'],
  ] as const)('%s noise of scale %s falls within ±w about 95 percent of the time', (mechanism, text) => {
    const scale = parseRational(text);
    const w = noiseHalfWidth(mechanism, scale);
    const sampler = mechanism === 'laplace' ? discreteLaplace : discreteGaussian;
    let inside = 0;
    let insideNarrower = 0;
    for (let i = 0; i < N; i++) {
      const x = sampler(scale);
      const size = x < 0n ? -x : x;
      if (size <= BigInt(w)) inside++;
      if (size <= BigInt(w - 1)) insideNarrower++;
    }
    expect(inside / N).toBeGreaterThanOrEqual(0.94);
    expect(insideNarrower / N).toBeLessThan(0.96);
  });
});
