import type { Agreement, Table } from '../agreement/index.js';
import { Findings, child, descendants, isAbsent, isNode, nodes, text, unexpectedKeys } from './ast.js';
import { ARITHMETIC, CONSTANT_ARGUMENTS, LIKE_OPERATORS, MEMBER_VALUE_AGGREGATES, functionName, isConstructor, isSandboxFunction } from './functions.js';
import { MAX_IN_LIST } from './limits.js';
import type { AstNode, FunctionKind } from './parser.js';
import { PSEUDO_COLUMNS, resolveColumn, sameName, scopeOf, type Scope, type TableRef } from './scope.js';

// The checker for ad-hoc SQL under the aggregation and list rules (docs/queries.md). It walks
// DuckDB's parse tree with an allowlist: every node kind, function and operator it does not know
// to be safe in its place is a violation. Nothing is repaired or guessed.

export type AdhocKind = 'aggregation' | 'list';

export interface Constraint {
  readonly alias: string;
  readonly column: string;
  readonly minimum: number;
}

export interface AdhocResult {
  readonly kind: AdhocKind | null;
  /** Groups of values DuckDB brings to one type, for the exact type check. */
  readonly comparisons: readonly (readonly AstNode[])[];
  readonly scope: Scope;
  /** The k constraints the rewrite adds: one per constraint of each table read. */
  readonly constraints: readonly Constraint[];
}

type RuleFunction = 'COUNT' | 'COUNT_DISTINCT' | 'SUM' | 'SUM_DISTINCT' | 'AVG';

interface Roles {
  readonly dimensions: ReadonlySet<string>;
  readonly aggregates: ReadonlyMap<string, ReadonlySet<RuleFunction>>;
  readonly joins: ReadonlySet<string>;
  readonly scalar: ReadonlySet<string>;
  readonly identity: string | null;
}

function rolesOf(table: Table): Roles {
  const rule = table.analysisRule;
  const lower = (names: readonly string[]) => new Set(names.map((n) => n.toLowerCase()));
  const identity = table.identityColumn?.toLowerCase() ?? null;
  if (rule.type === 'aggregation') {
    const aggregates = new Map<string, Set<RuleFunction>>();
    for (const { columnNames, function: fn } of rule.aggregateColumns) {
      for (const name of columnNames) aggregates.set(name.toLowerCase(), new Set([...(aggregates.get(name.toLowerCase()) ?? []), fn]));
    }
    return { dimensions: lower(rule.dimensionColumns), aggregates, joins: lower(rule.joinColumns), scalar: new Set(rule.scalarFunctions), identity };
  }
  if (rule.type === 'list') return { dimensions: lower(rule.listColumns), aggregates: new Map(), joins: lower(rule.joinColumns), scalar: new Set(), identity };
  return { dimensions: new Set(), aggregates: new Map(), joins: new Set(), scalar: new Set(), identity };
}

/** Why a column is not a dimension, for the message. */
function roleName(ref: TableRef, column: string, roles: Roles): string {
  const lower = column.toLowerCase();
  if (roles.identity === lower) return `the identity column of ${ref.table.name}`;
  if (roles.joins.has(lower)) return `a join column of ${ref.table.name}`;
  if (roles.aggregates.has(lower)) return `an aggregate-only column of ${ref.table.name}`;
  return `not a ${ref.table.analysisRule.type === 'list' ? 'list' : 'dimension'} column of ${ref.table.name}`;
}

const ALLOWED_COMPARISONS = new Set([
  'COMPARE_EQUAL',
  'COMPARE_NOTEQUAL',
  'COMPARE_LESSTHAN',
  'COMPARE_GREATERTHAN',
  'COMPARE_LESSTHANOREQUALTO',
  'COMPARE_GREATERTHANOREQUALTO',
]);

/** A coarse type of a value, enough to tell which casts cannot fail (exact types: types-check.ts). */
type TypeClass = 'text' | 'number' | 'date' | 'bool' | 'literal' | 'null' | 'mixed' | 'unknown';

function columnClass(type: string): TypeClass {
  if (type === 'VARCHAR' || type === 'UUID') return 'text';
  if (type === 'DATE' || type.startsWith('TIMESTAMP')) return 'date';
  if (type === 'BOOLEAN') return 'bool';
  return 'number';
}

function constantClass(node: AstNode): TypeClass {
  const value = node.value as { is_null?: boolean; type?: { id?: string } } | undefined;
  if (value?.is_null === true) return 'null';
  const id = value?.type?.id ?? '';
  if (id === 'VARCHAR') return 'literal';
  if (id === 'BOOLEAN') return 'bool';
  if (id === 'DATE' || id.startsWith('TIMESTAMP')) return 'date';
  if (/INT|DECIMAL|DOUBLE|FLOAT|REAL/.test(id)) return 'number';
  return 'unknown';
}

function castClass(node: AstNode): TypeClass {
  const id = (node.cast_type as { id?: string } | undefined)?.id ?? '';
  if (id === 'VARCHAR') return 'text';
  if (id === 'BOOLEAN') return 'bool';
  if (id === 'DATE' || id.startsWith('TIMESTAMP')) return 'date';
  if (/INT|DECIMAL|DOUBLE|FLOAT|REAL/.test(id)) return 'number';
  return 'unknown';
}

