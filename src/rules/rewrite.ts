import type { Table } from '../agreement/index.js';
import { MalusError } from '../errors/index.js';
import { child, descendants, isNode, nodes, text } from './ast.js';
import type { Constraint } from './adhoc.js';
import { deparse, parseSql, type AstNode } from './parser.js';
import { findTable } from './scope.js';
import { DATA_SCHEMA, RELEASE_COLUMN } from './types.js';

// The rewrite of a checked query into what the enclave runs: tables resolved into the schema the
// datasets are loaded into, and the release column that carries the k constraints. The rewrite
// edits DuckDB's own tree and has DuckDB print it, so no SQL text is ever spliced together.

interface Shapes {
  readonly atLeast: AstNode;
  readonly and: AstNode;
  readonly yes: AstNode;
}

let shapes: Promise<Shapes> | undefined;

/** The node shapes the rewrite builds from, taken once from DuckDB's parse of a model query. */
function modelShapes(): Promise<Shapes> {
  shapes ??= (async () => {
    const parsed = await parseSql('SELECT count(DISTINCT "a"."b") >= 2, true AND true, true');
    const select = parsed.ok && isNode(parsed.statements[0]?.node) ? (parsed.statements[0].node) : undefined;
    const [atLeast, and, yes] = select === undefined ? [] : nodes(select.select_list);
    if (atLeast === undefined || and === undefined || yes === undefined) throw new MalusError('internal', 'the SQL parser did not give the rewrite its shapes');
    return { atLeast, and, yes };
  })().catch((error: unknown) => {
    shapes = undefined;
    throw error;
  });
  return shapes;
}

const clone = <T>(value: T): T => structuredClone(value);

function releaseExpression(model: Shapes, constraints: readonly Constraint[]): AstNode {
  if (constraints.length === 0) return clone(model.yes);
  const terms = constraints.map(({ alias, column, minimum }) => {
    const term = clone(model.atLeast);
    const count = child(term, 'left') as AstNode;
    const ref = nodes(count.children)[0] as AstNode;
    ref.column_names = [alias, column];
    const bound = child(term, 'right') as AstNode;
    (bound.value as { value: number }).value = minimum;
    return term;
  });
  if (terms.length === 1) return terms[0] as AstNode;
  const and = clone(model.and);
  and.children = terms;
  return and;
}

export interface RewriteInput {
  readonly statement: AstNode;
  readonly tables: readonly Table[];
  readonly constraints: readonly Constraint[];
  /** For a list query: group by every selected expression, so each listed row can be counted. */
  readonly groupBySelection: boolean;
  /** CTE names (templates), which are not tables. */
  readonly cteNames?: ReadonlySet<string>;
}

/** A copy of the statement with every agreement table named in DATA_SCHEMA (CTE names left alone). */
export function resolveTables(original: AstNode, tables: readonly Table[], cteNames?: ReadonlySet<string>): AstNode {
  const statement = clone(original);
  for (const node of descendants(statement)) {
    if ('class' in node || text(node, 'type') !== 'BASE_TABLE') continue;
    const written = text(node, 'table_name');
    if (cteNames?.has(written.toLowerCase()) === true) continue;
    const table = findTable(tables, written);
    if (table === undefined) throw new MalusError('internal', `the rewrite met a table the check did not: ${written}`);
    // Keep the name the query qualified its columns with, now as an alias.
    if (text(node, 'alias') === '') node.alias = written;
    node.schema_name = DATA_SCHEMA;
    node.catalog_name = '';
    node.table_name = table.name;
  }
  return statement;
}

export async function rewriteQuery(input: RewriteInput): Promise<string> {
  const model = await modelShapes();
  const statement = resolveTables(input.statement, input.tables, input.cteNames);
  const select = statement.node as AstNode;
  const items = nodes(select.select_list);
  if (input.groupBySelection) {
    select.group_expressions = items.map((item) => ({ ...clone(item), alias: '' }));
    select.group_sets = [items.map((_, i) => i)];
  }
  // The k constraints go into HAVING, so that groups under k never reach the select list, ORDER BY
  // or LIMIT (nothing computed there can tell anything about them); the release column repeats
  // them for the enclave, which drops any row where it is not true.
  if (input.constraints.length > 0) {
    const gate = releaseExpression(model, input.constraints);
    const having = isNode(select.having) ? (select.having) : undefined;
    if (having === undefined) {
      select.having = gate;
    } else {
      const both = clone(model.and);
      both.children = [gate, having];
      select.having = both;
    }
  }
  const release = releaseExpression(model, input.constraints);
  release.alias = RELEASE_COLUMN;
  select.select_list = [...items, release];
  return deparse(statement);
}
