import { existsSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { joinSecAggRun, readVectorFile, RESULT_STEP, startSecAggRun, type SecAggProgress } from '../../joint/index.js';
import { ROUND_NAMES, type SecAggResult } from '../../secagg/index.js';
import { printJson, writeOrPrint, type CliIo } from '../io.js';
import { clientFor, withServerOptions, type CollabServerOptions } from '../server-options.js';
import { formatBytes } from './dataset.js';

// `malus secagg start` and `malus secagg join`: secure aggregation over the relay (docs/secagg.md).
// The receiver that starts a run aggregates it; each party joins with the run id it prints and
// its vector. The Malus server carries masked bytes only; the receivers learn the sum.

interface StartOptions extends CollabServerOptions {
  computation: string;
  input?: string;
  roundTimeout: string;
  joinTimeout: string;
  out?: string;
}

interface JoinOptions extends CollabServerOptions {
  round: string;
  input?: string;
  timeout: string;
  out?: string;
}

function seconds(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new MalusError('usage', `${option} ${text}: expected a positive number of seconds`);
  return value * 1000;
}

/** Refused before the run, not after: the sum must not be lost to a file that is in the way. */
function checkOut(out: string | undefined): void {
  if (out !== undefined && existsSync(out)) throw new MalusError('usage', `--out ${out}: it already exists`);
}

const roundName = (round: number): string => (round === RESULT_STEP ? 'result' : (ROUND_NAMES[round] ?? `round ${round}`));

/**
 * A bar over the five rounds and the result on a terminal; elsewhere a line per round. Refusals
 * are printed as they happen (after the bar, on a terminal, so they do not break it).
 */
function roundReporter(io: CliIo): { onProgress: (p: SecAggProgress) => void; stop: () => void } {
  const describe = (p: SecAggProgress): string | undefined => {
    switch (p.event) {
      case 'closed':
        return `round ${p.round} ${roundName(p.round)}: ${p.messages} of ${p.expected} parties`;
      case 'sent':
        return `round ${p.round} ${roundName(p.round)}: sent ${formatBytes(p.bytes)}`;
      case 'result':
        return `sum of ${p.contributors} contributors (${p.dropped} dropped)`;
      case 'accepted':
      case 'received':
      case 'relayed':
      case 'refused':
        return undefined;
    }
  };
  const refusal = (p: Extract<SecAggProgress, { event: 'refused' }>): string =>
    `round ${p.round} ${roundName(p.round)}: refused the message of ${p.party}, which leaves the run: ${p.error.describe()}\n`;
  const stream = io.errStream;
  if (stream?.isTTY === true) {
    const bar = new cliProgress.SingleBar({ stream, format: 'secagg [{bar}] {value}/{total} | {what}', hideCursor: true }, cliProgress.Presets.shades_classic);
    let started = false;
    const later: string[] = [];
    return {
      onProgress(p) {
        if (p.event === 'refused') later.push(refusal(p));
        const what = describe(p);
        if (what === undefined) return;
        const done = p.event === 'result' ? RESULT_STEP + 1 : p.round + 1;
        if (!started) {
          started = true;
          bar.start(RESULT_STEP + 1, done, { what });
        } else bar.update(done, { what });
      },
      stop() {
        if (started) bar.stop();
        for (const line of later) io.err(line);
      },
    };
  }
  return {
    onProgress(p) {
      if (p.event === 'refused') io.err(refusal(p));
      const what = describe(p);
      if (what !== undefined) io.err(`${what}\n`);
    },
    stop() {
      /* plain lines need no cleanup */
    },
  };
}

/** A stop signal (Ctrl-C) ends the command through the run's own abort path, with a clear error. */
function stopOn(io: CliIo, what: string): AbortController {
  const controller = new AbortController();
  void io.stopSignal().then((signal) => {
    controller.abort(new MalusError('conflict', `stopped by ${signal}: ${what}`));
  });
  return controller;
}

function resultJson(run: string, collaboration: string, computation: string, result: SecAggResult): Record<string, unknown> {
  return { run, collaboration, computation, contributors: result.contributors, dropped: result.dropped, sum: [...result.sum] };
}

/** Prints the sum (or writes it with --out) as JSON or as lines. */
function showResult(io: CliIo, options: { json?: boolean; out?: string }, document: Record<string, unknown>, result: SecAggResult): void {
  if (options.out !== undefined) writeOrPrint(io, options.out, `${JSON.stringify(document, null, 2)}\n`, 'sum');
  if (options.json === true) {
    printJson(io, document);
    return;
  }
  const list = (ids: readonly string[]): string => (ids.length === 0 ? '(none)' : ids.join(', '));
  io.out(`run ${String(document.run)}: the sum of ${result.contributors.length} contributors, ${result.dropped.length} dropped\n`);
  io.out(`  contributors: ${list(result.contributors)}\n`);
  io.out(`  dropped:      ${list(result.dropped)}\n`);
  if (options.out === undefined) io.out(`  sum: ${JSON.stringify([...result.sum])}\n`);
}

export function registerSecagg(program: Command, io: CliIo): void {
  const secagg = program
    .command('secagg')
    .description('secure aggregation over the relay: the receivers learn the sum of the parties\' vectors, nobody sees one vector');

  withServerOptions(
    secagg
      .command('start')
      .description('start a run as its aggregator (a receiver of the computation), print the run id for the parties, and wait for the sum')
      .requiredOption('--computation <name>', 'the secureAggregation entry of the active agreement')
      .option('--input <file>', 'your own vector, if you are also one of its parties: a JSON array of numbers, or {"vector": [...]}')
      .option('--round-timeout <seconds>', 'how long rounds 1 to 4 wait for the parties before going on without the missing ones', '30')
      .option('--join-timeout <seconds>', 'how long round 0 waits for the parties to join', '600')
      .option('--out <file>', 'write the sum as JSON to this new file'),
    { collab: true },
  ).action(async (options: StartOptions) => {
    const roundTimeoutMs = seconds(options.roundTimeout, '--round-timeout');
    const joinTimeoutMs = seconds(options.joinTimeout, '--join-timeout');
    checkOut(options.out);
    const input = options.input === undefined ? undefined : readVectorFile(options.input);
    const client = clientFor(io, options);
    const keys = client.keys;
    if (keys === undefined) throw new MalusError('internal', 'the client has no keys');
    const reporter = roundReporter(io);
    const controller = stopOn(io, 'the run ends as failed');
    let outcome;
    try {
      outcome = await startSecAggRun({
        client,
        collaborationId: options.collab,
        computation: options.computation,
        keys,
        ...(input === undefined ? {} : { input }),
        roundTimeoutMs,
        joinTimeoutMs,
        signal: controller.signal,
        onStarted: (run) => {
          io.err(`started run ${run.id} of ${run.computation}: the parties join with\n`);
          io.err(`  malus secagg join --server ${options.server} --key <keyfile> --collab ${options.collab} --round ${run.id} --input <vector.json>\n`);
        },
        onProgress: reporter.onProgress,
      });
    } finally {
      reporter.stop();
    }
    showResult(io, options, resultJson(outcome.run.id, options.collab, options.computation, outcome.result), outcome.result);
  });

  withServerOptions(
    secagg
      .command('join')
      .description('take part in a run: a party sends its masked vector, a receiver also waits for the sum')
      .requiredOption('--round <run-id>', 'the run id `malus secagg start` printed')
      .option('--input <file>', 'your vector (required of the parties): a JSON array of numbers, or {"vector": [...]}')
      .option('--timeout <seconds>', 'how long to wait for each message of the aggregator', '900')
      .option('--out <file>', 'a receiver: write the sum as JSON to this new file'),
    { collab: true },
  ).action(async (options: JoinOptions) => {
    const timeoutMs = seconds(options.timeout, '--timeout');
    checkOut(options.out);
    const input = options.input === undefined ? undefined : readVectorFile(options.input);
    const client = clientFor(io, options);
    const keys = client.keys;
    if (keys === undefined) throw new MalusError('internal', 'the client has no keys');
    const reporter = roundReporter(io);
    const controller = stopOn(io, `left run ${options.round}; the others go on without this party`);
    let outcome;
    try {
      outcome = await joinSecAggRun({
        client,
        collaborationId: options.collab,
        runId: options.round,
        keys,
        ...(input === undefined ? {} : { input }),
        timeoutMs,
        signal: controller.signal,
        onProgress: reporter.onProgress,
      });
    } finally {
      reporter.stop();
    }
    const { run, result } = outcome;
    if (result !== undefined) {
      showResult(io, options, resultJson(run.id, options.collab, run.computation, result), result);
      return;
    }
    if (options.out !== undefined) io.err(`no sum written to ${options.out}: ${keys.identity.id} is not a receiver of ${run.computation}\n`);
    const summary = run.summary?.kind === 'secagg' ? run.summary : undefined;
    const counts = { contributors: summary?.contributors ?? null, dropouts: summary?.dropouts ?? null };
    if (options.json === true) printJson(io, { run: run.id, collaboration: options.collab, computation: run.computation, state: run.state, ...counts });
    else io.out(`run ${run.id} ${run.state}: ${String(counts.contributors)} contributors, ${String(counts.dropouts)} dropouts; the sum went to the receivers\n`);
  });
}
