import { MAX_SQL_LENGTH } from './request.js';
import type { Findings } from './ast.js';
import { descendants } from './ast.js';
import type { AstNode } from './parser.js';

// Bounds checked before and after parsing, so that no query can exhaust the parser or the planner:
// the text's length and bracket depth before DuckDB sees it, the tree's size and depth after.

export const MAX_NESTING = 48;
export const MAX_NODES = 4000;
export const MAX_IN_LIST = 1000;
export const MAX_TABLES_PER_QUERY = 8;

/** Bracket depth outside string literals, quoted identifiers and comments; -1 position when within bounds. */
function deepestBracket(sql: string): { depth: number; position: number } {
  let depth = 0;
  let deepest = 0;
  let at = -1;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      i = end === -1 ? sql.length : end;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        at = i;
      }
    } else if (c === ')' || c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    }
  }
  return { depth: deepest, position: at };
}

/** False when the text must not reach the parser at all. */
export function checkText(sql: string, findings: Findings): boolean {
  if (sql.length > MAX_SQL_LENGTH) {
    findings.add('query-too-large', `the SQL is ${sql.length} characters; at most ${MAX_SQL_LENGTH}`, 0);
    return false;
  }
  if (sql.includes('\0')) {
    findings.add('syntax-error', 'the SQL contains a NUL character', sql.indexOf('\0'));
    return false;
  }
  const { depth, position } = deepestBracket(sql);
  if (depth > MAX_NESTING) {
    findings.add('query-too-deep', `brackets nest ${depth} deep; at most ${MAX_NESTING}`, position);
    return false;
  }
  return true;
}

/** False when the parsed tree is too large or too deep to plan safely. */
export function checkTree(statement: AstNode, findings: Findings): boolean {
  const walk = descendants(statement);
  for (let count = 1; !walk.next().done; count++) {
    if (count > MAX_NODES) {
      findings.add('query-too-large', `the query has more than ${MAX_NODES} syntax nodes`, 0);
      return false;
    }
  }
  return true;
}
