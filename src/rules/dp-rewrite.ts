import type { Table } from '../agreement/index.js';
import { isNode } from './ast.js';
import type { DpAnalysis } from './dp.js';
import { deparse, type AstNode } from './parser.js';
import { resolveTables } from './rewrite.js';
import { DP_SEED_PARAMETER, type DpMeasurement } from './types.js';

// The SQL the enclave runs for a query under differential privacy (docs/dp.md). The analyst's
// FROM and WHERE stay as checked and DuckDB prints them back; around them Malus bounds each
// person's contribution and computes the exact statistics the enclave then adds noise to:
//   1. malus_rows: one row per joined row: the identity, the group keys, the measured columns;
//   2. malus_pairs: one row per identity and group, each statistic bounded: at most
//      maxRowsPerIdentity rows, a sum of at most that many clamped values (the mean clamped
//      value times min(n, R): what a random choice of R rows gives in expectation, with less
//      variance and the same bound);
//   3. malus_kept: for each identity, at most maxGroupsPerIdentity of its groups, chosen at random
//      by a hash under the run's secret seed (a window over the pairs, not over all rows);
//   4. one row per group with each measurement summed, as exact text. The text around the checked query holds only names Malus
// makes and integers from the agreement.

/** A pair's bounded value of a measurement, aggregated over the identity's rows in one group. */
const perPair = (m: DpMeasurement, i: number, maxRows: number): string => {
  const column = `malus_c_${i}`;
  switch (m.statistic) {
    case 'identities':
      return '1';
    case 'rows':
      return `least(count(*), ${maxRows})`;
    case 'distinct-identities':
      return `max(CASE WHEN ${column} IS NULL THEN 0 ELSE 1 END)`;
    case 'values':
      return `least(count(${column}), ${maxRows})`;
    case 'sum': {
      const [lower, upper] = m.bounds ?? ['0', '0'];
      if (!/^-?\d+$/.test(lower) || !/^-?\d+$/.test(upper)) throw new Error('sum bounds must be integers');
      const units = `least(greatest(CAST(${column} * ${10n ** BigInt(m.decimals ?? 0)} AS HUGEINT), ${lower}), ${upper})`;
      return `CASE WHEN count(${column}) = 0 THEN CAST(0 AS HUGEINT) ELSE sum(${units}) * least(count(${column}), ${maxRows}) // count(${column}) END`;
    }
  }
};

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
  const stats = plan.measurements.map((m, i) => `${perPair(m, i, plan.maxRowsPerIdentity)} AS ${m.name}`);
  const names = plan.measurements.map((m) => m.name);
  const total = (name: string, from: string): string => `CAST(sum(${from}${name}) AS VARCHAR) AS ${name}`;
  if (groupNames.length === 0) {
    // One group: an identity's single pair is all it contributes.
    return [
      `WITH malus_rows AS (${inner}),`,
      `malus_pairs AS (SELECT ${stats.join(', ')} FROM malus_rows WHERE malus_id IS NOT NULL GROUP BY malus_id)`,
      `SELECT ${names.map((n) => total(n, '')).join(', ')} FROM malus_pairs`,
    ].join('\n');
  }
  const keys = groupNames.join(', ');
  // row_number never gives two pairs one rank, so no identity keeps more than maxGroups pairs, ties or not.
  return [
    `WITH malus_rows AS (${inner}),`,
    `malus_pairs AS (SELECT malus_id, ${keys}, ${stats.join(', ')} FROM malus_rows WHERE malus_id IS NOT NULL GROUP BY malus_id, ${keys}),`,
    `malus_kept AS (SELECT * FROM malus_pairs QUALIFY row_number() OVER (PARTITION BY malus_id ORDER BY hash(malus_id, ${keys}, $${DP_SEED_PARAMETER})) <= ${plan.maxGroupsPerIdentity})`,
    `SELECT ${[...groupNames, ...names.map((n) => total(n, ''))].join(', ')}`,
    `FROM malus_kept GROUP BY ${keys} ORDER BY ${keys}`,
  ].join('\n');
}
