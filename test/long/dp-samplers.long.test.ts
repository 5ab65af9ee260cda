import { describe, expect, it } from 'vitest';
import { bernoulliExp, discreteGaussian, discreteLaplace, parseRational, type Rational } from '../../src/dp/index.js';
import { binProbabilities, binsFor, chiSquareCritical, chiSquareStatistic, majority, massesOf, noncentrality } from './stats.js';

// The privacy issue's statistical tests, in the style of Tumult Analytics: for each sampler and
// scale, a chi-square goodness-of-fit test of 100,000 draws against the exact pmf at significance
// 1e-6, decided by a 2-of-3 vote. A correct sampler fails the vote with probability at most
// 3·(1e-6)² = 3e-12 per case. The same vote must reject the pmf at 0.7x and 1.3x the scale, and
// the noncentrality of the statistic under those alternatives shows why it always does.
// `npm run test:long`; docs/dp.md, "Statistical tests".

const N = 100_000;
const SIGNIFICANCE = 1e-6;
/** Bins expect at least this many of the N draws: the chi-square law is then accurate far into its tail. */
const MIN_EXPECTED = 1000;

interface Case {
  readonly name: string;
  readonly sample: (scale: Rational) => bigint;
  /** The unnormalised pmf at scale s. */
  readonly weight: (s: number) => (x: number) => number;
  /** Beyond ±reach(s) lies less than e⁻⁴⁰ of the mass. */
  readonly reach: (s: number) => number;
  readonly scales: readonly string[];
}

const CASES: readonly Case[] = [
  {
    name: 'discreteLaplace',
    sample: discreteLaplace,
    weight: (b) => (x) => Math.exp(-Math.abs(x) / b),
    reach: (b) => Math.ceil(40 * b) + 2,
    scales: ['1', '7/3', '100', '10000'],
  },
  {
    name: 'discreteGaussian',
    sample: discreteGaussian,
    weight: (sigma) => (x) => Math.exp(-(x * x) / (2 * sigma * sigma)),
    reach: (sigma) => Math.ceil(10 * sigma) + 2,
    scales: ['1', '5/2', '100', '10000'],
  },
];

for (const c of CASES) {
  describe.each(c.scales)(`${c.name} at scale %s`, (text) => {
    const scale = parseRational(text);
    const s = Number(scale.num) / Number(scale.den);
    // Up to three independent sets of N draws, drawn only when a vote needs them.
    const runs: Float64Array[] = [];
    const draws = (i: number): Float64Array => {
      while (runs.length <= i) runs.push(Float64Array.from({ length: N }, () => Number(c.sample(scale))));
      return runs[i] as Float64Array;
    };
    // One reach for every hypothesis, so that true and tested pmfs are summed over the same integers.
    const reach = c.reach(1.3 * s);
    const truth = massesOf(c.weight(s), reach);
    const hypothesis = (factor: number) => {
      const masses = factor === 1 ? truth : massesOf(c.weight(factor * s), reach);
      const bins = binsFor(masses, N, MIN_EXPECTED);
      const probs = binProbabilities(masses, bins);
      const dof = probs.length - 1;
      const critical = chiSquareCritical(dof, SIGNIFICANCE);
      const statistics: number[] = [];
      const rejects = (i: number): boolean => {
        statistics[i] = chiSquareStatistic(draws(i), bins, probs);
        return statistics[i] > critical;
      };
      const report = (extra = ''): void => {
        const shown = statistics.map((x) => x.toFixed(1)).join(', ');
        console.log(`${c.name} ${text} vs ${factor}x: dof ${dof}, critical ${critical.toFixed(1)}, statistics [${shown}]${extra}`);
      };
      return { bins, probs, dof, critical, rejects, report };
    };

    it('passes at the true scale (2 of 3 runs at significance 1e-6)', () => {
      const h = hypothesis(1);
      expect(h.dof).toBeGreaterThanOrEqual(3);
      const passes = majority((i) => !h.rejects(i));
      h.report();
      expect(passes).toBe(true);
    });

    it.each([0.7, 1.3])('fails at %dx the scale, and has the power to', (factor) => {
      const h = hypothesis(factor);
      // Under the true pmf the statistic is about χ²_dof(λ): its mean exceeds the critical value by
      // z standard deviations. z > 10 puts the chance one run misses the wrong scale below 1e-20
      // (normal approximation), so the vote's below 3·(1e-20)².
      const lambda = noncentrality(N, binProbabilities(truth, h.bins), h.probs);
      const z = (h.dof + lambda - h.critical) / Math.sqrt(2 * (h.dof + 2 * lambda));
      const rejected = majority(h.rejects);
      h.report(`, λ ${lambda.toFixed(0)}, z ${z.toFixed(1)}`);
      expect(z).toBeGreaterThan(10);
      expect(rejected).toBe(true);
    });
  });
}

// Bernoulli(exp(−γ)), which both samplers are built on: the same vote over two bins (false,
// true), one degree of freedom, at γ on both of its paths (γ ≤ 1, and γ > 1 as a product of
// Bernoulli(exp(−1)) draws), and the same power against 0.7γ and 1.3γ.
describe.each(['1/3', '1', '5/2'])('bernoulliExp at γ = %s', (text) => {
  const gamma = parseRational(text);
  const g = Number(gamma.num) / Number(gamma.den);
  const bins = { uppers: [0, Infinity] };
  const probs = (factor: number): number[] => [1 - Math.exp(-factor * g), Math.exp(-factor * g)];
  const critical = chiSquareCritical(1, SIGNIFICANCE);
  const runs: Float64Array[] = [];
  const draws = (i: number): Float64Array => {
    while (runs.length <= i) runs.push(Float64Array.from({ length: N }, () => (bernoulliExp(gamma) ? 1 : 0)));
    return runs[i] as Float64Array;
  };
  const rejects = (factor: number) => (i: number) => chiSquareStatistic(draws(i), bins, probs(factor)) > critical;

  it('passes at the true γ (2 of 3 runs at significance 1e-6)', () => {
    expect(Math.min(...probs(1)) * N).toBeGreaterThan(MIN_EXPECTED);
    expect(majority((i) => !rejects(1)(i))).toBe(true);
  });

  it.each([0.7, 1.3])('fails at %dx γ, and has the power to', (factor) => {
    const lambda = noncentrality(N, probs(1), probs(factor));
    const z = (1 + lambda - critical) / Math.sqrt(2 * (1 + 2 * lambda));
    expect(z).toBeGreaterThan(10);
    expect(majority(rejects(factor))).toBe(true);
  });
});
