import type { DuckDBValue } from '@duckdb/node-api';
import { cryptoBytes, discreteGaussian, discreteLaplace, noiseHalfWidth, parseRational, type RandomBytes, type Rational } from '../dp/index.js';
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

const times = (a: Rational, b: Rational): Rational => ({ num: a.num * b.num, den: a.den * b.den });
const textOf = (r: Rational): string => (r.den === 1n ? `${r.num}` : `${r.num}/${r.den}`);

/** An integer number of units as the decimal text of the output ("12345" units of 1/100 → "123.45"). */
function decimalText(units: bigint, decimals: number): string {
  if (decimals === 0) return units.toString();
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

function describe(m: DpMeasurement): { mechanism: NoisyColumn['mechanism']; scale: string; ci95: string } {
  const unit = parseRational(m.unit);
  const scale = parseRational(m.scale);
  const width = BigInt(noiseHalfWidth(m.mechanism, scale));
  return { mechanism: m.mechanism, scale: textOf(times(scale, unit)), ci95: decimalText(width, m.decimals ?? 0) };
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

/**
 * The noisy rows of a DP query from the exact per-group rows of its rewritten SQL (group keys
 * malus_g_*, then measurements malus_m_* as integer text). `bytes` is the CSPRNG (tests pass
 * their own source only to count draws).
 */
export function releasePrivately(
  plan: DpPlan,
  exact: { readonly columns: readonly ResultColumn[]; readonly rows: readonly (readonly DuckDBValue[])[] },
  bytes: RandomBytes = cryptoBytes,
): { columns: ResultColumn[]; rows: DuckDBValue[][]; noisy: NoisyColumn[] } {
  const groupCount = plan.groups.length;
  const byName = new Map(exact.columns.map((c, i) => [c.name, i]));
  const at = (name: string): number => {
    const index = byName.get(name);
    if (index === undefined) throw new MalusError('internal', `the DP query returned no column ${name}`);
    return index;
  };
  const groupAt = plan.groups.map((g) => at(g.name));
  const measureAt = plan.measurements.map((m) => at(m.name));
  let groups: { keys: DuckDBValue[]; values: bigint[] }[] = exact.rows.map((row) => ({
    keys: groupAt.map((i) => row[i] ?? null),
    values: measureAt.map((i) => {
      const value = row[i];
      if (typeof value !== 'string' || !/^-?\d+$/.test(value)) throw new MalusError('internal', 'a DP statistic is not an integer');
      return BigInt(value);
    }),
  }));
  if (groupCount > 0 && plan.groups.every((g) => g.domain !== undefined)) {
    // Exactly the public groups, with zeros for those the data does not have: which groups appear
    // must not depend on the data.
    const found = new Map(groups.map((g) => [keyOf(g.keys), g]));
    groups = domainGroups(plan).map((keys) => found.get(keyOf(keys)) ?? { keys, values: plan.measurements.map(() => 0n) });
  } else if (groupCount > 0) {
    // Partition selection: group keys outside a public domain go by the threshold alone; those in one must be in it.
    groups = groups.filter((g) => plan.groups.every((p, i) => p.domain === undefined || p.domain.includes(String(g.keys[i]))));
  }
  const threshold = plan.threshold === undefined ? undefined : BigInt(plan.threshold);
  const released: DuckDBValue[][] = [];
  for (const group of groups) {
    const noisy = group.values.map((value, i) => value + sample(plan.measurements[i] as DpMeasurement, bytes));
    if (threshold !== undefined && (noisy[0] as bigint) < threshold) continue;
    released.push(
      plan.columns.map((c): DuckDBValue => {
        if (c.source === 'group') return group.keys[c.index] ?? null;
        if (c.source === 'measurement') {
          const m = plan.measurements[c.index] as DpMeasurement;
          return decimalText(noisy[c.index] as bigint, m.decimals ?? 0);
        }
        const sum = noisy[c.numerator] as bigint;
        const count = noisy[c.denominator] as bigint;
        const decimals = plan.measurements[c.numerator]?.decimals ?? 0;
        // Post-processing of two noisy values; undefined when the noisy count is not positive.
        return count <= 0n ? null : Number(sum) / 10 ** decimals / Number(count);
      }),
    );
  }
  const columns = plan.columns.map((c): ResultColumn => {
    if (c.source === 'group') return { name: c.name, type: exact.columns[groupAt[c.index] as number]?.type ?? 'VARCHAR' };
    if (c.source === 'ratio') return { name: c.name, type: 'DOUBLE' };
    const m = plan.measurements[c.index];
    if (m?.statistic !== 'sum') return { name: c.name, type: 'BIGINT' };
    return { name: c.name, type: m.decimals === undefined || m.decimals === 0 ? 'HUGEINT' : `DECIMAL(38,${m.decimals})` };
  });
  const noisy = plan.columns.flatMap((c): NoisyColumn[] => {
    if (c.source === 'group') return [];
    if (c.source === 'measurement') return [{ column: c.name, ...describe(plan.measurements[c.index] as DpMeasurement) }];
    const sum = describe(plan.measurements[c.numerator] as DpMeasurement);
    const count = describe(plan.measurements[c.denominator] as DpMeasurement);
    return [{ column: c.name, mechanism: sum.mechanism, of: { sum, count } }];
  });
  return { columns, rows: released, noisy };
}