const SELECT_KEYS = ['type', 'modifiers', 'cte_map', 'select_list', 'from_table', 'where_clause', 'group_expressions', 'group_sets', 'aggregate_handling', 'having', 'sample', 'qualify'];
const FUNCTION_KEYS = ['class', 'type', 'alias', 'function_name', 'schema', 'catalog', 'children', 'distinct', 'filter', 'order_bys', 'export_state', 'is_operator'];

class AdhocChecker {
  private readonly roles = new Map<TableRef, Roles>();
  private readonly aliases = new Map<string, AstNode>();

  constructor(
    private readonly scope: Scope,
    private readonly findings: Findings,
    private readonly catalog: ReadonlyMap<string, FunctionKind>,
    private readonly kind: AdhocKind,
  ) {
    for (const ref of scope.tables) this.roles.set(ref, rolesOf(ref.table));
  }

  private rolesOf(ref: TableRef): Roles {
    return this.roles.get(ref) ?? rolesOf(ref.table);
  }

  private typeOf(node: AstNode): TypeClass {
    switch (text(node, 'class')) {
      case 'CONSTANT':
        return constantClass(node);
      case 'COLUMN_REF': {
        const resolved = resolveColumn(node, this.scope);
        if (resolved.kind !== 'column') return 'unknown';
        const column = resolved.ref.table.columns.find((c) => c.name === resolved.column);
        return column === undefined ? 'unknown' : columnClass(column.type);
      }
      case 'CAST':
        return castClass(node);
      case 'CASE': {
        const results = [...nodes(node.case_checks).map((c) => child(c, 'then_expr')), child(node, 'else_expr')].filter((n): n is AstNode => n !== undefined);
        // The CASE's value is computed per row, so even all-literal results are a value, not a literal.
        const classes = new Set(results.map((r) => this.typeOf(r)).map((c) => (c === 'literal' ? 'text' : c)).filter((c) => c !== 'null'));
        if (classes.size === 0) return 'null';
        return classes.size === 1 ? ([...classes][0] as TypeClass) : 'mixed';
      }
      case 'COMPARISON':
      case 'CONJUNCTION':
      case 'BETWEEN':
        return 'bool';
      case 'FUNCTION': {
        const name = functionName(node);
        if (['count', 'count_star', 'sum', 'avg', '/', '+', '-', '*'].includes(name)) return 'number';
        return 'unknown';
      }
      default:
        return 'unknown';
    }
  }

  /** Refuses a comparison that would make DuckDB cast a value from the data. */
  /** Groups of values DuckDB brings to one type (comparison operands, CASE results): their exact types are checked after the walk. */
  readonly comparisons: AstNode[][] = [];

  /** Records values DuckDB will bring to one type; types-check.ts checks them with DuckDB's own types. */
  private comparable(operands: readonly (AstNode | undefined)[]): void {
    const present = operands.filter((o): o is AstNode => o !== undefined);
    if (present.length > 1) this.comparisons.push(present);
  }

  /** Node classes refused wherever they appear; true when the node was one of them. */
  private refused(node: AstNode): boolean {
    const cls = text(node, 'class');
    const f = this.findings;
    switch (cls) {
      case 'WINDOW':
        f.add('window-function', `window functions (${text(node, 'function_name')} OVER …) are not allowed`, node);
        return true;
      case 'SUBQUERY':
        f.add('subquery-not-allowed', 'subqueries are not allowed', node);
        return true;
      case 'LAMBDA':
        f.add('lambda', 'lambdas are not allowed', node);
        return true;
      case 'POSITIONAL_REFERENCE':
        f.add('positional-reference', `positional references (#${String(node.index)}) are not allowed`, node);
        return true;
      case 'STAR':
        f.add('star', node.columns === true ? 'COLUMNS(…) is not allowed: name the columns' : 'SELECT * is not allowed: name the columns', node);
        return true;
      case 'PARAMETER':
        f.add('parameter-not-allowed', 'ad-hoc SQL takes no parameters: use a template', node);
        return true;
      case 'COLLATE':
        f.add('unsupported-syntax', 'COLLATE is not supported', node);
        return true;
      case 'COLUMN_REF':
      case 'CONSTANT':
      case 'FUNCTION':
      case 'CASE':
      case 'CAST':
      case 'COMPARISON':
      case 'CONJUNCTION':
      case 'OPERATOR':
      case 'BETWEEN':
        return false;
      default:
        f.add('unsupported-syntax', `${cls || 'this expression'} is not supported`, node);
        return true;
    }
  }

