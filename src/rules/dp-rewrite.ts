import type { Table } from '../agreement/index.js';
import { isNode } from './ast.js';
import type { DpAnalysis } from './dp.js';
import { deparse, type AstNode } from './parser.js';
import { unitsAsDecimal } from '../dp/index.js';
import { resolveTables } from './rewrite.js';
import { DP_SEED_PARAMETER, type DpMeasurement } from './types.js';

// The SQL the enclave runs for a query under differential privacy (docs/dp.md). The analyst's
// FROM and WHERE stay as checked and DuckDB prints them back; around them Malus bounds each
// person's contribution and computes the exact statistics the enclave then adds noise to:
//   1. malus_rows: one row per joined row: the identity, the group keys, the measured columns;
//   2. malus_pairs: one row per identity and group with plain counts and clamped sums (cheap
//      aggregates: the bounding itself is arithmetic on these, later, over far fewer rows);
//   3. malus_kept: for each identity, at most maxGroupsPerIdentity of its pairs, chosen at random
//      by a hash under the run's secret seed: the G smallest hashes of each identity (a top-G per
//      identity, joined back to the pairs, which costs less than a window sorting every pair;
//      a tie at the G-th place keeps fewer than G);
//   4. one row per group with each bounded statistic summed, as exact text: min(n, R) rows, and
//      for a sum the mean clamped value times min(n, R) (what keeping R rows chosen at random
//      gives in expectation, with less variance and the same bound).
// The text around the checked query holds only names Malus makes, integers from the agreement and
// its public-domain values as quoted literals.

/** A VARCHAR literal of a public-domain value from the agreement: quotes doubled, nothing else to escape in SQL. */
const sqlString = (value: string): string => `'${value.replaceAll("'", "''")}'`;

const integer = (text: string): string => {
  if (!/^-?\d+$/.test(text)) throw new Error('DP bounds must be integers');
  return text;
};

/**
 * Whether a sum's per-pair arithmetic can run in 64 bits: its largest bound (in units),
 * times maxRows (a bounded contribution) and times 2^40 (rows in one pair, far beyond what an
 * enclave holds), stays below 2^63.
 */
function fitsBigint(m: DpMeasurement, maxRows: number): boolean {
  const magnitudes = (m.bounds ?? ['0', '0']).map((b) => BigInt(integer(b))).map((b) => (b < 0n ? -b : b));
  const largest = magnitudes.reduce((a, b) => (a > b ? a : b), 0n);
  return largest * BigInt(Math.max(1, maxRows)) * 2n ** 40n < 2n ** 63n;
}

/** The raw aggregates of a measurement over one identity's rows in one group. */
function pairAggregates(m: DpMeasurement, i: number, maxRows: number): string[] {
  const column = `malus_c_${i}`;
  switch (m.statistic) {
    case 'identities':
      return [];
    case 'rows':
      return [`count(*) AS malus_n_${i}`];
    case 'distinct-identities':
    case 'values':
      return [`count(${column}) AS malus_n_${i}`];
    case 'sum': {
      // Clamped in the column's own type first, so that the cast to integer units cannot overflow.
      // NULL stays NULL, outside the sum as outside count(): DuckDB's greatest() skips NULL, so
      // greatest(NULL, lower) would count every NULL row as `lower`, beyond the row bound.
      const decimals = m.decimals ?? 0;
      const [lower, upper] = (m.bounds ?? ['0', '0']).map((b) => unitsAsDecimal(BigInt(integer(b)), decimals));
      const clamped = `CASE WHEN ${column} < ${lower} THEN ${lower} WHEN ${column} > ${upper} THEN ${upper} ELSE ${column} END`;
      const units = `CAST(${clamped} * ${10n ** BigInt(decimals)} AS BIGINT)`;
      // DuckDB sums BIGINT into a 128-bit integer, whose arithmetic on every pair costs more than
      // the bounding itself; a pair's sum fits 64 bits unless it holds some 2^40 rows, and a cast
      // that overflows fails the query rather than wrapping.
      const sum = fitsBigint(m, maxRows) ? `CAST(sum(${units}) AS BIGINT)` : `sum(${units})`;
      return [`count(${column}) AS malus_n_${i}`, `${sum} AS malus_s_${i}`];
    }
  }
}

