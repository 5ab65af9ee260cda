import type { Agreement, PrivacyPolicy, Table } from '../agreement/index.js';
import { div, epsilonFromRho, formatRational, mul, gaussianSigmaFor, parseRational, rational, rationalOfNumber, type PrivacyCost, type Rational } from '../dp/index.js';
import { Findings, child, descendants, isAbsent, isNode, nodes, text } from './ast.js';
import type { Constraint } from './adhoc.js';
import type { AstNode } from './parser.js';
import { resolveColumn, sameName, scopeOf, type Scope, type TableRef } from './scope.js';
import type { DpColumn, DpMeasurement, DpPlan, QueryPrivacy } from './types.js';

// Differential privacy for a checked query (docs/dp.md): which policy applies, whether the query
// has a shape whose sensitivity Malus can bound, and the plan the enclave follows. The plan is
// fully determined by the agreement and the query, so the server and the enclave compute the same
// one, and the budget is charged exactly what the enclave will spend.

/** The policy that applies: a template's own, else the one of a table the query reads; two table policies are ambiguous. */
export function applyingPolicy(agreement: Agreement, tables: readonly string[], template: string | undefined, findings: Findings): { policy: PrivacyPolicy; index: number } | undefined {
  const policies = (agreement.privacy?.policies ?? []).map((policy, index) => ({ policy, index })).filter(({ policy }) => policy.required);
  const own = template === undefined ? undefined : policies.find(({ policy }) => policy.template === template);
  if (own !== undefined) return own;
  const ofTables = policies.filter(({ policy }) => policy.table !== undefined && tables.includes(policy.table));
  if (ofTables.length > 1) {
    findings.add('dp-policy-conflict', `privacy policies of ${ofTables.map((p) => p.policy.table).join(' and ')} both apply: the agreement needs one policy for queries that read both (a template's policy)`, null);
    return undefined;
  }
  return ofTables[0];
}

const integerText = /^(?:TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/i;

/** The power of ten that makes a column's values integers: 0 for integer types, s for DECIMAL(p,s); undefined for other types. */
function decimalScale(type: string): number | undefined {
  if (integerText.test(type)) return 0;
  const m = /^DECIMAL\(\d+,\s*(\d+)\)$/i.exec(type);
  return m === null ? undefined : Number(m[1]);
}

const abs = (r: Rational): Rational => (r.num < 0n ? rational(-r.num, r.den) : r);

/** Structural equality of two expressions, ignoring aliases and positions. */
function sameExpression(a: unknown, b: unknown): boolean {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (!isNode(value)) return typeof value === 'string' ? value.toLowerCase() : value;
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'alias' && k !== 'query_location').map(([k, v]) => [k, strip(v)]));
  };
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

interface Identity {
  readonly ref: TableRef;
  readonly column: string;
}