  /** A FUNCTION node that is not an operator, aggregate or constructor: the allowlists decide. */
  private scalarFunction(node: AstNode): boolean {
    const name = functionName(node);
    if (isSandboxFunction(name)) {
      this.findings.add('sandbox-function', `${name}() never runs in a clean room`, node);
      return false;
    }
    if (isConstructor(name)) {
      this.findings.add('constructor', `${name === 'list_value' ? 'list literals' : name === 'struct_pack' ? 'struct literals' : name + '()'} are not allowed`, node);
      return false;
    }
    for (const key of unexpectedKeys(node, FUNCTION_KEYS)) this.findings.add('unsupported-syntax', `${name}: ${key} is not supported`, node);
    if (text(node, 'schema') !== '' || text(node, 'catalog') !== '') {
      this.findings.add('function-not-allowed', `schema-qualified functions are not allowed: ${text(node, 'schema')}.${name}`, node);
      return false;
    }
    const kind = this.catalog.get(name);
    if (kind === 'table' || kind === 'table_macro' || kind === 'pragma') {
      this.findings.add('table-function', `${name} is a table function and is not allowed here`, node);
      return false;
    }
    // The tables whose allowlists count: those whose columns the call touches, else all of them.
    const touched = new Set<TableRef>();
    for (const ref of descendants(node.children)) {
      if (text(ref, 'class') !== 'COLUMN_REF') continue;
      const resolved = resolveColumn(ref, this.scope);
      if (resolved.kind === 'column') touched.add(resolved.ref);
    }
    const judges = touched.size > 0 ? [...touched] : [...this.scope.tables];
    const refusing = judges.filter((ref) => !this.rolesOf(ref).scalar.has(name.toUpperCase()));
    if (refusing.length > 0 || judges.length === 0) {
      this.findings.add('function-not-allowed', `${name.toUpperCase()} is not in the scalarFunctions of ${refusing.map((r) => r.table.name).join(', ') || 'any table'}`, node);
      return false;
    }
    const args = nodes(node.children);
    for (const index of CONSTANT_ARGUMENTS[name] ?? []) {
      const arg = args[index];
      if (arg !== undefined && text(arg, 'class') !== 'CONSTANT') this.findings.add('constant-argument', `argument ${index + 1} of ${name.toUpperCase()} must be a constant`, arg);
    }
    return true;
  }

  /** A row-level value that may be shown, grouped or compared: a dimension column, a constant, or allowed functions of them. */
  dimension(node: AstNode, where: 'select' | 'group' | 'order' | 'filter'): void {
    if (this.refused(node)) return;
    const f = this.findings;
    switch (text(node, 'class')) {
      case 'CONSTANT':
        return;
      case 'COLUMN_REF': {
        const resolved = resolveColumn(node, this.scope);
        if (resolved.kind === 'column') {
          const roles = this.rolesOf(resolved.ref);
          if (!roles.dimensions.has(resolved.column.toLowerCase())) {
            const code = where === 'filter' ? 'filter-not-allowed' : 'column-not-allowed';
            const verb = { select: 'selected', group: 'grouped on', order: 'ordered by', filter: 'filtered on' }[where];
            f.add(code, `${resolved.ref.alias}.${resolved.column} may not be ${verb}: it is ${roleName(resolved.ref, resolved.column, roles)}`, node);
          }
          return;
        }
        if (resolved.kind === 'unknown' && this.aliases.has(resolved.name.toLowerCase()) && (where === 'order' || where === 'group')) return;
        if (resolved.kind === 'unknown' && this.aliases.has(resolved.name.toLowerCase())) {
          f.add('alias-reference', `${resolved.name} is a select alias; refer to the column itself here`, node);
          return;
        }
        this.unresolved(node, resolved.kind, resolved.name);
        return;
      }
      case 'FUNCTION': {
        const name = functionName(node);
        if (node.is_operator === true || ARITHMETIC.has(name) || name === '||') {
          f.add('arithmetic-not-allowed', `the operator ${name} on row values is not allowed: it can fail on a value and so reveal it`, node);
          return;
        }
        if (this.catalog.get(name) === 'aggregate' || name === 'count_star') {
          f.add('aggregate-not-allowed', `${name} cannot be used ${where === 'filter' ? 'in a filter' : where === 'group' ? 'in GROUP BY' : 'here'}`, node);
          return;
        }
        this.scalarFunction(node);
        for (const arg of nodes(node.children)) this.dimension(arg, where);
        return;
      }
      case 'CAST':
        this.cast(node, (inner) => { this.dimension(inner, where); });
        return;
      case 'CASE':
        this.caseExpression(node, (w) => { this.filter(w); }, (t) => { this.dimension(t, where); });
        return;
      default:
        if (where === 'filter' || where === 'select') this.filter(node);
        else f.add('unsupported-syntax', `${text(node, 'type')} is not supported in ${where === 'group' ? 'GROUP BY' : 'ORDER BY'}`, node);
    }
  }

  private unresolved(node: AstNode, kind: 'unknown' | 'ambiguous' | 'malformed' | 'row', name: string): void {
    if (kind === 'row') this.findings.add('column-not-allowed', `${name} stands for whole rows (a table alias, or rowid): name a column`, node);
    else if (kind === 'ambiguous') this.findings.add('column-ambiguous', `${name} is in several tables of the query: qualify it`, node);
    else if (kind === 'malformed') this.findings.add('unsupported-syntax', `${name}: nested field access is not supported`, node);
    else this.findings.add('column-unknown', `${name} is not a column of the query's tables`, node);
  }

