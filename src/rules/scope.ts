import type { Table } from '../agreement/index.js';
import type { Findings} from './ast.js';
import { child, isAbsent, isNode, location, text, unexpectedKeys } from './ast.js';
import type { AstNode } from './parser.js';
import { MAX_TABLES_PER_QUERY } from './limits.js';

// The FROM clause of an ad-hoc query: which agreement tables it reads under which aliases, and
// the join conditions between them. Anything but plain tables joined by conditions is refused.

export interface TableRef {
  readonly table: Table;
  /** The name columns are qualified with: the alias, else the table name as written. */
  readonly alias: string;
  readonly node: AstNode;
}

export interface JoinCondition {
  readonly condition: AstNode | undefined;
  readonly using: readonly string[];
  readonly join: AstNode;
  readonly left: readonly TableRef[];
  readonly right: readonly TableRef[];
}

export interface Scope {
  readonly tables: readonly TableRef[];
  readonly joins: readonly JoinCondition[];
}

const BASE_TABLE_KEYS = ['type', 'alias', 'table_name', 'schema_name', 'catalog_name', 'sample', 'column_name_alias', 'at_clause'];
const JOIN_KEYS = ['type', 'alias', 'left', 'right', 'condition', 'join_type', 'ref_type', 'using_columns', 'duplicate_eliminated_columns', 'delim_flipped', 'sample', 'is_lateral'];
const ALLOWED_JOIN_TYPES = ['INNER', 'LEFT', 'RIGHT', 'OUTER', 'FULL'];

export const sameName = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

export function findTable(tables: readonly Table[], name: string): Table | undefined {
  return tables.find((t) => sameName(t.name, name));
}

function baseTable(node: AstNode, tables: readonly Table[], findings: Findings): TableRef[] {
  const name = text(node, 'table_name');
  for (const key of unexpectedKeys(node, BASE_TABLE_KEYS)) findings.add('unsupported-syntax', `FROM ${name}: ${key} is not supported`, node);
  if (!isAbsent(node.sample)) findings.add('sample', `TABLESAMPLE on ${name} is not allowed`, node);
  if (!isAbsent(node.column_name_alias)) findings.add('column-alias', `renaming the columns of ${name} is not allowed`, node);
  if (!isAbsent(node.at_clause)) findings.add('unsupported-syntax', `AT (time travel) on ${name} is not supported`, node);
  if (text(node, 'schema_name') !== '' || text(node, 'catalog_name') !== '') {
    findings.add('table-unknown', `tables are named without a schema or catalog: ${[text(node, 'catalog_name'), text(node, 'schema_name'), name].filter((p) => p !== '').join('.')}`, node);
    return [];
  }
  const table = findTable(tables, name);
  if (table === undefined) {
    findings.add('table-unknown', `${name} is not a table of the agreement`, node);
    return [];
  }
  return [{ table, alias: text(node, 'alias') === '' ? name : text(node, 'alias'), node }];
}


function walkFrom(node: AstNode, tables: readonly Table[], findings: Findings, joins: JoinCondition[]): TableRef[] {
  switch (text(node, 'type')) {
    case 'BASE_TABLE':
      return baseTable(node, tables, findings);
    case 'JOIN': {
      for (const key of unexpectedKeys(node, JOIN_KEYS)) findings.add('unsupported-syntax', `join: ${key} is not supported`, node);
      const left = isNode(node.left) ? walkFrom(node.left, tables, findings, joins) : [];
      const right = isNode(node.right) ? walkFrom(node.right, tables, findings, joins) : [];
      const refType = text(node, 'ref_type');
      const joinType = text(node, 'join_type');
      if (refType === 'CROSS') findings.add('cross-join', 'cross joins (and comma-separated tables) are not allowed: join on the join columns', node);
      else if (refType === 'NATURAL') findings.add('join-type', 'NATURAL joins are not allowed: name the join columns', node);
      else if (refType !== 'REGULAR') findings.add('join-type', `${refType} joins are not allowed`, node);
      if (!ALLOWED_JOIN_TYPES.includes(joinType)) findings.add('join-type', `${joinType} joins are not allowed (INNER, LEFT, RIGHT and FULL are)`, node);
      if (!isAbsent(node.sample)) findings.add('sample', 'sampling a join is not allowed', node);
      if (refType === 'REGULAR') {
        const using = Array.isArray(node.using_columns) ? node.using_columns.filter((c): c is string => typeof c === 'string') : [];
        joins.push({ condition: child(node, 'condition'), using, join: node, left, right });
      }
      return [...left, ...right];
    }
    case 'TABLE_FUNCTION': {
      const fn = child(node, 'function');
      findings.add('table-function', `the table function ${fn === undefined ? '' : text(fn, 'function_name')} is not allowed: queries read the collaboration's tables only`, node);
      return [];
    }
    case 'SUBQUERY':
      findings.add('subquery-not-allowed', 'subqueries in FROM are not allowed', node);
      return [];
    case 'SHOW_REF':
      findings.add('statement-not-allowed', `${text(node, 'show_type') || 'SHOW'} is not allowed`, node);
      return [];
    case 'EXPRESSION_LIST':
      findings.add('values-list', 'VALUES lists are not allowed', node);
      return [];
    case 'EMPTY':
      return [];
    default:
      findings.add('unsupported-syntax', `${text(node, 'type') || 'this'} in FROM is not supported`, node);
      return [];
  }
}