/** Every table must be tied to the first by equalities of identity columns in INNER or LEFT joins: then one identity is one person across them. */
function identityOf(scope: Scope, findings: Findings): Identity | undefined {
  const missing = scope.tables.filter((ref) => ref.table.identityColumn === null);
  for (const ref of missing) findings.add('dp-identity-join', `${ref.table.name} has no identityColumn, so a person's contribution to it cannot be bounded`, ref.node);
  if (missing.length > 0 || scope.tables.length === 0) return undefined;
  const linked = new Set([scope.tables[0] as TableRef]);
  // Joins come innermost first. Each must bring in one table, tied by an equality of identity
  // columns in its own ON to a table already tied to the first: an equality in another join's ON,
  // or between two tables brought in elsewhere, filters nothing a LEFT JOIN keeps.
  for (const join of scope.joins) {
    const type = text(join.join, 'join_type');
    if (type !== 'INNER' && type !== 'LEFT') {
      findings.add('dp-identity-join', `a ${type} JOIN can add rows without the first table's identity: use INNER or LEFT joins under differential privacy`, join.join);
      continue;
    }
    const [brought] = join.right;
    if (join.right.length !== 1 || brought === undefined) {
      findings.add('dp-identity-join', 'under differential privacy each JOIN brings in one table (no parenthesized joins)', join.join);
      continue;
    }
    const conjuncts = join.condition === undefined ? [] : text(join.condition, 'type') === 'CONJUNCTION_AND' ? nodes(join.condition.children) : [join.condition];
    const identityRef = (side: AstNode | undefined): TableRef | undefined => {
      const r = side !== undefined && text(side, 'class') === 'COLUMN_REF' ? resolveColumn(side, scope) : undefined;
      return r?.kind === 'column' && sameName(r.column, r.ref.table.identityColumn ?? '') ? r.ref : undefined;
    };
    const tied = conjuncts.some((term) => {
      if (text(term, 'type') !== 'COMPARE_EQUAL') return false;
      const [a, b] = [identityRef(child(term, 'left')), identityRef(child(term, 'right'))];
      return (a === brought && b !== undefined && linked.has(b) && join.left.includes(b)) || (b === brought && a !== undefined && linked.has(a) && join.left.includes(a));
    });
    if (tied) linked.add(brought);
  }
  for (const ref of scope.tables) {
    if (!linked.has(ref)) findings.add('dp-identity-join', `${ref.table.name} is not joined on its identity column (${ref.table.identityColumn ?? ''}) to the first table's: a person could then reach rows of others`, ref.node);
  }
  const first = scope.tables[0] as TableRef;
  return linked.size === scope.tables.length ? { ref: first, column: first.table.identityColumn ?? '' } : undefined;
}

interface Sized {
  readonly l1: Rational;
  readonly l2Squared: Rational;
}

export interface DpAnalysis {
  readonly privacy: QueryPrivacy;
  /** What the enclave's SQL selects before bounding: the identity, the group keys and the measured columns. */
  readonly inner: { readonly identity: AstNode; readonly groups: readonly AstNode[]; readonly columns: readonly { readonly index: number; readonly node: AstNode }[] };
}

/**
 * The plan of a query under a privacy policy, or violations. The query must be one SELECT of group
 * keys and supported aggregates over plain columns: COUNT(*), COUNT(DISTINCT identity), SUM and AVG
 * of columns the policy bounds. No HAVING, ORDER BY, LIMIT, DISTINCT or CTE: each would compute
 * on exact values after the noise.
 */
