import type { Command } from 'commander';
import { openJobResult, type OpenedResult } from '../../client/index.js';
import type { PrivacyReport, ResultRows } from '../../engine/index.js';
import { printJson, writeOrPrint, type CliIo } from '../io.js';
import { clientFor, collect, simRootFingerprints, withServerOptions, type CollabServerOptions } from '../server-options.js';
import { readAgreementFile } from './agreement.js';
import { WITHHELD_NOTE, checkJobId } from './job.js';

// `malus result open`: a receiver verifies a query result's receipt, then decrypts its rows.

type Cell = ResultRows['rows'][number][number];

function csvCell(value: Cell): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** RFC 4180 CSV with a header row; NULL is an empty field. */
export function resultCsv(result: ResultRows): string {
  const lines = [result.columns.map((c) => csvCell(c.name)).join(','), ...result.rows.map((row) => row.map(csvCell).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

/** A plain-text table of the first rows, for a terminal. */
export function resultTable(result: ResultRows, maxRows = 20): string {
  const shown = result.rows.slice(0, maxRows).map((row) => row.map((v) => (v === null ? 'NULL' : String(v))));
  const header = result.columns.map((c) => c.name);
  const widths = header.map((h, i) => Math.min(40, Math.max(h.length, ...shown.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.slice(0, 40).padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const rest = result.rows.length - shown.length;
  return `${[line(header), line(widths.map((w) => '-'.repeat(w))), ...shown.map(line), ...(rest > 0 ? [`… ${rest} more rows`] : [])].join('\n')}\n`;
}

/** What was checked before the rows were shown, one line each; `note: false` when describeJob already said WITHHELD_NOTE. */
export function describeVerified(opened: OpenedResult, { note = true }: { note?: boolean } = {}): string {
  const { verdict, trusted } = opened;
  const lines = [
    `receipt verified: entry ${verdict.index} in checkpoint ${verdict.checkpoint.origin} size ${verdict.checkpoint.size}${trusted.logKeyFromServer ? ' (log key from the server: pin it with --log-key)' : ''}`,
    `  statement signed by enclave ${verdict.statement.enclave.signingKey}, the key its evidence binds`,
    `  evidence: ${verdict.evidence.platform} measurement ${verdict.evidence.measurement}${trusted.simRootsFromServer && verdict.simulated ? ' (sim root from the server: pin it with --sim-root)' : ''}`,
    `  agreement ${verdict.agreement.hash} (${verdict.agreement.source === 'given' ? 'the file you gave' : 'embedded in the receipt'}) allows that enclave`,
    `  result ${opened.rows.rows.length} rows; hash matches the signed statement`,
  ];
  if (note) lines.push(`  (${WITHHELD_NOTE})`);
  if (verdict.simulated) lines.push('  !!! SIMULATED TEE: NOT CONFIDENTIAL !!!');
  return `${lines.join('\n')}\n`;
}

export interface OpenOptions extends CollabServerOptions {
  out?: string;
  logKey?: string;
  simRoot?: string[];
  agreement?: string;
}

/** AVG rows whose intervals are printed; the rest are in the result's privacy report. */
const SHOWN_INTERVALS = 5;
const approximate = (value: number): string => String(Number(value.toPrecision(6)));

/** The privacy report of a result: what it cost and how far each noisy column may be from the exact bounded value. */
export function describeNoise(privacy: PrivacyReport): string {
  const cost = Object.entries(privacy.cost).map(([unit, amount]) => `${unit} ${amount}`).join(', ');
  const lines = [`differential privacy: this result spent ${cost} (${privacy.accounting} accounting)`];
  for (const c of privacy.columns) {
    if (c.of !== undefined) {
      lines.push(`  ${c.column}: noisy sum (${c.of.sum.mechanism}, scale ${c.of.sum.scale}, ±${c.of.sum.ci95} at 95%) over noisy count (scale ${c.of.count.scale}, ±${c.of.count.ci95})`);
      const intervals = c.rows95 ?? [];
      const shown = intervals.slice(0, SHOWN_INTERVALS).map((interval, i) => `row ${i + 1} ${interval === null ? 'none' : `[${approximate(interval[0])}, ${approximate(interval[1])}]`}`);
      if (intervals.length > 0) lines.push(`    95% interval of each row's average: ${shown.join('; ')}${intervals.length > SHOWN_INTERVALS ? `; … (${intervals.length} rows in all, in the result's privacy report)` : ''}`);
    } else {
      lines.push(`  ${c.column}: ${c.mechanism} noise of scale ${c.scale ?? '?'}, ±${c.ci95 ?? '?'} at 95%`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function withOpenOptions(command: Command): Command {
  return command
    .option('--log-key <vkey>', "pin the log's note verifier key (default: the server's, printed)")
    .option('--sim-root <sha256>', "trust sim evidence only under this development CA fingerprint (repeatable; default: the server's)", collect)
    .option('--agreement <file>', 'check against this agreement (default: the one the receipt embeds, checked against the signed hash)');
}

/**
 * Opens and prints (or writes) a result, with what was verified on standard error. WITHHELD_NOTE
 * only with `note` (result open): `query run` has printed describeJob, which says it, just before.
 */
export async function openAndShow(io: CliIo, id: string, options: OpenOptions, { note = false }: { note?: boolean } = {}): Promise<void> {
  const simRoots = simRootFingerprints(options.simRoot);
  const opened = await openJobResult(clientFor(io, options), options.collab, checkJobId(id), {
    ...(options.logKey === undefined ? {} : { logKey: options.logKey }),
    ...(simRoots === undefined ? {} : { simRoots }),
    ...(options.agreement === undefined ? {} : { agreement: readAgreementFile(options.agreement) }),
  });
  const { privacy } = opened.rows;
  if (options.json === true) {
    printJson(io, { columns: opened.rows.columns, rows: opened.rows.rows, ...(privacy === undefined ? {} : { privacy }), verdict: opened.verdict });
    return;
  }
  io.err(describeVerified(opened, { note }));
  if (privacy !== undefined) io.err(describeNoise(privacy));
  if (options.out === undefined) io.out(resultTable(opened.rows, Number.POSITIVE_INFINITY));
  else writeOrPrint(io, options.out, resultCsv(opened.rows), 'result');
}

export function registerResult(program: Command, io: CliIo): void {
  const result = program.command('result').description('open query results sealed to you');
  withServerOptions(
    withOpenOptions(
      result
        .command('open')
        .description('verify a result\'s receipt (log, enclave signature, evidence, agreement policy), then decrypt its rows as a receiver')
        .argument('<job>', 'the job id')
        .option('--out <file>', 'write the rows as CSV here (never overwritten) instead of printing a table'),
    ),
    { collab: true },
  ).action((id: string, options: OpenOptions) => openAndShow(io, id, options, { note: true }));
}