  private cast(node: AstNode, inner: (node: AstNode) => void): void {
    const arg = child(node, 'child');
    if (arg === undefined) return;
    const literal = text(arg, 'class') === 'CONSTANT';
    // Casts that cannot fail: anything to text, numbers to floating point.
    const target = castClass(node);
    const id = (node.cast_type as { id?: string } | undefined)?.id ?? '';
    const safe = target === 'text' || (['DOUBLE', 'FLOAT', 'REAL'].includes(id) && this.typeOf(arg) === 'number');
    if (node.try_cast !== true && !literal && !safe) {
      this.findings.add('cast-not-allowed', 'this CAST can fail on a value and so reveal it: use TRY_CAST', node);
      return;
    }
    inner(arg);
  }

  private caseExpression(node: AstNode, when: (n: AstNode) => void, then: (n: AstNode) => void): void {
    const results = [...nodes(node.case_checks).map((c) => child(c, 'then_expr')), child(node, 'else_expr')].filter((n): n is AstNode => n !== undefined);
    if (results.length > 1) this.comparisons.push(results);
    for (const check of nodes(node.case_checks)) {
      const w = child(check, 'when_expr');
      const t = child(check, 'then_expr');
      if (w !== undefined) when(w);
      if (t !== undefined) then(t);
    }
    const otherwise = child(node, 'else_expr');
    if (otherwise !== undefined) then(otherwise);
  }

  /** A row-level predicate (WHERE, CASE conditions): comparisons of dimensions with dimensions or constants. */
  filter(node: AstNode): void {
    if (this.refused(node)) return;
    const f = this.findings;
    const type = text(node, 'type');
    switch (text(node, 'class')) {
      case 'CONJUNCTION':
        for (const c of nodes(node.children)) this.filter(c);
        return;
      case 'COMPARISON':
        if (!ALLOWED_COMPARISONS.has(type)) {
          f.add('filter-not-allowed', `the comparison ${type} is not allowed in filters`, node);
          return;
        }
        for (const side of ['left', 'right']) {
          const operand = child(node, side);
          if (operand !== undefined) this.dimension(operand, 'filter');
        }
        this.comparable([child(node, 'left'), child(node, 'right')]);
        return;
      case 'BETWEEN':
        for (const part of ['input', 'lower', 'upper']) {
          const operand = child(node, part);
          if (operand !== undefined) this.dimension(operand, 'filter');
        }
        this.comparable([child(node, 'input'), child(node, 'lower'), child(node, 'upper')]);
        return;
      case 'OPERATOR': {
        const [first, ...rest] = nodes(node.children);
        if (type === 'OPERATOR_NOT' || type === 'OPERATOR_IS_NULL' || type === 'OPERATOR_IS_NOT_NULL') {
          if (first !== undefined && type === 'OPERATOR_NOT') this.filter(first);
          else if (first !== undefined) this.dimension(first, 'filter');
          return;
        }
        if (type === 'COMPARE_IN' || type === 'COMPARE_NOT_IN') {
          if (first !== undefined) this.dimension(first, 'filter');
          if (rest.length > MAX_IN_LIST) f.add('query-too-large', `an IN list has ${rest.length} items; at most ${MAX_IN_LIST}`, node);
          for (const item of rest) if (!this.refused(item) && text(item, 'class') !== 'CONSTANT') f.add('filter-not-allowed', 'IN lists hold constants only', item);
          this.comparable([first, ...rest]);
          return;
        }
        f.add('filter-not-allowed', `${type} is not allowed in filters`, node);
        return;
      }
      case 'FUNCTION': {
        const name = functionName(node);
        if (LIKE_OPERATORS.has(name)) {
          const [subject, pattern] = nodes(node.children);
          if (subject !== undefined) this.dimension(subject, 'filter');
          if (pattern !== undefined && text(pattern, 'class') !== 'CONSTANT') f.add('filter-not-allowed', 'a LIKE pattern must be a constant', pattern);
          return;
        }
        this.dimension(node, 'filter');
        return;
      }
      default:
        this.dimension(node, 'filter');
    }
  }

  private aggregateFunction(node: AstNode): RuleFunction | 'COUNT_STAR' | undefined {
    const name = functionName(node);
    const distinct = node.distinct === true;
    if (name === 'count_star') return 'COUNT_STAR';
    if (name === 'count') return distinct ? 'COUNT_DISTINCT' : 'COUNT';
    if (name === 'sum') return distinct ? 'SUM_DISTINCT' : 'SUM';
    if (name === 'avg' && !distinct) return 'AVG';
    return undefined;
  }

  private isAggregateCall(node: AstNode): boolean {
    if (text(node, 'class') !== 'FUNCTION') return false;
    const name = functionName(node);
    return name === 'count_star' || this.catalog.get(name) === 'aggregate';
  }