/** The bounded contribution of one pair to a measurement, from its raw aggregates. */
function bounded(m: DpMeasurement, i: number, maxRows: number): string {
  switch (m.statistic) {
    case 'identities':
      return '1';
    case 'rows':
    case 'values':
      return `least(malus_n_${i}, ${maxRows})`;
    case 'distinct-identities':
      return `CASE WHEN malus_n_${i} > 0 THEN 1 ELSE 0 END`;
    case 'sum':
      // Up to maxRows rows the sum is kept as it is; above, the mean times maxRows (computed in 128
      // bits, as the product may not fit 64 before the division).
      if (fitsBigint(m, maxRows)) {
        return `CASE WHEN malus_n_${i} <= ${maxRows} THEN malus_s_${i} ELSE CAST(CAST(malus_s_${i} AS HUGEINT) * ${maxRows} // malus_n_${i} AS BIGINT) END`;
      }
      return `CASE WHEN malus_n_${i} = 0 THEN 0 ELSE malus_s_${i} * least(malus_n_${i}, ${maxRows}) // malus_n_${i} END`;
  }
}

export async function rewritePrivate(statement: AstNode, tables: readonly Table[], analysis: DpAnalysis): Promise<string> {
  const resolved = resolveTables(statement, tables);
  const select = resolved.node as AstNode;
  const { plan } = analysis.privacy;
  const groupNames = plan.groups.map((g) => g.name);
  select.select_list = [
    { ...analysis.inner.identity },
    ...analysis.inner.groups.map((g, i) => ({ ...structuredClone(g), alias: `malus_g_${i}` })),
    ...analysis.inner.columns.map(({ index, node }) => ({ ...structuredClone(node), alias: `malus_c_${index}` })),
  ];
  select.group_expressions = [];
  select.group_sets = [];
  select.having = null;
  if (isNode(select.cte_map)) select.cte_map = { map: [] };
  const inner = await deparse(resolved);
  const aggregates = plan.measurements.flatMap((m, i) => pairAggregates(m, i, plan.maxRowsPerIdentity));
  const keys = ['malus_id', ...groupNames].join(', ');
  // coalesce: a sum over no pairs is NULL, and an empty answer must look like any other.
  const totals = plan.measurements.map((m, i) => `CAST(coalesce(sum(${bounded(m, i, plan.maxRowsPerIdentity)}), 0) AS VARCHAR) AS ${m.name}`);
  // Under a public domain only its groups are kept here, so that no row outside it is ever counted.
  const domain = plan.groups.flatMap((g) => (g.domain === undefined ? [] : [`${g.name} IN (${g.domain.map(sqlString).join(', ')})`]));
  const where = ['malus_id IS NOT NULL', ...domain].join(' AND ');
  const pairs = (columns: readonly string[]): string => `malus_pairs AS (SELECT ${columns.join(', ')} FROM malus_rows WHERE ${where} GROUP BY ${keys})`;
  if (groupNames.length === 0) {
    // One group: an identity's single pair is all it contributes.
    return [`WITH malus_rows AS (${inner}),`, pairs([keys, ...aggregates]), `SELECT ${totals.join(', ')} FROM malus_pairs`].join('\n');
  }
  const groups = groupNames.join(', ');
  const limit = plan.maxGroupsPerIdentity;
  // A pair is kept when its hash is at most the identity's G-th smallest. DuckDB's hash() is not
  // keyed (the seed is one more input), so the data can make two of one identity's pairs hash
  // alike on purpose. When they tie at the G-th place, only the hashes below it are kept: fewer
  // than G, never more, and never a failure that one person's data could choose.
  const boundary = `l.malus_low[${limit}]`;
  const tied = `l.malus_low[${limit + 1}] = ${boundary}`;
  const kept = `len(l.malus_low) <= ${limit} OR p.malus_h < ${boundary} OR (p.malus_h = ${boundary} AND NOT (${tied}))`;
  return [
    `WITH malus_rows AS (${inner}),`,
    `${pairs([keys, `hash(${keys}, $${DP_SEED_PARAMETER}) AS malus_h`, ...aggregates])},`,
    `malus_limits AS (SELECT malus_id, min(malus_h, ${limit + 1}) AS malus_low FROM malus_pairs GROUP BY malus_id),`,
    `malus_kept AS (SELECT p.* FROM malus_pairs AS p JOIN malus_limits AS l ON p.malus_id = l.malus_id AND (${kept}))`,
    `SELECT ${[groups, ...totals].join(', ')}`,
    `FROM malus_kept GROUP BY ${groups} ORDER BY ${groups}`,
  ].join('\n');
}
