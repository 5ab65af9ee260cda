import { describe, expect, it } from 'vitest';
import { releasePrivately } from '../../src/engine/dp-release.js';
import type { DpMeasurement, DpPlan } from '../../src/rules/index.js';

// The noisy release inside the enclave: which groups leave, what each column carries, and an
// empirical check of the privacy guarantee on neighbouring datasets.

const counted = (scale: string, statistic: DpMeasurement['statistic'] = 'rows'): DpMeasurement => ({ name: 'malus_m_0', statistic, mechanism: 'laplace', scale, unit: '1' });

const plan = (overrides: Partial<DpPlan>): DpPlan => ({
  measurements: [counted('1', 'identities')],
  groups: [],
  columns: [{ name: 'n', source: 'measurement', index: 0 }],
  release: [],
  maxRowsPerIdentity: 1,
  maxGroupsPerIdentity: 1,
  ...overrides,
});

const exactRows = (names: string[], rows: string[][]) => ({ columns: names.map((name) => ({ name, type: 'VARCHAR' })), rows });

describe('which groups leave the enclave', () => {
  it('releases exactly the public domain, with zeros for groups the data lacks and nothing outside it', () => {
    const p = plan({ groups: [{ name: 'malus_g_0', domain: ['a', 'b', 'c'] }], columns: [{ name: 'g', source: 'group', index: 0 }, { name: 'n', source: 'measurement', index: 0 }] });
    const out = releasePrivately(p, exactRows(['malus_g_0', 'malus_m_0'], [['a', '1000'], ['zzz', '5000']]));
    expect(out.rows.map((r) => r[0])).toEqual(['a', 'b', 'c']);
    expect(Math.abs(Number(out.rows[0]?.[1]) - 1000)).toBeLessThan(60);
    expect(Math.abs(Number(out.rows[1]?.[1]))).toBeLessThan(60);
  });

  it('keeps a group by its noisy identity count against the threshold', () => {
    const p = plan({ groups: [{ name: 'malus_g_0' }], release: [{ measurement: 0, minimum: '100' }], columns: [{ name: 'g', source: 'group', index: 0 }] });
    const out = releasePrivately(p, exactRows(['malus_g_0', 'malus_m_0'], [['big', '1000'], ['small', '3'], ['edge', '100']]));
    const kept = out.rows.map((r) => r[0]);
    expect(kept).toContain('big');
    expect(kept).not.toContain('small');
    // At the threshold a group passes about half the time: the decision is noisy, never exact.
    let passes = 0;
    for (let i = 0; i < 400; i++) passes += releasePrivately(p, exactRows(['malus_g_0', 'malus_m_0'], [['edge', '100']])).rows.length;
    expect(passes).toBeGreaterThan(120);
    expect(passes).toBeLessThan(320);
  });

  it('answers AVG as noisy sum over noisy count, null when the count is not positive', () => {
    const sum: DpMeasurement = { name: 'malus_m_1', statistic: 'sum', mechanism: 'laplace', scale: '1', unit: '1/100', bounds: ['0', '10000'], decimals: 2 };
    const values: DpMeasurement = { name: 'malus_m_2', statistic: 'values', mechanism: 'laplace', scale: '1', unit: '1' };
    const p = plan({
      measurements: [counted('1', 'identities'), sum, values],
      columns: [{ name: 'total', source: 'measurement', index: 1 }, { name: 'mean', source: 'ratio', numerator: 1, denominator: 2 }],
    });
    const out = releasePrivately(p, exactRows(['malus_m_0', 'malus_m_1', 'malus_m_2'], [['10', '500000', '1000']]));
    expect(out.columns).toEqual([{ name: 'total', type: 'DECIMAL(38,2)' }, { name: 'mean', type: 'DOUBLE' }]);
    expect(out.rows[0]?.[0]).toMatch(/^\d+\.\d\d$/);
    expect(Number(out.rows[0]?.[1])).toBeCloseTo(5, 1);
    const empty = releasePrivately(p, exactRows(['malus_m_0', 'malus_m_1', 'malus_m_2'], [['0', '0', '-1000']]));
    expect(empty.rows[0]?.[1]).toBeNull();
    // The report gives each noisy column's scale in its own units and the 95% half-width of its noise.
    expect(out.noisy[0]).toEqual({ column: 'total', mechanism: 'laplace', scale: '1/100', ci95: expect.stringMatching(/^0\.0\d$/) as unknown });
    expect(out.noisy[1]?.of?.count.scale).toBe('1');
    expect(out.noisy[1]?.rows95).toHaveLength(1);
  });

  it('gives each AVG row a 95% interval that covers the exact bounded average in at least 95% of releases', () => {
    // Cents clamped to [0, 100.00]; the exact average is 500000 / 1000 cents = 5.00.
    const sum: DpMeasurement = { name: 'malus_m_1', statistic: 'sum', mechanism: 'laplace', scale: '20000', unit: '1/100', bounds: ['0', '10000'], decimals: 2 };
    const values: DpMeasurement = { name: 'malus_m_2', statistic: 'values', mechanism: 'gaussian', scale: '50', unit: '1' };
    const p = plan({ measurements: [counted('1', 'identities'), sum, values], columns: [{ name: 'g', source: 'group', index: 0 }, { name: 'mean', source: 'ratio', numerator: 1, denominator: 2 }], groups: [{ name: 'malus_g_0' }] });
    const rows = exactRows(['malus_g_0', 'malus_m_0', 'malus_m_1', 'malus_m_2'], [['a', '10', '500000', '1000'], ['few', '1', '300', '2'], ['none', '0', '0', '-400']]);
    let covered = 0;
    let widest = 0;
    const trials = 2000;
    for (let i = 0; i < trials; i += 1) {
      const out = releasePrivately(p, rows);
      const intervals = out.noisy[0]?.rows95 ?? [];
      expect(intervals).toHaveLength(out.rows.length);
      const [low, high] = intervals[0] ?? [Number.NaN, Number.NaN];
      if (low <= 5 && 5 <= high) covered += 1;
      widest = Math.max(widest, high - low);
      // Two values, under noise far larger: the interval never leaves the clamping bounds.
      const [fewLow, fewHigh] = intervals[1] ?? [0, 100];
      expect(fewLow >= 0 && fewLow <= fewHigh && fewHigh <= 100, `${fewLow} ${fewHigh}`).toBe(true);
      // A noisy count that is not positive has no average, and no interval.
      expect(out.rows[2]?.[1] === null).toBe(intervals[2] === null);
    }
    expect(covered / trials).toBeGreaterThanOrEqual(0.93);
    // Informative, not the trivial [0, 100]: the sum's 74,000 cents over about 1000 values, and
    // the count's ±112, give a width near 3.
    expect(widest).toBeLessThan(5);
  });

  it('fails closed on a statistic that is not an integer', () => {
    expect(() => releasePrivately(plan({}), exactRows(['malus_m_0'], [['1.5']]))).toThrow(/not an integer/);
  });
});

