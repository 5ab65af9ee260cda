import type { Agreement, Template } from '../agreement/index.js';
import type { Findings} from './ast.js';
import { child, descendants, isAbsent, isNode, nodes, text } from './ast.js';
import { functionName, isSandboxFunction } from './functions.js';
import type { AstNode, FunctionKind } from './parser.js';
import { findTable, sameName } from './scope.js';
import type { Constraint } from './adhoc.js';

// The checker for approved templates. The owners approved the template's exact SQL, so its shape
// is theirs to choose; what is checked here is that it cannot leave the sandbox (no table
// functions, no environment, settings or files, no recursion), that every owner of every table it
// reads approved it, and where its k constraints apply.

const QUERY_NODES = new Set(['SELECT_NODE', 'SET_OPERATION_NODE', 'CTE_NODE']);

export interface TemplateResult {
  readonly tables: readonly string[];
  readonly parameters: ReadonlySet<string>;
  readonly constraints: readonly Constraint[];
  /** Names of CTEs, which the rewrite leaves alone. */
  readonly cteNames: ReadonlySet<string>;
}

function cteNamesOf(statement: AstNode): Set<string> {
  const names = new Set<string>();
  for (const node of descendants(statement)) {
    if (isNode(node.cte_map)) for (const entry of nodes(node.cte_map.map)) if (typeof entry.key === 'string') names.add(entry.key.toLowerCase());
  }
  return names;
}

/**
 * For each plain table reference, the CTE names visible where it stands: those of the WITH clauses
 * of the queries that enclose it. A CTE nested elsewhere does not hide a table here, so the name
 * binds to what DuckDB would bind it to.
 */
function visibleCtes(statement: AstNode): Map<AstNode, ReadonlySet<string>> {
  const visible = new Map<AstNode, ReadonlySet<string>>();
  const walk = (value: unknown, names: ReadonlySet<string>): void => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item, names);
      return;
    }
    if (!isNode(value)) return;
    let here = names;
    if (isNode(value.cte_map)) {
      const own = nodes(value.cte_map.map).map((e) => (typeof e.key === 'string' ? e.key.toLowerCase() : '')).filter((n) => n !== '');
      if (own.length > 0) here = new Set([...names, ...own]);
    }
    if (!('class' in value) && text(value, 'type') === 'BASE_TABLE') visible.set(value, here);
    for (const member of Object.values(value)) if (typeof member === 'object' && member !== null) walk(member, here);
  };
  walk(statement, new Set());
  return visible;
}

/** The aliases of the outermost query's plain tables, by table name. */
function outerAliases(from: AstNode | undefined, into: Map<string, string>): void {
  if (from === undefined) return;
  if (text(from, 'type') === 'BASE_TABLE') into.set(text(from, 'table_name').toLowerCase(), text(from, 'alias') || text(from, 'table_name'));
  if (text(from, 'type') === 'JOIN') {
    outerAliases(child(from, 'left'), into);
    outerAliases(child(from, 'right'), into);
  }
}

