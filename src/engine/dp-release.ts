import type { DuckDBValue } from '@duckdb/node-api';
import { cryptoBytes, discreteGaussian, discreteLaplace, formatRational, mul, noiseHalfWidth, parseRational, unitsAsDecimal, type RandomBytes } from '../dp/index.js';
import { MalusError } from '../errors/index.js';
import type { DpMeasurement, DpPlan } from '../rules/index.js';
import type { NoisyColumn, ResultColumn } from './result.js';

// The differentially private release inside the enclave (docs/dp.md): the rewritten SQL gave, per
// group, the exact statistics over each identity's bounded contribution; here each gets fresh noise
// from the exact samplers, groups are kept by the public domain or by the noisy threshold, and only
// the noisy values leave. Nothing computed from an exact value survives this function.

/** Public domains are spelled out in full: a product of domains beyond this many groups is refused. */
const MAX_DOMAIN_GROUPS = 100_000;

const sample = (m: DpMeasurement, bytes: RandomBytes): bigint =>
  m.mechanism === 'laplace' ? discreteLaplace(parseRational(m.scale), bytes) : discreteGaussian(parseRational(m.scale), bytes);

function describe(m: DpMeasurement): { mechanism: NoisyColumn['mechanism']; scale: string; ci95: string } {
  const unit = parseRational(m.unit);
  const scale = parseRational(m.scale);
  const width = BigInt(noiseHalfWidth(m.mechanism, scale));
  return { mechanism: m.mechanism, scale: formatRational(mul(scale, unit)), ci95: unitsAsDecimal(width, m.decimals ?? 0) };
}

/** Every combination of the public domains, in order. */
function domainGroups(plan: DpPlan): string[][] {
  let groups: string[][] = [[]];
  for (const g of plan.groups) {
    const values = g.domain ?? [];
    if (groups.length * values.length > MAX_DOMAIN_GROUPS) throw new MalusError('result-too-large', `the public domains span more than ${MAX_DOMAIN_GROUPS} groups`);
    groups = groups.flatMap((prefix) => values.map((v) => [...prefix, v]));
  }
  return groups;
}

/** Group keys compared as text: the domain lists VARCHAR values, and DuckDB returns VARCHAR keys as strings. */
const keyOf = (values: readonly DuckDBValue[]): string => JSON.stringify(values.map((v) => (typeof v === 'string' ? v : v === null ? null : JSON.stringify(String(v)))));

/** The released rows' columns, from the plan and the exact rows' columns (group keys keep their DuckDB type). */
function releasedColumns(plan: DpPlan, exact: readonly ResultColumn[]): ResultColumn[] {
  return plan.columns.map((c): ResultColumn => {
    if (c.source === 'group') return { name: c.name, type: exact.find((e) => e.name === plan.groups[c.index]?.name)?.type ?? 'VARCHAR' };
    if (c.source === 'ratio') return { name: c.name, type: 'DOUBLE' };
    const m = plan.measurements[c.index];
    if (m?.statistic !== 'sum') return { name: c.name, type: 'BIGINT' };
    return { name: c.name, type: m.decimals === undefined || m.decimals === 0 ? 'HUGEINT' : `DECIMAL(38,${m.decimals})` };
  });
}

function noiseReport(plan: DpPlan, ratioIntervals: ReadonlyMap<number, AvgInterval[]>): NoisyColumn[] {
  return plan.columns.flatMap((c, at): NoisyColumn[] => {
    if (c.source === 'group') return [];
    if (c.source === 'measurement') return [{ column: c.name, ...describe(plan.measurements[c.index] as DpMeasurement) }];
    const sum = describe(plan.measurements[c.numerator] as DpMeasurement);
    const count = describe(plan.measurements[c.denominator] as DpMeasurement);
    return [{ column: c.name, mechanism: sum.mechanism, of: { sum, count }, rows95: ratioIntervals.get(at) ?? [] }];
  });
}

type AvgInterval = readonly [number, number] | null;

/**
 * A 95% interval for the exact bounded average behind a noisy sum S over a noisy count C: each
 * noise is within its 97.5% half-width (a and b), so both are at once in at least 95% of releases
 * (a union bound), and then the exact sum is in [S − a, S + a] and the exact count, at least 1,
 * in [max(1, C − b), C + b]. The ratio's extremes over that box are at its corners, and an
 * average of values clamped to [lo, hi] is itself in [lo, hi]. Post-processing of released values,
 * in floating point; null where the average is (the noisy count is not positive).
 */
function avgIntervalOf(sumOf: DpMeasurement, countOf: DpMeasurement): (sum: bigint, count: bigint) => AvgInterval {
  // Once per column: a Gaussian's half-width sums up to 12σ terms of its pmf.
  const a = BigInt(noiseHalfWidth(sumOf.mechanism, parseRational(sumOf.scale), 0.975));
  const b = BigInt(noiseHalfWidth(countOf.mechanism, parseRational(countOf.scale), 0.975));
  const units = 10 ** (sumOf.decimals ?? 0);
  const [lo, hi] = (sumOf.bounds ?? ['0', '0']).map((bound) => Number(bound) / units) as [number, number];
  return (sum, count) => {
    if (count <= 0n) return null;
    const counts = [Number(count - b > 1n ? count - b : 1n), Number(count + b)];
    const ratios = (total: bigint) => counts.map((n) => Number(total) / units / n);
    const low = Math.max(lo, Math.min(...ratios(sum - a)));
    const high = Math.min(hi, Math.max(...ratios(sum + a)));
    // An empty intersection means the noise fell outside the box (the other 5%): the bounds still hold.
    return low <= high ? [low, high] : [lo, hi];
  };
}