/** Histogram of the first output value over `n` releases. */
function histogram(p: DpPlan, exact: string, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const value = String(releasePrivately(p, exactRows(['malus_m_0'], [[exact]])).rows[0]?.[0]);
    counts.set(value, (counts.get(value) ?? 0) + 1);
  }
  return counts;
}

/**
 * The largest observed |log P(out = v | D) − log P(out = v | D′)| beyond what sampling explains:
 * for every value seen at least 2,000 times under both, the log ratio minus 6 standard errors
 * (sqrt(1/n₁ + 1/n₂)). Positive means a value whose ratio exceeds epsilon for sure.
 */
function excessLoss(d: Map<string, number>, neighbour: Map<string, number>, epsilon: number): { excess: number; largest: number } {
  let excess = -Infinity;
  let largest = 0;
  for (const [value, n1] of d) {
    const n2 = neighbour.get(value) ?? 0;
    if (n1 < 2000 || n2 < 2000) continue;
    const ratio = Math.abs(Math.log(n1 / n2));
    largest = Math.max(largest, ratio);
    excess = Math.max(excess, ratio - epsilon - 6 * Math.sqrt(1 / n1 + 1 / n2));
  }
  return { excess, largest };
}

describe('the privacy loss observed on neighbouring datasets (one person added)', () => {
  const N = 60_000;
  it('COUNT with epsilon 1 stays within epsilon, and a halved scale would not', () => {
    const p = plan({ measurements: [counted('1')] });
    const without = histogram(p, '1000', N);
    const withOne = histogram(p, '1001', N);
    const loss = excessLoss(without, withOne, 1);
    expect(loss.excess).toBeLessThanOrEqual(0);
    // The check can see a loss of 1: the discrete Laplace reaches it exactly on the tails it has data for.
    expect(loss.largest).toBeGreaterThan(0.7);
    const broken = plan({ measurements: [counted('1/2')] });
    expect(excessLoss(histogram(broken, '1000', N), histogram(broken, '1001', N), 1).excess).toBeGreaterThan(0);
  });

  it('SUM clamped to [0, 5] with epsilon 1 stays within epsilon when the added person is at the bound', () => {
    const sum: DpMeasurement = { name: 'malus_m_0', statistic: 'sum', mechanism: 'laplace', scale: '5', unit: '1', bounds: ['0', '5'], decimals: 0 };
    const p = plan({ measurements: [sum] });
    // Wide buckets of 5 units: the guarantee holds for every event, bucket or single value.
    const bucketed = (h: Map<string, number>) => {
      const out = new Map<string, number>();
      for (const [v, n] of h) out.set(String(Math.floor(Number(v) / 5)), (out.get(String(Math.floor(Number(v) / 5))) ?? 0) + n);
      return out;
    };
    const loss = excessLoss(bucketed(histogram(p, '700', N)), bucketed(histogram(p, '705', N)), 1);
    expect(loss.excess).toBeLessThanOrEqual(0);
    expect(loss.largest).toBeGreaterThan(0.5);
  });
});