export function checkTemplate(
  template: Template,
  statement: AstNode,
  agreement: Agreement,
  catalog: ReadonlyMap<string, FunctionKind>,
  findings: Findings,
  analyst: string | undefined,
): TemplateResult {
  const ctes = cteNamesOf(statement);
  const visible = visibleCtes(statement);
  for (const name of ctes) {
    if (findTable(agreement.tables, name) !== undefined) findings.add('table-unknown', `a CTE may not be named like the agreement's table ${name}`, null);
  }
  const tables = new Map<string, string>();
  const parameters = new Set<string>();
  for (const node of descendants(statement)) {
    const type = text(node, 'type');
    if (!('class' in node)) {
      if (type === 'RECURSIVE_CTE_NODE') findings.add('recursive-cte', 'recursive CTEs are not allowed', node);
      if (QUERY_NODES.has(type) && !isAbsent(node.sample)) findings.add('sample', 'USING SAMPLE is not allowed', node);
      if (type === 'TABLE_FUNCTION') {
        const fn = child(node, 'function');
        findings.add('table-function', `the table function ${fn === undefined ? '' : text(fn, 'function_name')} is not allowed`, node);
      } else if (type === 'SHOW_REF') {
        findings.add('statement-not-allowed', `${text(node, 'show_type') || 'SHOW'} is not allowed`, node);
      } else if (type === 'BASE_TABLE') {
        const name = text(node, 'table_name');
        if (!isAbsent(node.sample)) findings.add('sample', `TABLESAMPLE on ${name} is not allowed`, node);
        if (!isAbsent(node.at_clause)) findings.add('unsupported-syntax', 'AT (time travel) is not supported', node);
        if (text(node, 'schema_name') !== '' || text(node, 'catalog_name') !== '') {
          findings.add('table-unknown', `tables are named without a schema or catalog: ${text(node, 'schema_name')}.${name}`, node);
        } else if (visible.get(node)?.has(name.toLowerCase()) === true) {
          // A reference to a CTE of an enclosing WITH.
        } else {
          const table = findTable(agreement.tables, name);
          if (table === undefined) findings.add('table-unknown', `${name} is not a table of the agreement`, node);
          else tables.set(table.name, table.owner);
        }
      }
      continue;
    }
    const cls = text(node, 'class');
    if (cls === 'PARAMETER') {
      const name = text(node, 'identifier');
      if (/^\d*$/.test(name)) findings.add('parameter-positional', 'template parameters are named ($name), never positional', node);
      else parameters.add(name);
    } else if (cls === 'FUNCTION' || cls === 'WINDOW') {
      const name = functionName(node);
      const kind = catalog.get(name);
      if (isSandboxFunction(name)) findings.add('sandbox-function', `${name}() never runs in a clean room`, node);
      else if (kind === 'table' || kind === 'table_macro' || kind === 'pragma') findings.add('table-function', `${name} is a table function and is not allowed here`, node);
      else if (kind === undefined && node.is_operator !== true) findings.add('function-not-allowed', `${name} is not a function DuckDB knows`, node);
      else if (text(node, 'schema') !== '' && text(node, 'schema') !== 'main') findings.add('function-not-allowed', `schema-qualified functions are not allowed: ${text(node, 'schema')}.${name}`, node);
    }
  }
  if (tables.size === 0) findings.add('no-table', `template ${template.name} reads no table of the agreement`, statement);

  // Approval: every owner of every table read, and the custom rules' lists.
  const missing = [...new Set(tables.values())].filter((owner) => !template.approvedBy.includes(owner));
  if (missing.length > 0) {
    const names = missing.map((id) => agreement.parties.find((p) => p.id === id)?.name ?? id);
    findings.add('template-not-approved', `template ${template.name} is not approved by ${names.join(', ')}, who own${missing.length === 1 ? 's' : ''} a table it reads`, null);
  }
  for (const name of tables.keys()) {
    const table = findTable(agreement.tables, name);
    const rule = table?.analysisRule;
    if (rule?.type !== 'custom') continue;
    if (!rule.allowedTemplates.includes(template.name)) findings.add('template-not-allowed', `${name}'s custom rule does not list template ${template.name}`, null);
    if (analyst !== undefined && rule.allowedAnalysisProviders !== undefined && !rule.allowedAnalysisProviders.includes(analyst)) {
      findings.add('analysis-provider', `${name}'s custom rule does not let this analyst run templates`, null);
    }
  }

  // Parameters: used ones must be declared (values are checked against the declarations elsewhere).
  for (const used of parameters) {
    if (!template.parameters.some((p) => p.name === used)) findings.add('parameter-undeclared', `the template uses $${used}, which it does not declare`, null);
  }

  const constraints: Constraint[] = [];
  const declared = template.outputConstraints ?? [];
  if (declared.length > 0) {
    const top = isNode(statement.node) ? statement.node : statement;
    const aggregated = text(top, 'type') === 'SELECT_NODE' && (nodes(top.group_expressions).length > 0 || nodes(top.select_list).some((i) => [...descendants(i)].some((n) => n.class === 'FUNCTION' && catalog.get(functionName(n)) === 'aggregate')));
    const aliases = new Map<string, string>();
    if (text(top, 'type') === 'SELECT_NODE') outerAliases(child(top, 'from_table'), aliases);
    for (const c of declared) {
      const alias = [...aliases].find(([table]) => sameName(table, c.table))?.[1];
      if (!aggregated || alias === undefined) {
        findings.add('template-constraint-unsupported', `the k constraint on ${c.table}.${c.columnName} needs an outermost SELECT that aggregates over ${c.table}`, null);
        continue;
      }
      constraints.push({ alias, column: c.columnName, minimum: c.minimum });
    }
  }
  return { tables: [...tables.keys()].sort(), parameters, constraints, cteNames: ctes };
}