  /** An aggregate call in the output: one of the five functions, over a column the rule allows it on. */
  private aggregate(node: AstNode): void {
    const f = this.findings;
    const name = functionName(node);
    const fn = this.aggregateFunction(node);
    if (this.kind === 'list') {
      f.add('aggregate-in-list-query', `${name} in a list query: list queries select list columns only`, node);
      return;
    }
    if (fn === undefined) {
      const why = MEMBER_VALUE_AGGREGATES.has(name) ? ': it returns a member\'s value' : '';
      f.add('aggregate-not-allowed', `${name.toUpperCase()}${node.distinct === true ? ' DISTINCT' : ''} is not an allowed aggregate${why} (COUNT, COUNT DISTINCT, SUM, SUM DISTINCT and AVG are, on the columns each rule names)`, node);
      return;
    }
    for (const key of unexpectedKeys(node, FUNCTION_KEYS)) f.add('unsupported-syntax', `${name}: ${key} is not supported`, node);
    if (!isAbsent(node.filter)) f.add('aggregate-argument', `${name}(…) FILTER (WHERE …) is not allowed`, node);
    if (isNode(node.order_bys) && Array.isArray(node.order_bys.orders) && node.order_bys.orders.length > 0) {
      f.add('aggregate-argument', `ORDER BY inside ${name}(…) is not allowed`, node);
    }
    const args = nodes(node.children);
    if (fn === 'COUNT_STAR') {
      const counting = this.scope.tables.some((ref) => [...this.rolesOf(ref).aggregates.values()].some((fns) => fns.has('COUNT')));
      if (!counting) f.add('aggregate-not-allowed', 'COUNT(*) needs a table whose rule allows COUNT on some column', node);
      return;
    }
    if (args.length !== 1) {
      f.add('aggregate-argument', `${name} takes exactly one argument here`, node);
      return;
    }
    this.aggregateArgument(args[0] as AstNode, fn);
  }

  private aggregateArgument(node: AstNode, fn: RuleFunction): void {
    if (this.refused(node)) return;
    const f = this.findings;
    switch (text(node, 'class')) {
      case 'COLUMN_REF': {
        const resolved = resolveColumn(node, this.scope);
        if (resolved.kind !== 'column') {
          if (resolved.kind === 'unknown' && this.aliases.has(resolved.name.toLowerCase())) f.add('alias-reference', `${resolved.name} is a select alias`, node);
          else this.unresolved(node, resolved.kind, resolved.name);
          return;
        }
        const allowed = this.rolesOf(resolved.ref).aggregates.get(resolved.column.toLowerCase());
        if (allowed?.has(fn) !== true) {
          const label = fn.replace('_', ' ');
          f.add('aggregate-column-not-allowed', `${label} on ${resolved.ref.alias}.${resolved.column} is not allowed by the rule of ${resolved.ref.table.name}${allowed === undefined ? '' : ` (it allows ${[...allowed].join(', ')})`}`, node);
        }
        return;
      }
      case 'CONSTANT':
        f.add('aggregate-argument', 'an aggregate of a constant is not allowed: aggregate a column', node);
        return;
      case 'CASE':
        // A conditional aggregate covers only the rows its CASE keeps, while the k constraint
        // counts the whole group: it would aggregate over one person. Filter with WHERE instead.
        f.add('aggregate-argument', 'CASE inside an aggregate is not allowed: it escapes the k constraint (filter with WHERE, or group by the dimension)', node);
        return;
      case 'CAST':
        this.cast(node, (inner) => { this.aggregateArgument(inner, fn); });
        return;
      case 'FUNCTION': {
        const name = functionName(node);
        if (this.isAggregateCall(node)) {
          f.add('aggregate-argument', `aggregates cannot be nested (${name} inside another aggregate)`, node);
          return;
        }
        if (node.is_operator === true || ARITHMETIC.has(name)) {
          f.add('arithmetic-not-allowed', `the operator ${name} on row values is not allowed: it can fail on a value and so reveal it`, node);
          return;
        }
        this.scalarFunction(node);
        for (const arg of nodes(node.children)) if (text(arg, 'class') !== 'CONSTANT') this.aggregateArgument(arg, fn);
        return;
      }
      default:
        f.add('aggregate-argument', `${text(node, 'type')} is not allowed inside an aggregate`, node);
    }
  }

