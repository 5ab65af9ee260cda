import { createHash } from 'node:crypto';
import { MalusError } from '../errors/index.js';
import type { Table } from '../agreement/index.js';
import type { Findings} from './ast.js';
import { descendants, isNode, nodes, text } from './ast.js';
import { columnTypes, deparse, parseSql, type AstNode, type FunctionKind } from './parser.js';
import { findTable } from './scope.js';

// Implicit casts, checked with DuckDB's own types. Where a query compares values (or a CASE
// chooses between them), DuckDB brings them to one type; if that casts a value from the data and
// the cast can fail on some values, the query fails on some rows and not others: a side channel.
// The walk records each group of such values; here DuckDB types them on empty tables of the
// agreement's schema, and every non-constant value must reach the common type by a cast that
// cannot fail.

const INTEGER_DIGITS: Readonly<Record<string, number>> = { TINYINT: 3, SMALLINT: 5, INTEGER: 10, BIGINT: 19, HUGEINT: 39 };

interface Decimal {
  readonly width: number;
  readonly scale: number;
}

function decimalOf(type: string): Decimal | undefined {
  const m = /^DECIMAL\((\d+),(\d+)\)$/.exec(type);
  return m === null ? undefined : { width: Number(m[1]), scale: Number(m[2]) };
}

const isNumeric = (type: string): boolean => type in INTEGER_DIGITS || decimalOf(type) !== undefined || type === 'DOUBLE' || type === 'FLOAT';

/** Whether a value of type `from` always converts to `to`. */
export function castCannotFail(from: string, to: string): boolean {
  if (from === to || to === 'VARCHAR') return true;
  const fromDigits = INTEGER_DIGITS[from];
  const toDigits = INTEGER_DIGITS[to];
  if (fromDigits !== undefined && toDigits !== undefined) return toDigits >= fromDigits;
  if (to === 'DOUBLE' && isNumeric(from)) return true;
  const target = decimalOf(to);
  if (target !== undefined) {
    if (fromDigits !== undefined) return target.width - target.scale >= fromDigits;
    const source = decimalOf(from);
    if (source !== undefined) return target.scale >= source.scale && target.width - target.scale >= source.width - source.scale;
  }
  return false;
}

/** The type DuckDB brings two types to, for the families the check knows; undefined otherwise. */
export function commonType(a: string, b: string): string | undefined {
  if (a === b) return a;
  if (a === 'VARCHAR') return b;
  if (b === 'VARCHAR') return a;
  const da = INTEGER_DIGITS[a];
  const db = INTEGER_DIGITS[b];
  if (da !== undefined && db !== undefined) return da >= db ? a : b;
  if (isNumeric(a) && isNumeric(b)) {
    if (a === 'DOUBLE' || b === 'DOUBLE' || a === 'FLOAT' || b === 'FLOAT') return 'DOUBLE';
    const [x, y] = [decimalOf(a) ?? { width: da ?? 0, scale: 0 }, decimalOf(b) ?? { width: db ?? 0, scale: 0 }];
    const scale = Math.max(x.scale, y.scale);
    return `DECIMAL(${Math.min(38, Math.max(x.width - x.scale, y.width - y.scale) + scale)},${scale})`;
  }
  if ((a === 'DATE' && b.startsWith('TIMESTAMP')) || (b === 'DATE' && a.startsWith('TIMESTAMP'))) return a === 'DATE' ? b : a;
  return undefined;
}

let anyValue: Promise<AstNode> | undefined;

function anyValueShape(): Promise<AstNode> {
  anyValue ??= parseSql('SELECT any_value(1)').then((parsed) => {
    const node = parsed.ok && isNode(parsed.statements[0]?.node) ? nodes((parsed.statements[0].node).select_list)[0] : undefined;
    if (node === undefined) throw new MalusError('internal', 'the SQL parser gave no any_value shape');
    return node;
  });
  return anyValue;
}

/** A literal DuckDB converts once, whatever the data: a string, NULL or any other constant. */
const isConstant = (node: AstNode): boolean => text(node, 'class') === 'CONSTANT';

function containsAggregate(node: AstNode, catalog: ReadonlyMap<string, FunctionKind>): boolean {
  for (const n of descendants(node)) {
    if (text(n, 'class') !== 'FUNCTION') continue;
    const name = text(n, 'function_name').toLowerCase();
    if (name === 'count_star' || catalog.get(name) === 'aggregate') return true;
  }
  return false;
}

function probeSchema(tables: readonly Table[]): { name: string; setup: string[] } {
  const digest = createHash('sha256').update(JSON.stringify(tables.map((t) => [t.name, t.columns.map((c) => [c.name, c.type])]))).digest('hex').slice(0, 16);
  const name = `malus_probe_${digest}`;
  const quote = (id: string): string => `"${id.replaceAll('"', '""')}"`;
  return {
    name,
    setup: [
      `CREATE SCHEMA IF NOT EXISTS ${name}`,
      ...tables.map((t) => `CREATE TABLE IF NOT EXISTS ${name}.${quote(t.name)} (${t.columns.map((c) => `${quote(c.name)} ${c.type}`).join(', ')})`),
    ],
  };
}