/** The tables and joins of a SELECT's FROM clause, with every problem found on the way. */
export function scopeOf(from: AstNode | undefined, tables: readonly Table[], findings: Findings): Scope {
  const joins: JoinCondition[] = [];
  const refs = from === undefined ? [] : walkFrom(from, tables, findings, joins);
  const seen = new Map<string, TableRef>();
  for (const ref of refs) {
    const key = ref.table.name.toLowerCase();
    if (seen.has(key)) findings.add('self-join', `${ref.table.name} appears more than once: self-joins are not allowed`, ref.node);
    else seen.set(key, ref);
  }
  const aliases = new Map<string, TableRef>();
  for (const ref of refs) {
    const key = ref.alias.toLowerCase();
    const other = aliases.get(key);
    if (other !== undefined && other !== ref) findings.add('unsupported-syntax', `the alias ${ref.alias} names two tables`, ref.node);
    aliases.set(key, ref);
  }
  if (refs.length > MAX_TABLES_PER_QUERY) findings.add('too-many-tables', `the query reads ${refs.length} tables; at most ${MAX_TABLES_PER_QUERY}`, from ?? null);
  return { tables: refs, joins };
}

export type ColumnResolution =
  | { readonly kind: 'column'; readonly ref: TableRef; readonly column: string }
  | { readonly kind: 'unknown'; readonly name: string }
  | { readonly kind: 'ambiguous'; readonly name: string }
  | { readonly kind: 'malformed'; readonly name: string }
  /** A bare table alias (or rowid): in DuckDB it is the whole row, as a struct (or its position). */
  | { readonly kind: 'row'; readonly name: string };

/** Names DuckDB resolves to something other than a declared column. */
export const PSEUDO_COLUMNS = ['rowid'];

/** Resolves a COLUMN_REF against the query's tables the way DuckDB's binder does for base tables. */
export function resolveColumn(node: AstNode, scope: Scope): ColumnResolution {
  const names = Array.isArray(node.column_names) ? node.column_names.map(String) : [];
  const name = names.join('.');
  if (names.length === 1) {
    const [column] = names as [string];
    const owners = scope.tables.filter((ref) => ref.table.columns.some((c) => sameName(c.name, column)));
    if (owners.length === 0 && (scope.tables.some((ref) => sameName(ref.alias, column) || sameName(ref.table.name, column)) || PSEUDO_COLUMNS.includes(column.toLowerCase()))) {
      return { kind: 'row', name };
    }
    if (owners.length === 0) return { kind: 'unknown', name };
    if (owners.length > 1) return { kind: 'ambiguous', name };
    const ref = owners[0] as TableRef;
    return { kind: 'column', ref, column: (ref.table.columns.find((c) => sameName(c.name, column)) as { name: string }).name };
  }
  if (names.length === 2) {
    const [qualifier, column] = names as [string, string];
    const ref = scope.tables.find((r) => sameName(r.alias, qualifier));
    const found = ref?.table.columns.find((c) => sameName(c.name, column));
    if (ref === undefined || found === undefined) return { kind: 'unknown', name };
    return { kind: 'column', ref, column: found.name };
  }
  return { kind: 'malformed', name };
}

export { location };