  /** An expression of the output (select list, HAVING, ORDER BY): aggregates, dimensions, and safe combinations. */
  output(node: AstNode, where: 'select' | 'having' | 'order' | 'case'): void {
    if (this.refused(node)) return;
    const f = this.findings;
    const type = text(node, 'type');
    switch (text(node, 'class')) {
      case 'CONSTANT':
        return;
      case 'COLUMN_REF': {
        const resolved = resolveColumn(node, this.scope);
        if (resolved.kind === 'unknown' && this.aliases.has(resolved.name.toLowerCase())) {
          // ORDER BY runs after the k constraints; HAVING and CASE conditions see every group, and
          // an alias there would bring its select-list expression (arithmetic, say) along.
          if (where === 'order') return;
          this.findings.add('alias-reference', `${resolved.name} is a select alias; in ${where === 'having' ? 'HAVING' : 'a condition'} repeat its expression instead`, node);
          return;
        }
        if (where === 'having' && resolved.kind === 'column') {
          const roles = this.rolesOf(resolved.ref);
          if (!roles.dimensions.has(resolved.column.toLowerCase())) {
            f.add('having-not-allowed', `HAVING on ${resolved.ref.alias}.${resolved.column} is not allowed: it is ${roleName(resolved.ref, resolved.column, roles)}`, node);
          }
          return;
        }
        this.dimension(node, where === 'order' ? 'order' : where === 'case' ? 'filter' : 'select');
        return;
      }
      case 'FUNCTION': {
        const name = functionName(node);
        if (this.isAggregateCall(node)) {
          this.aggregate(node);
          return;
        }
        if (node.is_operator === true || ARITHMETIC.has(name) || name === '||') {
          const args = nodes(node.children);
          const rowLevel = args.some((a) => this.touchesRows(a));
          const unaryMinus = name === '-' && args.length === 1;
          // The select list and ORDER BY are computed only for groups that met the k constraints
          // (they are applied in HAVING), so an overflow there is about a released aggregate.
          // HAVING itself sees every group: only division, which never raises in DuckDB.
          const released = where === 'select' || where === 'order';
          const operator = name === '/' || unaryMinus || (released && ['+', '-', '*'].includes(name));
          if (rowLevel || !operator) {
            f.add('arithmetic-not-allowed', rowLevel ? `the operator ${name} on row values is not allowed: it can fail on a value and so reveal it` : `only division combines aggregates in HAVING or CASE conditions (${name} can overflow on a value)`, node);
            return;
          }
          for (const arg of args) this.output(arg, where);
          return;
        }
        this.scalarFunction(node);
        for (const arg of nodes(node.children)) this.output(arg, where);
        return;
      }
      case 'CAST':
        this.cast(node, (inner) => { this.output(inner, where); });
        return;
      case 'CASE':
        this.caseExpression(node, (w) => { this.output(w, where === 'select' ? 'case' : where); }, (t) => { this.output(t, where); });
        return;
      case 'CONJUNCTION':
        for (const c of nodes(node.children)) this.output(c, where);
        return;
      case 'COMPARISON':
        if (!ALLOWED_COMPARISONS.has(type)) {
          f.add(where === 'having' ? 'having-not-allowed' : 'filter-not-allowed', `the comparison ${type} is not allowed`, node);
          return;
        }
        for (const side of ['left', 'right']) {
          const operand = child(node, side);
          if (operand !== undefined) this.output(operand, where);
        }
        this.comparable([child(node, 'left'), child(node, 'right')]);
        return;
      case 'BETWEEN':
        for (const part of ['input', 'lower', 'upper']) {
          const operand = child(node, part);
          if (operand !== undefined) this.output(operand, where);
        }
        this.comparable([child(node, 'input'), child(node, 'lower'), child(node, 'upper')]);
        return;
      case 'OPERATOR':
        if (['OPERATOR_NOT', 'OPERATOR_IS_NULL', 'OPERATOR_IS_NOT_NULL', 'COMPARE_IN', 'COMPARE_NOT_IN'].includes(type)) {
          for (const c of nodes(node.children)) this.output(c, where);
          if (type === 'COMPARE_IN' || type === 'COMPARE_NOT_IN') this.comparable(nodes(node.children));
          return;
        }
        f.add('unsupported-syntax', `${type} is not supported`, node);
        return;
      default:
        f.add('unsupported-syntax', `${type} is not supported`, node);
    }
  }

  /** Whether an expression reads a row value outside any aggregate. */
  private touchesRows(node: AstNode): boolean {
    if (text(node, 'class') === 'COLUMN_REF') return true;
    if (this.isAggregateCall(node)) return false;
    return Object.values(node).some((v) => (Array.isArray(v) ? v.some((x) => isNode(x) && this.touchesRows(x)) : isNode(v) && this.touchesRows(v)));
  }

  containsAggregate(node: AstNode): boolean {
    for (const n of descendants(node)) if (this.isAggregateCall(n)) return true;
    return false;
  }

  checkAliases(items: readonly AstNode[]): void {
    for (const item of items) {
      const alias = text(item, 'alias');
      if (alias === '') continue;
      if (alias.toLowerCase().startsWith('malus_')) this.findings.add('reserved-name', `the alias ${alias} is reserved (malus_…)`, item);
      const shadowed = this.scope.tables.some((ref) => ref.table.columns.some((c) => sameName(c.name, alias)));
      // A select alias named like a table, a table alias or rowid would let GROUP BY, HAVING or
      // ORDER BY reach the whole row under that name: DuckDB binds those names before aliases.
      const rowName = this.scope.tables.some((ref) => sameName(ref.alias, alias) || sameName(ref.table.name, alias)) || PSEUDO_COLUMNS.includes(alias.toLowerCase());
      if (rowName) this.findings.add('alias-shadows-column', `the alias ${alias} is the name of a table (or rowid): choose another`, item);
      const selfNamed = text(item, 'class') === 'COLUMN_REF' && Array.isArray(item.column_names) && sameName(String(item.column_names.at(-1)), alias);
      if (shadowed && !selfNamed && !rowName) this.findings.add('alias-shadows-column', `the alias ${alias} is the name of a table column: choose another`, item);
      this.aliases.set(alias.toLowerCase(), item);
    }
  }

