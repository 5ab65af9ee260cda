import type { Command } from 'commander';
import { idempotencyKeySchema } from '../../api/index.js';
import { submitQuery, waitForJob, type QueryJobBody } from '../../client/index.js';
import { MalusError, isMalusError, type ErrorCode } from '../../errors/index.js';
import { checkQuery, type CheckedQuery, type ParameterValue, type QueryPrivacy, type QueryRequest, type Violation } from '../../rules/index.js';
import { printJson, readTextFile, type CliIo } from '../io.js';
import { clientFor, collect as collectRepeated, withServerOptions } from '../server-options.js';
import { readAgreementFile } from './agreement.js';
import { describeJob } from './job.js';
import { openAndShow, withOpenOptions, type OpenOptions } from './result.js';

// `malus query …`: check a query offline against an agreement's rules, and run one on a server.

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
    .option('--param <name=value>', 'a template parameter (repeatable)', collectRepeated);
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

/** What a query under a privacy policy would spend, and the noise its answers get. */
export function describePrivacy(privacy: QueryPrivacy): string {
  const cost = Object.entries(privacy.cost).map(([unit, amount]) => `${unit} ${amount}`).join(', ');
  const lines = [`differential privacy (policy ${privacy.policy}, ${privacy.accounting} accounting): each run spends ${cost}`];
  for (const m of privacy.plan.measurements) lines.push(`  ${m.statistic}: ${m.mechanism} noise, scale ${m.scale} (one unit = ${m.unit})`);
  for (const { measurement, minimum } of privacy.plan.release) {
    lines.push(`  a group is released only when its noisy ${privacy.plan.measurements[measurement]?.statistic ?? ''} count is at least ${minimum}`);
  }
  lines.push(`  each identity adds at most ${privacy.plan.maxRowsPerIdentity} row(s) to each of at most ${privacy.plan.maxGroupsPerIdentity} group(s)`);
  return `${lines.join('\n')}\n`;
}

export function describeCheck(checked: CheckedQuery, sql: string): string {
  if (checked.allowed) {
    const privacy = checked.privacy === undefined ? '' : describePrivacy(checked.privacy);
    return `allowed: ${checked.kind ?? ''} query over ${checked.tables.join(', ')}\n${privacy}rewritten (what the enclave runs):\n  ${checked.rewritten}\n`;
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
      .option('--json', 'print {"allowed", "violations", "rewritten", "privacy"} as JSON'),
  ).action(async (options: QuerySource & { agreement: string; as?: string; json?: boolean }) => {
    const agreement = readAgreementFile(options.agreement);
    const request = queryRequestOf(options);
    if (options.as !== undefined && !/^[0-9a-f]{20}$/.test(options.as)) throw new MalusError('usage', '--as takes a party id (20 lower-case hex characters)');
    const checked = await checkQuery(agreement, request, options.as === undefined ? {} : { as: options.as });
    const sql = request.sql ?? agreement.templates?.find((t) => t.name === request.template)?.sql ?? '';
    if (options.json === true) printJson(io, { allowed: checked.allowed, violations: checked.violations, rewritten: checked.rewritten, ...(checked.privacy === undefined ? {} : { privacy: checked.privacy }) });
    else io.out(describeCheck(checked, sql));
    if (!checked.allowed) throw new MalusError('query-denied', `the query breaks the agreement's rules (${checked.violations.map((v) => v.code).join(', ')})`);
  });

  registerQueryRun(query, io);
}

/** `table=dataset` pairs of --dataset. */
function parseDatasets(pairs: readonly string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined || pairs.length === 0) return undefined;
  const datasets: Record<string, string> = {};
  for (const pair of pairs) {
    const [table, dataset, ...rest] = pair.split('=');
    if (table === undefined || dataset === undefined || table === '' || dataset === '' || rest.length > 0) {
      throw new MalusError('usage', `--dataset ${JSON.stringify(pair)}: expected TABLE=DATASET_ID`);
    }
    datasets[table] = dataset;
  }
  return datasets;
}

