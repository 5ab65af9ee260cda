import { describe, expect, it } from 'vitest';
import { erfc } from '../../src/dp/intervals.js';
import { binProbabilities, binsFor, chiSquareCritical, chiSquareStatistic, gammaQ, lnGammaHalf, majority, massesOf, noncentrality } from './stats.js';

// The helpers of the long statistical tests, checked in the normal suite against closed forms and
// against scipy.stats.chi2.isf.

describe('the chi-square tail', () => {
  it('has the right ln Γ at integers and half-integers', () => {
    expect(lnGammaHalf(1)).toBe(0);
    expect(lnGammaHalf(5)).toBeCloseTo(Math.log(24), 13);
    expect(lnGammaHalf(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 14);
    expect(lnGammaHalf(2.5)).toBeCloseTo(Math.log(0.75 * Math.sqrt(Math.PI)), 14);
  });

  it.each([0.1, 0.5, 1, 2, 3.5, 10, 40, 100])('matches the closed forms of Q(a, %d) for a = 1/2, 1, 3/2, 2', (x) => {
    const close = (a: number, b: number): void => {
      expect(Math.abs(a - b) / b).toBeLessThan(1e-12);
    };
    close(gammaQ(1, x), Math.exp(-x));
    close(gammaQ(2, x), (1 + x) * Math.exp(-x));
    close(gammaQ(0.5, x), erfc(Math.sqrt(x)));
    close(gammaQ(1.5, x), erfc(Math.sqrt(x)) + 2 * Math.sqrt(x / Math.PI) * Math.exp(-x));
  });

  it.each([
    [1, 1e-6, 23.928126976934827],
    [10, 1e-6, 46.863046846784385],
    [50, 1e-6, 112.60809249896162],
    [100, 1e-6, 182.12677711954765],
    [200, 1e-6, 309.83809199007794],
    [1, 0.05, 3.8414588206941285],
    [10, 0.05, 18.30703805327515],
  ])('the critical value of χ²(%d) at %d is %d (scipy)', (dof, significance, value) => {
    const critical = chiSquareCritical(dof, significance);
    expect(critical).toBeGreaterThanOrEqual(value * (1 - 1e-11));
    expect(critical).toBeLessThan(value * (1 + 1e-9));
  });

  it('is −2 ln p at two degrees of freedom', () => {
    for (const p of [0.5, 1e-3, 1e-6, 1e-12]) expect(chiSquareCritical(2, p) / (-2 * Math.log(p))).toBeCloseTo(1, 10);
  });
});

describe('the goodness-of-fit test', () => {
  it('bins a pmf so that each bin expects enough draws, tails pooled', () => {
    const masses = massesOf((x) => Math.exp(-Math.abs(x)), 40);
    const bins = binsFor(masses, 1000, 50);
    const probs = binProbabilities(masses, bins);
    expect(bins.uppers.at(-1)).toBe(Infinity);
    expect(probs.every((p) => p * 1000 >= 50)).toBe(true);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    // Draws beyond the reach land in the end bins.
    expect(chiSquareStatistic([-1000, 1000], bins, probs)).toBeGreaterThan(0);
  });

  it('computes Pearson’s statistic and the noncentrality by hand', () => {
    const bins = { uppers: [0, Infinity] };
    const draws = [...Array<number>(60).fill(-1), ...Array<number>(40).fill(1)];
    expect(chiSquareStatistic(draws, bins, [0.5, 0.5])).toBeCloseTo(4, 12);
    expect(noncentrality(100, [0.6, 0.4], [0.5, 0.5])).toBeCloseTo(4, 12);
  });

  it('votes 2 of 3 and stops once decided', () => {
    const seen: number[] = [];
    expect(majority((i) => (seen.push(i), true))).toBe(true);
    expect(seen).toEqual([0, 1]);
    expect(majority((i) => i === 1)).toBe(false);
    expect(majority((i) => i !== 0)).toBe(true);
  });
});