/**
 * The enclave's release of a DP query, row by row as DuckDB streams the exact per-group statistics
 * (group keys malus_g_*, then measurements malus_m_* as integer text): `admit` adds fresh noise to
 * a group and returns its released row, or undefined when a noisy count is under its minimum;
 * `finish` gives what is released at the end. Under a public domain every listed group is released
 * at the end, in the domain's order, with zeros for those the data lacks: neither which groups the
 * data has nor the order they arrived in shows. `bytes` is the CSPRNG (tests pass their own only
 * to count draws).
 */
export function privateRelease(plan: DpPlan, bytes: RandomBytes = cryptoBytes) {
  const publicDomain = plan.groups.length > 0 && plan.groups.every((g) => g.domain !== undefined);
  const held = new Map<string, bigint[]>();
  const released: DuckDBValue[][] = [];
  let positions: { groups: number[]; measurements: number[] } | undefined;

  const locate = (columns: readonly ResultColumn[]): { groups: number[]; measurements: number[] } => {
    const at = (name: string): number => {
      const index = columns.findIndex((c) => c.name === name);
      if (index < 0) throw new MalusError('internal', `the DP query returned no column ${name}`);
      return index;
    };
    return { groups: plan.groups.map((g) => at(g.name)), measurements: plan.measurements.map((m) => at(m.name)) };
  };

  const ratioIntervals = new Map<number, AvgInterval[]>();
  const intervalOf = new Map<number, (sum: bigint, count: bigint) => AvgInterval>();
  plan.columns.forEach((c, at) => {
    if (c.source !== 'ratio') return;
    ratioIntervals.set(at, []);
    intervalOf.set(at, avgIntervalOf(plan.measurements[c.numerator] as DpMeasurement, plan.measurements[c.denominator] as DpMeasurement));
  });

  const noisyRow = (keys: readonly DuckDBValue[], exact: readonly bigint[]): DuckDBValue[] | undefined => {
    const noisy = exact.map((value, i) => value + sample(plan.measurements[i] as DpMeasurement, bytes));
    for (const { measurement, minimum } of plan.release) if ((noisy[measurement] as bigint) < BigInt(minimum)) return undefined;
    // Every row that gets this far is released, in this order: its intervals line up with the rows.
    for (const [at, interval] of intervalOf) {
      const c = plan.columns[at];
      if (c?.source === 'ratio') ratioIntervals.get(at)?.push(interval(noisy[c.numerator] as bigint, noisy[c.denominator] as bigint));
    }
    return plan.columns.map((c): DuckDBValue => {
      if (c.source === 'group') return keys[c.index] ?? null;
      if (c.source === 'measurement') return unitsAsDecimal(noisy[c.index] as bigint, plan.measurements[c.index]?.decimals ?? 0);
      const sum = noisy[c.numerator] as bigint;
      const count = noisy[c.denominator] as bigint;
      const decimals = plan.measurements[c.numerator]?.decimals ?? 0;
      // Post-processing of two noisy values; undefined when the noisy count is not positive.
      return count <= 0n ? null : Number(sum) / 10 ** decimals / Number(count);
    });
  };

  return {
    admit(row: readonly DuckDBValue[], columns: readonly ResultColumn[]): DuckDBValue[] | undefined {
      positions ??= locate(columns);
      const keys = positions.groups.map((i) => row[i] ?? null);
      const exact = positions.measurements.map((i) => {
        const value = row[i];
        // An aggregate over no pairs is NULL in SQL; the rewrite coalesces, and a NULL here counts as 0 all the same.
        if (value === null) return 0n;
        if (typeof value !== 'string' || !/^-?\d+$/.test(value)) throw new MalusError('internal', 'a DP statistic is not an integer');
        return BigInt(value);
      });
      if (publicDomain) {
        // Noised at the end, with the groups the data lacks; a key outside the domain never reaches the output.
        if (plan.groups.every((g, i) => g.domain?.includes(String(keys[i])) === true)) held.set(keyOf(keys), exact);
        return undefined;
      }
      if (!plan.groups.every((g, i) => g.domain === undefined || g.domain.includes(String(keys[i])))) return undefined;
      const out = noisyRow(keys, exact);
      if (out !== undefined) released.push(out);
      return out;
    },
    finish(): DuckDBValue[][] {
      if (!publicDomain) return released;
      return domainGroups(plan).flatMap((keys) => {
        const out = noisyRow(keys, held.get(keyOf(keys)) ?? plan.measurements.map(() => 0n));
        return out === undefined ? [] : [out];
      });
    },
    columns: (exact: readonly ResultColumn[]): ResultColumn[] => releasedColumns(plan, exact),
    noisy: (): NoisyColumn[] => noiseReport(plan, ratioIntervals),
  };
}

/** The whole release over rows already read (tests and small runs): privateRelease applied to each. */
export function releasePrivately(
  plan: DpPlan,
  exact: { readonly columns: readonly ResultColumn[]; readonly rows: readonly (readonly DuckDBValue[])[] },
  bytes: RandomBytes = cryptoBytes,
): { columns: ResultColumn[]; rows: DuckDBValue[][]; noisy: NoisyColumn[] } {
  const release = privateRelease(plan, bytes);
  for (const row of exact.rows) release.admit(row, exact.columns);
  return { columns: release.columns(exact.columns), rows: release.finish(), noisy: release.noisy() };
}