  joins(): void {
    const f = this.findings;
    const operators = (ref: TableRef): readonly string[] => {
      const rule = ref.table.analysisRule;
      return rule.type === 'custom' ? [] : (rule.allowedJoinOperators ?? ['AND']);
    };
    const allow = (op: string) => this.scope.tables.every((ref) => operators(ref).includes(op));
    for (const join of this.scope.joins) {
      if (join.using.length > 0) {
        for (const column of join.using) {
          const left = join.left.filter((r) => r.table.columns.some((c) => sameName(c.name, column)));
          const right = join.right.filter((r) => r.table.columns.some((c) => sameName(c.name, column)));
          if (left.length !== 1 || right.length !== 1) {
            f.add('join-condition', `USING (${column}) must name a column of exactly one table on each side`, join.join);
            continue;
          }
          for (const ref of [left[0], right[0]] as TableRef[]) {
            if (!this.rolesOf(ref).joins.has(column.toLowerCase())) f.add('join-column', `${ref.table.name}.${column} is not a join column`, join.join);
          }
        }
        if (join.using.length > 1 && !allow('AND')) f.add('join-operator', 'AND between join conditions is not allowed by every table', join.join);
        continue;
      }
      if (join.condition === undefined) {
        f.add('join-condition', 'a join needs ON (or USING) with the join columns', join.join);
        continue;
      }
      this.joinCondition(join.condition, join.left, join.right, allow);
    }
    for (const ref of this.scope.tables) {
      const rule = ref.table.analysisRule;
      if (rule.type === 'aggregation' && rule.joinRequired === true && !this.scope.tables.some((other) => other.table.owner !== ref.table.owner)) {
        f.add('join-required', `${ref.table.name} may only be queried joined with a table of another party`, ref.node);
      }
    }
  }

  private joinCondition(node: AstNode, left: readonly TableRef[], right: readonly TableRef[], allow: (op: string) => boolean): void {
    const f = this.findings;
    const type = text(node, 'type');
    if (type === 'CONJUNCTION_AND' || type === 'CONJUNCTION_OR') {
      const op = type === 'CONJUNCTION_AND' ? 'AND' : 'OR';
      if (!allow(op)) f.add('join-operator', `${op} in a join condition is not allowed by every table's allowedJoinOperators`, node);
      for (const c of nodes(node.children)) this.joinCondition(c, left, right, allow);
      return;
    }
    if (type !== 'COMPARE_EQUAL') {
      f.add('join-condition', `join conditions are equalities between join columns; ${type.replace('COMPARE_', '').toLowerCase() || 'this'} is not`, node);
      return;
    }
    const sides = [child(node, 'left'), child(node, 'right')];
    if (!sides.every((s) => s !== undefined && text(s, 'class') === 'COLUMN_REF')) {
      f.add('join-condition', 'join conditions compare plain columns: no expressions or constants', node);
      return;
    }
    const resolved = sides.map((s) => resolveColumn(s as AstNode, this.scope));
    for (const [i, r] of resolved.entries()) {
      if (r.kind !== 'column') this.unresolved(sides[i] as AstNode, r.kind, r.name);
    }
    if (!resolved.every((r) => r.kind === 'column')) return;
    const [a, b] = resolved as unknown as [{ ref: TableRef; column: string }, { ref: TableRef; column: string }];
    const across = (left.includes(a.ref) && right.includes(b.ref)) || (left.includes(b.ref) && right.includes(a.ref));
    if (!across) {
      f.add('join-condition', `${a.ref.alias}.${a.column} = ${b.ref.alias}.${b.column} does not join the two sides of this join`, node);
      return;
    }
    for (const { ref, column } of [a, b]) {
      if (!this.rolesOf(ref).joins.has(column.toLowerCase())) f.add('join-column', `${ref.alias}.${column} is not a join column of ${ref.table.name}`, node);
    }
  }
}


