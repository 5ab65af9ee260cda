import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { checkQuery, type CheckedQuery, type ParameterValue, type QueryRequest, type Violation } from '../../rules/index.js';
import { printJson, readTextFile, type CliIo } from '../io.js';
import { readAgreementFile } from './agreement.js';

// `malus query …`: check a query offline against an agreement's rules, and run one on a server.

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `k=v` pairs of --param into template parameters; the values stay text (the template's types decide). */
export function parseParams(pairs: readonly string[]): Record<string, ParameterValue> {
  const parameters: Record<string, ParameterValue> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new MalusError('usage', `--param ${JSON.stringify(pair)}: expected NAME=VALUE`);
    const name = pair.slice(0, at);
    if (Object.hasOwn(parameters, name)) throw new MalusError('usage', `--param ${name} is given twice`);
    parameters[name] = pair.slice(at + 1);
  }
  return parameters;
}

export interface QuerySource {
  sql?: string;
  sqlFile?: string;
  template?: string;
  param?: string[];
}

export function queryRequestOf(options: QuerySource): QueryRequest {
  const given = [options.sql, options.sqlFile, options.template].filter((v) => v !== undefined).length;
  if (given !== 1) throw new MalusError('usage', 'give exactly one of --sql, --sql-file or --template');
  if (options.template !== undefined) return { template: options.template, parameters: parseParams(options.param ?? []) };
  if ((options.param ?? []).length > 0) throw new MalusError('usage', '--param goes with --template');
  const sql = options.sql ?? readTextFile(options.sqlFile as string, 'SQL file');
  if (sql.trim() === '') throw new MalusError('usage', 'the SQL is empty');
  return { sql };
}

export function withQuerySource(command: Command): Command {
  return command
    .option('--sql <sql>', 'ad-hoc SQL (DuckDB dialect)')
    .option('--sql-file <file>', 'read the SQL from a file')
    .option('--template <name>', 'run an approved template of the agreement')
    .option('--param <name=value>', 'a template parameter (repeatable)', collect);
}

/** A violation with the line of SQL it points into and a caret under the spot. */
export function describeViolation(violation: Violation, sql: string): string {
  const head = `  ${violation.code}: ${violation.message}`;
  if (violation.position === null || sql === '') return head;
  const before = sql.slice(0, violation.position);
  const lineNumber = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const lineEnd = sql.indexOf('\n', violation.position);
  const line = sql.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
  const column = violation.position - lineStart;
  // Long lines are cut around the spot so the caret stays on screen.
  const from = Math.max(0, column - 50);
  const shown = `${from > 0 ? '…' : ''}${line.slice(from, from + 100)}`;
  return `${head}\n    at line ${lineNumber}, column ${column + 1}\n    | ${shown}\n    | ${' '.repeat(column - from + (from > 0 ? 1 : 0))}^`;
}

export function describeCheck(checked: CheckedQuery, sql: string): string {
  if (checked.allowed) {
    return `allowed: ${checked.kind ?? ''} query over ${checked.tables.join(', ')}\nrewritten (what the enclave runs):\n  ${checked.rewritten}\n`;
  }
  const lines = [`denied: ${checked.violations.length} violation${checked.violations.length === 1 ? '' : 's'}`];
  for (const v of checked.violations) lines.push(describeViolation(v, sql));
  return `${lines.join('\n')}\n`;
}

export function registerQuery(program: Command, io: CliIo): void {
  const query = program.command('query').description('check governed queries against an agreement, and run them in the clean room');

  withQuerySource(
    query
      .command('check')
      .description('check a query offline against an agreement file (a draft is enough): exit 0 allowed, 1 denied, 2 bad usage')
      .requiredOption('--agreement <file>', 'the agreement (YAML or JSON); signatures are not needed')
      .option('--as <party>', 'check as this party id (its roles count)')
      .option('--json', 'print {"allowed", "violations", "rewritten"} as JSON'),
  ).action(async (options: QuerySource & { agreement: string; as?: string; json?: boolean }) => {
    const agreement = readAgreementFile(options.agreement);
    const request = queryRequestOf(options);
    if (options.as !== undefined && !/^[0-9a-f]{20}$/.test(options.as)) throw new MalusError('usage', '--as takes a party id (20 lower-case hex characters)');
    const checked = await checkQuery(agreement, request, options.as === undefined ? {} : { as: options.as });
    const sql = request.sql ?? agreement.templates?.find((t) => t.name === request.template)?.sql ?? '';
    if (options.json === true) printJson(io, { allowed: checked.allowed, violations: checked.violations, rewritten: checked.rewritten });
    else io.out(describeCheck(checked, sql));
    if (!checked.allowed) throw new MalusError('query-denied', `the query breaks the agreement's rules (${checked.violations.map((v) => v.code).join(', ')})`);
  });
}