/** The code a failed job reported (`code: message`), when it is one of ours; else query-failed. */
function failureCode(error: string | null): ErrorCode {
  const code = /^([a-z][a-z0-9-]*): /.exec(error ?? '')?.[1];
  return code !== undefined && isKnownCode(code) ? code : 'query-failed';
}

const KNOWN_FAILURES: readonly ErrorCode[] = ['query-failed', 'query-timeout', 'result-too-large', 'query-denied', 'key-release-denied', 'agreement-mismatch', 'invalid-input', 'forbidden'];
const isKnownCode = (code: string): code is ErrorCode => (KNOWN_FAILURES as readonly string[]).includes(code);

type RunOptions = QuerySource & OpenOptions & { dataset?: string[]; wait?: boolean; timeout: string; idempotencyKey?: string };

async function runQuery(io: CliIo, options: RunOptions): Promise<void> {
  const request = queryRequestOf(options);
  const datasets = parseDatasets(options.dataset);
  if (!/^\d{1,5}$/.test(options.timeout)) throw new MalusError('usage', '--timeout takes whole seconds');
  const key = options.idempotencyKey;
  if (key !== undefined && !idempotencyKeySchema.safeParse(key).success) {
    throw new MalusError('usage', '--idempotency-key takes 16 to 128 characters of A-Z, a-z, 0-9 and ._~-');
  }
  const client = clientFor(io, options);
  const body = { ...request, ...(datasets === undefined ? {} : { datasets }), ...(key === undefined ? {} : { idempotencyKey: key }) } as QueryJobBody;
  let job;
  try {
    job = await submitQuery(client, options.collab, body);
  } catch (error) {
    // A denial: show each violation where it is in the SQL, then fail as the server did.
    if (isMalusError(error, 'query-denied') && error.violations.length > 0 && options.json !== true) {
      const sql = request.sql ?? '';
      io.out(`denied: ${error.violations.length} violation${error.violations.length === 1 ? '' : 's'}\n${error.violations.map((v) => describeViolation(v, sql)).join('\n')}\n`);
      throw new MalusError('query-denied', 'the server refused the query: it breaks the agreement\'s rules');
    }
    throw error;
  }
  const wait = options.wait === true || options.out !== undefined;
  if (!wait) {
    if (options.json === true) printJson(io, job);
    else io.out(`queued ${job.id}\n`);
    return;
  }
  const done = await waitForJob(client, options.collab, job.id, { timeoutMs: Number(options.timeout) * 1000, intervalMs: 250 });
  if (options.json === true && options.out === undefined) printJson(io, done);
  else io.err(describeJob(done));
  if (done.state === 'failed') throw new MalusError(failureCode(done.error), `job ${done.id} failed in the enclave: ${done.error ?? 'no reason given'}`);
  if (options.out !== undefined) await openAndShow(io, done.id, { ...options, json: false });
}

export function registerQueryRun(query: Command, io: CliIo): void {
  withServerOptions(
    withOpenOptions(
      withQuerySource(
        query
          .command('run')
          .description('submit a governed query (SQL or template) to run in the clean room; with --wait, follow it to the end')
          .option('--dataset <table=id>', 'run over this dataset of a table (repeatable; default: the newest complete one)', collectRepeated)
          .option('--wait', 'wait until the job ends and print how it ended')
          .option('--timeout <seconds>', 'how long --wait waits', '300')
          .option('--idempotency-key <key>', 'the same key on a rerun gets the job the first run queued, not a second one (16-128 of A-Z a-z 0-9 . _ ~ -; default: a fresh key, kept across this run\'s retries)')
          .option('--out <file>', 'wait, then open the result as a receiver and write its rows as CSV (never overwritten)'),
      ),
    ),
    { collab: true },
  ).action((options: RunOptions) => runQuery(io, options));
}