/** Checks one ad-hoc SELECT node under the rules of the tables it reads. */
export function checkAdhoc(select: AstNode, agreement: Agreement, catalog: ReadonlyMap<string, FunctionKind>, findings: Findings): AdhocResult {
  const scope = scopeOf(child(select, 'from_table'), agreement.tables, findings);
  for (const key of unexpectedKeys(select, SELECT_KEYS)) findings.add('unsupported-syntax', `${key} is not supported`, select);
  if (!isAbsent(select.qualify)) findings.add('window-function', 'QUALIFY is not allowed', child(select, 'qualify'));
  if (!isAbsent(select.sample)) findings.add('sample', 'USING SAMPLE is not allowed', select);
  const ctes = isNode(select.cte_map) ? nodes(select.cte_map.map) : [];
  const recursive = ctes.some((entry) => {
    const query = isNode(entry.value) && isNode(entry.value.query) ? entry.value.query : undefined;
    return query !== undefined && isNode(query.node) && text(query.node, 'type') === 'RECURSIVE_CTE_NODE';
  });
  if (recursive) findings.add('recursive-cte', 'recursive CTEs are not allowed', select);
  else if (ctes.length > 0) findings.add('cte-not-allowed', 'WITH is not allowed in ad-hoc queries', select);
  const handling = text(select, 'aggregate_handling');
  if (handling !== 'STANDARD_HANDLING' && handling !== 'FORCE_AGGREGATES') findings.add('unsupported-syntax', `${handling} is not supported`, select);

  if (scope.tables.length === 0) {
    if (findings.empty) findings.add('no-table', 'the query reads no table of the agreement', select);
    // Still look at the expressions: a FROM-less query is often an attempt on a function.
  }
  const custom = scope.tables.filter((ref) => ref.table.analysisRule.type === 'custom');
  for (const ref of custom) findings.add('custom-rule', `${ref.table.name} answers only approved templates (its rule is custom)`, ref.node);

  const items = nodes(select.select_list);
  const probe = new AdhocChecker(scope, new Findings(), catalog, 'aggregation');
  const hasAggregate = items.some((item) => probe.containsAggregate(item));
  const ruled = scope.tables.filter((ref) => ref.table.analysisRule.type !== 'custom');
  let kind: AdhocKind | null = hasAggregate ? 'aggregation' : 'list';
  if (ruled.length > 0) {
    const types = new Set(ruled.map((ref) => ref.table.analysisRule.type));
    if (types.size > 1) {
      findings.add('rule-mismatch', `the query mixes tables with aggregation and list rules (${ruled.map((r) => `${r.table.name}: ${r.table.analysisRule.type}`).join(', ')})`, select);
      kind = null;
    } else if (hasAggregate && types.has('list')) {
      findings.add('aggregate-in-list-query', 'the tables have list rules: select list columns, without aggregates', select);
    } else if (!hasAggregate && types.has('aggregation')) {
      findings.add('aggregate-required', 'the tables have aggregation rules: the query must aggregate (COUNT, SUM, AVG, …)', select);
      kind = 'aggregation';
    }
  }

  const checker = new AdhocChecker(scope, findings, catalog, kind ?? 'aggregation');
  checker.checkAliases(items);
  for (const item of items) {
    if (kind === 'list') checker.dimension(item, 'select');
    else checker.output(item, 'select');
  }
  const where = child(select, 'where_clause');
  if (where !== undefined) checker.filter(where);
  const groups = nodes(select.group_expressions);
  if (kind === 'list' && (groups.length > 0 || child(select, 'having') !== undefined)) {
    findings.add('rule-mismatch', 'list queries take no GROUP BY or HAVING: Malus groups the list itself', select);
  }
  const position = (node: AstNode): number | undefined => {
    const value = (node.value as { value?: unknown } | undefined)?.value;
    return text(node, 'class') === 'CONSTANT' && typeof value === 'number' ? value : undefined;
  };
  const inRange = (node: AstNode, clause: string): void => {
    const at = position(node);
    if (at !== undefined && (!Number.isInteger(at) || at < 1 || at > items.length)) {
      findings.add('positional-reference', `${clause} ${at} is not a position of the select list (1 to ${items.length})`, node);
    }
  };
  for (const group of groups) {
    if (position(group) === undefined) checker.dimension(group, 'group');
    else {
      inRange(group, 'GROUP BY');
      const item = items[(position(group) ?? 0) - 1];
      if (item !== undefined && checker.containsAggregate(item)) findings.add('positional-reference', `GROUP BY ${position(group) ?? ''} points at an aggregate`, group);
    }
  }
  const having = child(select, 'having');
  if (having !== undefined) checker.output(having, 'having');
  for (const modifier of nodes(select.modifiers)) {
    const type = text(modifier, 'type');
    if (type === 'ORDER_MODIFIER') {
      for (const order of nodes(modifier.orders)) {
        const expression = child(order, 'expression');
        if (expression === undefined) continue;
        const all = text(expression, 'class') === 'STAR' && expression.columns === true && isAbsent(expression.expr) && !('exclude_list' in expression && !isEmptyList(expression.exclude_list));
        if (text(expression, 'class') === 'CONSTANT') inRange(expression, 'ORDER BY');
        if (all || text(expression, 'class') === 'CONSTANT') continue;
        checker.output(expression, 'order');
      }
    } else if (type === 'LIMIT_MODIFIER') {
      for (const part of ['limit', 'offset']) {
        const value = child(modifier, part);
        if (value !== undefined && text(value, 'class') !== 'CONSTANT') findings.add('modifier-not-allowed', `${part.toUpperCase()} takes a constant`, value);
      }
    } else if (type === 'DISTINCT_MODIFIER') {
      if (!isEmptyList(modifier.distinct_on_targets)) findings.add('modifier-not-allowed', 'DISTINCT ON is not allowed', modifier);
    } else {
      findings.add('modifier-not-allowed', `${type.replace('_MODIFIER', '').replace('_', ' ')} is not allowed`, modifier);
    }
  }
  checker.joins();

  const constraints: Constraint[] = [];
  for (const ref of scope.tables) {
    const rule = ref.table.analysisRule;
    if (rule.type === 'aggregation') {
      for (const c of rule.outputConstraints) constraints.push({ alias: ref.alias, column: c.columnName, minimum: c.minimum });
    } else if (rule.type === 'list') {
      const list = rule.outputConstraints ?? [];
      if (list.length === 0) findings.add('list-constraint-missing', `${ref.table.name}'s list rule names no outputConstraints, so no list query runs on it`, ref.node);
      for (const c of list) constraints.push({ alias: ref.alias, column: c.columnName, minimum: c.minimum });
    }
  }
  return { kind, scope, constraints, comparisons: checker.comparisons };
}

function isEmptyList(value: unknown): boolean {
  return !Array.isArray(value) || value.length === 0;
}