/** The query's FROM and grouping with a select list of the given expressions, over the probe schema (tables empty). */
function probeQuery(select: AstNode, items: readonly AstNode[], schema: string, tables: readonly Table[], catalog: ReadonlyMap<string, FunctionKind>): AstNode {
  const probe = structuredClone(select);
  for (const node of descendants(probe.from_table)) {
    if ('class' in node || text(node, 'type') !== 'BASE_TABLE') continue;
    const table = findTable(tables, text(node, 'table_name'));
    if (table === undefined) continue;
    if (text(node, 'alias') === '') node.alias = text(node, 'table_name');
    node.schema_name = schema;
    node.table_name = table.name;
  }
  const original = nodes(select.select_list);
  probe.select_list = items.map((item, i) => ({ ...structuredClone(item), alias: `p${i}` }));
  probe.where_clause = null;
  probe.having = null;
  probe.qualify = null;
  probe.sample = null;
  probe.modifiers = [];
  if (isNode(probe.cte_map)) probe.cte_map = { map: [] };
  // Positions and select aliases in GROUP BY point into the original select list: inline them.
  const aliasOf = new Map(original.map((item) => [text(item, 'alias').toLowerCase(), item]));
  let groups = nodes(select.group_expressions).map((g) => {
    const at = (g.value as { value?: unknown } | undefined)?.value;
    if (text(g, 'class') === 'CONSTANT' && typeof at === 'number') return { ...structuredClone(original[at - 1] ?? g), alias: '' };
    const names = Array.isArray(g.column_names) ? g.column_names : [];
    const aliased = names.length === 1 ? aliasOf.get(String(names[0]).toLowerCase()) : undefined;
    return aliased === undefined ? g : { ...structuredClone(aliased), alias: '' };
  });
  if (text(select, 'aggregate_handling') === 'FORCE_AGGREGATES') {
    groups = original.filter((item) => !containsAggregate(item, catalog)).map((item) => ({ ...structuredClone(item), alias: '' }));
  }
  probe.group_expressions = groups;
  probe.group_sets = groups.length === 0 ? [] : [groups.map((_, i) => i)];
  probe.aggregate_handling = 'STANDARD_HANDLING';
  return probe;
}

export async function checkComparisonTypes(
  statement: AstNode,
  select: AstNode,
  tables: readonly Table[],
  comparisons: readonly (readonly AstNode[])[],
  catalog: ReadonlyMap<string, FunctionKind>,
  findings: Findings,
): Promise<void> {
  const values = [...new Set(comparisons.flat().filter((v) => !isConstant(v)))];
  if (values.length === 0) return;
  const schema = probeSchema(tables);
  const types = new Map<AstNode, string>();
  // One probe, grouped as the query is: a row-level value is wrapped in any_value(), which has
  // its type and is valid whatever the grouping.
  const wrap = await anyValueShape();
  const items = values.map((v) => (containsAggregate(v, catalog) ? v : { ...structuredClone(wrap), children: [v] }));
  let found: string[];
  try {
    const probe = probeQuery(select, items, schema.name, tables, catalog);
    found = await columnTypes(schema.setup, await deparse({ ...statement, node: probe }));
  } catch {
    findings.add('comparison-type', 'the types of the values this query compares could not be determined, so it is refused', values[0] ?? null);
    return;
  }
  values.forEach((value, i) => types.set(value, found[i] ?? ''));
  for (const group of comparisons) {
    const typeOf = (node: AstNode): string | undefined => (isConstant(node) ? constantType(node) : types.get(node));
    const known = group.map((n) => typeOf(n));
    let target: string | undefined = known.find((t) => t !== undefined && t !== 'NULL');
    for (const t of known) if (t !== undefined && t !== 'NULL' && target !== undefined) target = commonType(target, t);
    for (const [i, node] of group.entries()) {
      if (isConstant(node)) continue;
      const type = known[i];
      if (type === undefined || target === undefined || !castCannotFail(type, target)) {
        findings.add('comparison-type', `this ${type ?? 'value'} would be cast to ${target ?? 'another type'} to match the rest, and that cast can fail on some values: compare like with like`, node);
        break;
      }
    }
  }
}

/** A constant's type as DuckDB serialized it: a string literal or NULL adapts to anything. */
function constantType(node: AstNode): string | undefined {
  const value = node.value as { is_null?: boolean; type?: { id?: string; type_info?: { width?: number; scale?: number } } } | undefined;
  if (value?.is_null === true) return 'NULL';
  const id = value?.type?.id;
  if (id === 'VARCHAR') return 'NULL';
  if (id === 'DECIMAL') return `DECIMAL(${value?.type?.type_info?.width ?? 18},${value?.type?.type_info?.scale ?? 0})`;
  return id;
}
