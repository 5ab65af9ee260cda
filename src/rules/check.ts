import type { Agreement, PrivacyPolicy } from '../agreement/index.js';
import { sha256Ref } from '../keyrelease/index.js';
import { checkAdhoc } from './adhoc.js';
import { applyingPolicy, planPrivacy } from './dp.js';
import { rewritePrivate } from './dp-rewrite.js';
import { Findings, isNode, location, text } from './ast.js';
import { checkText, checkTree } from './limits.js';
import { bindParameters } from './parameters.js';
import { functionCatalog, parseSql, type AstNode } from './parser.js';
import { rewriteQuery } from './rewrite.js';
import { checkTemplate } from './template.js';
import { checkComparisonTypes } from './types-check.js';
import type { BoundParameter, CheckedQuery, QueryRequest } from './types.js';

// The pipeline of a query check (docs/queries.md): who asks, the text's bounds, DuckDB's parse,
// the rule walk (ad-hoc or template), the parameters, then the rewrite. Every step adds its
// violations; the query is allowed only when there are none, and only then rewritten.

/** The first keyword of each statement in the text, with its offset: for a message about a non-SELECT statement. */
function statementKeywords(sql: string): { word: string; at: number }[] {
  const found: { word: string; at: number }[] = [];
  const pattern = /(^|;)\s*(?:--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*([A-Za-z]+)/g;
  for (const m of sql.matchAll(pattern)) {
    const word = m[2] as string;
    found.push({ word: word.toUpperCase(), at: m.index + m[0].length - word.length });
  }
  return found;
}

function denied(findings: Findings, queryHash: string, kind: CheckedQuery['kind'] = null, tables: readonly string[] = []): CheckedQuery {
  return { allowed: false, violations: findings.list, kind, tables, rewritten: '', parameters: [], queryHash };
}

export async function checkQuery(agreement: Agreement, request: QueryRequest, options: { as?: string } = {}): Promise<CheckedQuery> {
  const findings = new Findings();
  if (options.as !== undefined) {
    const party = agreement.parties.find((p) => p.id === options.as);
    if (party === undefined) findings.add('party-unknown', `party ${options.as} is not in the agreement`, null);
    else if (!party.roles.includes('analyst')) findings.add('not-analyst', `${party.name} does not have the analyst role`, null);
  }
  const template = request.template === undefined ? undefined : (agreement.templates ?? []).find((t) => t.name === request.template);
  if (request.template !== undefined && template === undefined) {
    findings.add('template-unknown', `the agreement has no template ${request.template}`, null);
    return denied(findings, sha256Ref(''));
  }
  const sql = template?.sql ?? request.sql ?? '';
  const queryHash = sha256Ref(sql);
  if (!checkText(sql, findings)) return denied(findings, queryHash);

  const parsed = await parseSql(sql);
  if (!parsed.ok) {
    if (parsed.kind === 'literal') {
      findings.add('literal-out-of-range', `${parsed.message}: use a smaller constant`, null);
    } else if (parsed.kind === 'not-select') {
      const other = statementKeywords(sql).find((k) => k.word !== 'SELECT' && k.word !== 'WITH' && k.word !== 'FROM' && k.word !== 'VALUES');
      findings.add('statement-not-allowed', `${other === undefined ? 'this statement' : other.word} is not allowed: only a single SELECT runs`, other?.at ?? 0);
    } else {
      findings.add('syntax-error', parsed.message.replace(/^Parser Error: /, ''), parsed.position);
    }
    return denied(findings, queryHash);
  }
  if (parsed.statements.length !== 1) {
    const second = statementKeywords(sql)[1];
    findings.add('multiple-statements', `the text holds ${parsed.statements.length} statements; exactly one SELECT runs`, second?.at ?? null);
    return denied(findings, queryHash);
  }
  const statement = parsed.statements[0] as AstNode;
  if (!checkTree(statement, findings)) return denied(findings, queryHash);
  const node = isNode(statement.node) ? statement.node : undefined;
  const type = node === undefined ? '' : text(node, 'type');
  findings.fallback = location(node);
  const catalog = await functionCatalog();

  if (template !== undefined) {
    const result = checkTemplate(template, statement, agreement, catalog, findings, options.as);
    const parameters: BoundParameter[] = bindParameters(template, request.parameters ?? {}, findings);
    const applying = applyingPolicy(agreement, result.tables, template.name, findings);
    if (!findings.empty) return denied(findings, queryHash, 'template', result.tables);
    if (type !== 'SELECT_NODE') {
      findings.add('set-operation', 'a template\'s outermost query must be a SELECT (wrap a set operation in a CTE)', node);
      return denied(findings, queryHash, 'template', result.tables);
    }
    if (applying !== undefined) return privately(agreement, statement, applying, result.constraints, findings, { kind: 'template', tables: result.tables, parameters, queryHash });
    const rewritten = await rewriteOrDeny({ statement, tables: agreement.tables, constraints: result.constraints, groupBySelection: false, cteNames: result.cteNames }, findings);
    if (rewritten === undefined) return denied(findings, queryHash, 'template', result.tables);
    return { allowed: true, violations: [], kind: 'template', tables: result.tables, rewritten, parameters, queryHash };
  }

  if (type === 'SET_OPERATION_NODE') {
    findings.add('set-operation', `${text(node as AstNode, 'setop_type') || 'set operations'} is not allowed`, node);
    return denied(findings, queryHash);
  }
  if (type === 'RECURSIVE_CTE_NODE') {
    findings.add('recursive-cte', 'recursive CTEs are not allowed', node);
    return denied(findings, queryHash);
  }
  if (type !== 'SELECT_NODE' || node === undefined) {
    findings.add('unsupported-syntax', `${type || 'this query'} is not supported`, node);
    return denied(findings, queryHash);
  }
  const result = checkAdhoc(node, agreement, catalog, findings);
  const tables = result.scope.tables.map((ref) => ref.table.name).sort();
  // Exact types need a query DuckDB can bind: only once the walk found nothing else.
  if (findings.empty) await checkComparisonTypes(statement, node, agreement.tables, result.comparisons, catalog, findings);
  const applying = applyingPolicy(agreement, tables, undefined, findings);
  if (!findings.empty) return denied(findings, queryHash, result.kind, tables);
  if (applying !== undefined) return privately(agreement, statement, applying, result.constraints, findings, { kind: result.kind, tables, parameters: [], queryHash });
  const rewritten = await rewriteOrDeny({ statement, tables: agreement.tables, constraints: result.constraints, groupBySelection: result.kind === 'list' }, findings);
  if (rewritten === undefined) return denied(findings, queryHash, result.kind, tables);
  return { allowed: true, violations: [], kind: result.kind, tables, rewritten, parameters: [], queryHash };
}

/** The rewrite, or a violation when DuckDB cannot print the tree back (never an exception). */
async function rewriteOrDeny(input: Parameters<typeof rewriteQuery>[0], findings: Findings): Promise<string | undefined> {
  try {
    return await rewriteQuery(input);
  } catch {
    findings.add('unsupported-syntax', 'the query uses syntax the rewrite cannot reproduce exactly', null);
    return undefined;
  }
}

/** A query under a privacy policy: its DP plan and the rewrite that bounds each identity's contribution. */
async function privately(
  agreement: Agreement,
  statement: AstNode,
  applying: { policy: PrivacyPolicy; index: number },
  constraints: Parameters<typeof planPrivacy>[3],
  findings: Findings,
  base: Pick<CheckedQuery, 'kind' | 'tables' | 'parameters' | 'queryHash'>,
): Promise<CheckedQuery> {
  const analysis = planPrivacy(agreement, statement, applying, constraints, findings);
  if (analysis === undefined || !findings.empty) return denied(findings, base.queryHash, base.kind, base.tables);
  let rewritten: string;
  try {
    rewritten = await rewritePrivate(statement, agreement.tables, analysis);
  } catch {
    findings.add('unsupported-syntax', 'the query uses syntax the rewrite cannot reproduce exactly', null);
    return denied(findings, base.queryHash, base.kind, base.tables);
  }
  return { allowed: true, violations: [], ...base, rewritten, privacy: analysis.privacy };
}