export function planPrivacy(
  agreement: Agreement,
  statement: AstNode,
  applying: { policy: PrivacyPolicy; index: number },
  constraints: readonly Constraint[],
  findings: Findings,
): DpAnalysis | undefined {
  const settings = agreement.privacy;
  const select = isNode(statement.node) ? statement.node : undefined;
  if (settings === undefined || select === undefined) return undefined;
  const { policy } = applying;
  const before = findings.list.length;
  const refuse = (message: string, at: AstNode | null): void => {
    findings.add('dp-query-shape', message, at);
  };

  if (!isAbsent(child(select, 'cte_map')?.map)) refuse('a query under differential privacy reads tables directly: no WITH', select);
  if (!isAbsent(select.having)) refuse('HAVING would filter on exact values: under differential privacy, groups are released by the noisy count', child(select, 'having') ?? select);
  for (const modifier of nodes(select.modifiers)) refuse(`${text(modifier, 'type').replace(/_MODIFIER$/, '')} is not applied under differential privacy: rows come sorted by their group keys`, modifier);
  if (!isAbsent(select.qualify) || !isAbsent(select.sample)) refuse('QUALIFY and SAMPLE are not allowed under differential privacy', select);

  // Every row must count for its own identity only: a subquery or a window lets one person's rows
  // decide which rows of others are kept, or what they hold.
  for (const node of descendants(select)) {
    const kind = text(node, 'class') || text(node, 'type');
    if (kind === 'SUBQUERY') refuse('subqueries are not allowed under differential privacy: one person could switch the rows of others on or off', node);
    else if (kind === 'WINDOW') refuse('window functions are not allowed under differential privacy', node);
  }

  const scratch = new Findings();
  const scope = scopeOf(child(select, 'from_table'), agreement.tables, scratch);
  if (!scratch.empty) {
    refuse('a query under differential privacy reads only tables of the agreement, directly', child(select, 'from_table') ?? select);
    return undefined;
  }
  const identity = identityOf(scope, findings);

  const items = nodes(select.select_list);
  // GROUP BY 1 and GROUP BY alias name select items: the group key is the item's expression.
  const groups = nodes(select.group_expressions).map((g) => {
    const value = child(g, 'value');
    if (text(g, 'class') === 'CONSTANT' && typeof value?.value === 'number') {
      const item = items[value.value - 1];
      return item === undefined ? g : { ...item, alias: '' };
    }
    const names = Array.isArray(g.column_names) ? g.column_names : [];
    // As DuckDB does: a name is a column first, an alias only otherwise.
    const named = names.length === 1 && resolveColumn(g, scope).kind !== 'column' ? items.find((item) => text(item, 'alias') !== '' && sameName(text(item, 'alias'), String(names[0]))) : undefined;
    return named === undefined ? g : { ...named, alias: '' };
  });
  const sets = Array.isArray(select.group_sets) ? select.group_sets : [];
  if (sets.length > 1) refuse('GROUPING SETS, ROLLUP and CUBE are not allowed under differential privacy', select);
  const maxRows = BigInt(policy.maxRowsPerIdentity ?? 1);
  const maxGroups = BigInt(groups.length === 0 ? 1 : (policy.maxGroupsPerIdentity ?? 1));
  const resolveTo = (node: AstNode): { table: Table; column: string; ref: TableRef } | undefined => {
    const r = text(node, 'class') === 'COLUMN_REF' ? resolveColumn(node, scope) : undefined;
    return r?.kind === 'column' ? { table: r.ref.table, column: r.column, ref: r.ref } : undefined;
  };

  // Group keys: a public domain for each, or a noisy threshold.
  const groupPlans = groups.map((g, i) => {
    const col = resolveTo(g);
    const domain = col === undefined ? undefined : policy.publicDomain?.find((d) => sameName(d.table ?? policy.table ?? '', col.table.name) && sameName(d.column, col.column));
    return { name: `malus_g_${i}`, ...(domain === undefined ? {} : { domain: domain.values }) };
  });
  const allPublic = groupPlans.every((g) => g.domain !== undefined);
  if (!allPublic && policy.partitionSelection === undefined) {
    const open = groups.filter((_, i) => groupPlans[i]?.domain === undefined);
    for (const g of open) findings.add('dp-groups', 'this group key has no public domain in the privacy policy, and the policy has no partitionSelection to release groups by a noisy threshold', g);
  }

  // The select list: group keys and aggregates, each aggregate a measurement.
  const measurements: { statistic: DpMeasurement['statistic']; sized: Sized; unit: Rational; column?: AstNode; bounds?: [bigint, bigint]; decimals?: number }[] = [];
  const columns: DpColumn[] = [];
  const rowsSized: Sized = { l1: rational(maxGroups * maxRows), l2Squared: rational(maxGroups * maxRows * maxRows) };
  const idSized: Sized = { l1: rational(maxGroups), l2Squared: rational(maxGroups) };
  const threshold = constraints.length > 0 || !allPublic;
  if (threshold) measurements.push({ statistic: 'identities', sized: idSized, unit: rational(1n) });
  const add = (m: (typeof measurements)[number]): number => {
    const existing = measurements.findIndex((x) => x.statistic === m.statistic && (m.column === undefined ? x.column === undefined : x.column !== undefined && sameExpression(x.column, m.column)));
    if (existing >= 0) return existing;
    measurements.push(m);
    return measurements.length - 1;
  };
  // Each k constraint applies to the noisy count of identities of the table it names.
  const release = new Map<number, bigint>();
  const atLeast = (measurement: number, minimum: bigint): void => {
    const known = release.get(measurement);
    if (known === undefined || minimum > known) release.set(measurement, minimum);
  };
  if (threshold) atLeast(0, 0n);
  for (const c of constraints) {
    const ref = scope.tables.find((r) => sameName(r.alias, c.alias));
    if (ref === undefined || !sameName(c.column, ref.table.identityColumn ?? '')) {
      refuse(`the k constraint on ${c.alias}.${c.column} counts a column that is not its table's identity: under differential privacy k applies to noisy counts of identities`, null);
      continue;
    }
    const column: AstNode = { class: 'COLUMN_REF', type: 'COLUMN_REF', alias: '', column_names: [ref.alias, ref.table.identityColumn ?? ''] };
    atLeast(identity !== undefined && ref === identity.ref ? 0 : add({ statistic: 'distinct-identities', sized: idSized, unit: rational(1n), column }), BigInt(c.minimum));
  }
  const sumOf = (arg: AstNode, at: AstNode, withCount: boolean): { sum: number; count: number } | undefined => {
    const col = resolveTo(arg);
    if (col === undefined) {
      refuse('SUM and AVG under differential privacy take a plain column', at);
      return undefined;
    }
    const bound = policy.bounds?.find((b) => sameName(b.table ?? policy.table ?? '', col.table.name) && sameName(b.column, col.column));
    const type = col.table.columns.find((c) => c.name === col.column)?.type ?? '';
    const decimals = decimalScale(type);
    if (bound === undefined || decimals === undefined) {
      findings.add('dp-bounds-missing', `${col.table.name}.${col.column} has no clamping bounds in the privacy policy, so its sum has no bounded sensitivity`, at);
      return undefined;
    }
    const scale = 10n ** BigInt(decimals);
    const [lo, hi] = [rationalOfNumber(bound.lower), rationalOfNumber(bound.upper)].map((r) => mul(r, rational(scale)));
    if (lo === undefined || hi === undefined || lo.den !== 1n || hi.den !== 1n) {
      findings.add('dp-bounds-missing', `the bounds of ${col.table.name}.${col.column} have more decimals than its type ${type}`, at);
      return undefined;
    }
    const largest = abs(lo).num > abs(hi).num ? abs(lo) : abs(hi);
    if (largest.num > 2n ** 62n) {
      findings.add('dp-bounds-missing', `the bounds of ${col.table.name}.${col.column} are too large to sum exactly in 64-bit units`, at);
      return undefined;
    }
    const perRow = mul(largest, rational(maxRows));
    const sized: Sized = { l1: mul(perRow, rational(maxGroups)), l2Squared: mul(mul(perRow, perRow), rational(maxGroups)) };
    const sum = add({ statistic: 'sum', sized, unit: rational(1n, scale), column: arg, bounds: [lo.num, hi.num], decimals });
    const count = withCount ? add({ statistic: 'values', sized: rowsSized, unit: rational(1n), column: arg }) : -1;
    return { sum, count };
  };

  items.forEach((item, i) => {
    const alias = text(item, 'alias');
    const groupIndex = groups.findIndex((g) => sameExpression(g, item));
    if (groupIndex >= 0) {
      columns.push({ name: alias || (resolveTo(item)?.column ?? `group_${i}`), source: 'group', index: groupIndex });
      return;
    }
    const fn = text(item, 'class') === 'FUNCTION' ? text(item, 'function_name').toLowerCase() : '';
    const args = nodes(item.children);
    if (fn !== '' && (!isAbsent(item.filter) || !isAbsent(child(item, 'order_bys')?.orders))) {
      refuse(`${fn.toUpperCase()} with FILTER or ORDER BY is not supported under differential privacy`, item);
      return;
    }
    if (fn === 'count_star' || (fn === 'count' && args.length === 0)) {
      columns.push({ name: alias || 'count', source: 'measurement', index: add({ statistic: 'rows', sized: rowsSized, unit: rational(1n) }) });
    } else if (fn === 'count' && item.distinct === true && args.length === 1) {
      const col = resolveTo(args[0] as AstNode);
      if (col === undefined || !sameName(col.column, col.table.identityColumn ?? '')) {
        refuse('COUNT(DISTINCT …) under differential privacy counts an identity column only', item);
        return;
      }
      const isFirst = identity !== undefined && col.ref === identity.ref;
      const index = isFirst ? add({ statistic: 'identities', sized: idSized, unit: rational(1n) }) : add({ statistic: 'distinct-identities', sized: idSized, unit: rational(1n), column: args[0] });
      columns.push({ name: alias || `count_distinct_${col.column}`, source: 'measurement', index });
    } else if ((fn === 'sum' || fn === 'avg') && item.distinct !== true && args.length === 1) {
      const planned = sumOf(args[0] as AstNode, item, fn === 'avg');
      if (planned === undefined) return;
      const name = alias || `${fn}_${resolveTo(args[0] as AstNode)?.column ?? i}`;
      columns.push(fn === 'sum' ? { name, source: 'measurement', index: planned.sum } : { name, source: 'ratio', numerator: planned.sum, denominator: planned.count });
    } else {
      refuse(`${fn === '' ? 'this expression' : fn.toUpperCase()} is not supported under differential privacy: select group keys, COUNT(*), COUNT(DISTINCT identity), SUM or AVG of a bounded column`, item);
    }
  });
  if (findings.list.length > before || identity === undefined) return undefined;

  // Split the query's cost evenly over its measurements (sequential composition).
  const accounting = settings.accounting;
  const unitName = accounting === 'pure' ? 'epsilon' : 'rho';
  const perQuery = policy.costPerQuery[unitName];
  if (perQuery === undefined) return undefined;
  const share = div(rationalOfNumber(perQuery), rational(BigInt(measurements.length)));
  const planned: DpMeasurement[] = measurements.map((m, i) => {
    // The threshold count is Laplace noise in every mode: its tail gives the delta of partition selection.
    const mechanism = m.statistic === 'identities' && threshold && i === 0 ? 'laplace' : policy.mechanism;
    const scale = mechanism === 'gaussian' ? gaussianSigmaFor(m.sized.l2Squared, share) : div(m.sized.l1, accounting === 'pure' ? share : epsilonFromRho(share));
    return {
      name: `malus_m_${i}`,
      statistic: m.statistic,
      mechanism,
      scale: formatRational(scale),
      unit: formatRational(m.unit),
      ...(m.bounds === undefined ? {} : { bounds: [m.bounds[0].toString(), m.bounds[1].toString()] as [string, string], decimals: m.decimals ?? 0 }),
    };
  });
  const cost: { epsilon?: string; rho?: string; delta?: string } = { [unitName]: formatRational(rationalOfNumber(perQuery)) };
  if (!allPublic && policy.partitionSelection !== undefined) {
    const delta = policy.partitionSelection.delta;
    // A group only a new person adds passes with probability P(1 + X ≥ τ) ≤ exp(-(τ-1)/b) per group,
    // G groups at most: τ = 1 + ⌈b·ln(G/δ)⌉ (+1 against rounding in the float logarithm).
    const b = parseRational(planned[0]?.scale ?? '1');
    const tail = Math.ceil((Number(b.num) / Number(b.den)) * Math.log(Number(maxGroups) / delta));
    atLeast(0, BigInt(tail) + 2n);
    cost.delta = formatRational(rationalOfNumber(delta));
  }
  // Every scale must be one the samplers read back: a plan the enclave could not run is refused now, not after the data.
  for (const m of planned) {
    try {
      parseRational(m.scale);
    } catch {
      findings.add('dp-query-shape', `the noise scale of ${m.statistic} (${m.scale}) is beyond what the samplers take: the policy's cost or bounds are too extreme`, null);
      return undefined;
    }
  }
  const plan: DpPlan = {
    measurements: planned,
    groups: groupPlans,
    release: [...release].sort(([a], [b]) => a - b).map(([measurement, minimum]) => ({ measurement, minimum: minimum.toString() })),
    columns,
    maxRowsPerIdentity: Number(maxRows),
    maxGroupsPerIdentity: Number(maxGroups),
  };
  const privacyCost: PrivacyCost = cost;
  return {
    privacy: { policy: applying.index, accounting, mechanism: policy.mechanism, cost: privacyCost, plan },
    inner: {
      identity: { class: 'COLUMN_REF', type: 'COLUMN_REF', alias: 'malus_id', column_names: [identity.ref.alias, identity.column] },
      groups,
      columns: measurements.flatMap((m, i) => (m.column === undefined ? [] : [{ index: i, node: m.column }])),
    },
  };
}
