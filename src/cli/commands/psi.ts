import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { MalusError } from '../../errors/index.js';
import { CSV_ENCODINGS, INPUT_FORMATS, type CsvEncoding, type InputFormat } from '../../ingest/index.js';
import { activeTerms, connectForPsi, listenForPsi, psiComputationFor, readPsiInput, receivePsi, sendPsi, type PsiOutcome, type PsiProgress } from '../../joint/index.js';
import { createPsiPool, type PsiMode, type SetEncoding } from '../../psi/index.js';
import { printJson, writeOrPrint, type CliIo } from '../io.js';
import { clientFor, withServerOptions, type CollabServerOptions } from '../server-options.js';
import { formatBytes } from './dataset.js';

// `malus psi run`: one side of a private set intersection (docs/psi.md). The receiver starts the
// run and learns what the mode gives; the sender answers it and learns only the receiver's set size.

const ROLES = ['sender', 'receiver'] as const;
const MODES = ['cardinality', 'intersection', 'sum'] as const;
const ENCODINGS = ['raw', 'gcs', 'bloom'] as const;
/** Below this many elements a worker pool costs more to start than it saves. */
const POOL_THRESHOLD = 20_000;

interface PsiRunOptions extends CollabServerOptions {
  role: (typeof ROLES)[number];
  input: string;
  column: string;
  format?: InputFormat;
  delimiter?: string;
  quote?: string;
  nullString?: string;
  encoding?: CsvEncoding;
  mode?: PsiMode;
  valueColumn?: string;
  valueDecimals?: string;
  computation?: string;
  run?: string;
  setEncoding?: SetEncoding;
  falsePositiveBits?: string;
  sumBits?: string;
  timeout: string;
  threads?: string;
  out?: string;
  listen?: string;
  connect?: string;
}

/** HOST:PORT, IPv6 in brackets. */
function hostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port > 65_535) throw new MalusError('usage', `--listen takes HOST:PORT, such as 0.0.0.0:7700 (not ${value})`);
  return { host: match[1] ?? match[2] ?? '', port };
}

function integer(value: string | undefined, option: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new MalusError('usage', `${option} takes an integer from ${min} to ${max} (not ${value})`);
  return n;
}

const PHASES: Record<PsiProgress['phase'], string> = {
  started: 'run started',
  blinded: 'set hashed and blinded',
  sent: 'sent',
  received: 'received',
  answered: 'answered',
  finished: 'done',
};

/** A bar over the protocol's messages on a terminal; a line per event elsewhere. */
function psiReporter(io: CliIo, total: number): { report: (p: PsiProgress) => void; stop: () => void } {
  const started = Date.now();
  const describe = (p: PsiProgress): string =>
    `${PHASES[p.phase]}${p.bytes === undefined ? '' : ` ${formatBytes(p.bytes)} (step ${p.step})`}, ${((Date.now() - started) / 1000).toFixed(1)} s`;
  const stream = io.errStream;
  if (stream?.isTTY === true) {
    const bar = new cliProgress.SingleBar({ stream, format: 'psi [{bar}] {value}/{total} | {what}', hideCursor: true }, cliProgress.Presets.shades_classic);
    let value = 0;
    bar.start(total, 0, { what: 'reading the input' });
    return {
      report: (p) => {
        if (value < 0) return;
        value = Math.min(total, value + 1);
        bar.update(value, { what: describe(p) });
      },
      stop: () => {
        if (value >= 0) bar.stop();
        value = -1;
      },
    };
  }
  return { report: (p) => { io.err(`psi: ${describe(p)}\n`); }, stop: () => undefined };
}

function describeResult(result: PsiOutcome, computation: string, runId: string, decimals: number): string {
  const sizes = `of your ${result.receiverCount.toLocaleString('en-US')}; the sender brought ${result.senderCount.toLocaleString('en-US')}`;
  const fp = result.falsePositiveRate === 0 ? 'exact' : `${result.setEncoding}, false-positive bound ${result.falsePositiveRate.toExponential(2)}`;
  const lines = [`${computation} (${result.mode}, run ${runId}): ${result.size.toLocaleString('en-US')} shared ${sizes} (${fp})`];
  if (result.mode === 'sum') lines.push(`  sum of the sender's values over them: ${formatScaled(result.sum, decimals)}`);
  return `${lines.join('\n')}\n`;
}

function formatScaled(value: bigint, decimals: number): string {
  if (decimals === 0) return value.toString();
  const text = value.toString().padStart(decimals + 1, '0');
  return `${text.slice(0, -decimals)}.${text.slice(-decimals)}`;
}

export function registerPsi(program: Command, io: CliIo): void {
  const psi = program.command('psi').description('private set intersection with another party, on cryptography alone (docs/psi.md)');
  withServerOptions(
    psi
      .command('run')
      .description('take part in a PSI the active agreement allows: the receiver starts the run, the sender answers it')
      .addOption(new Option('--role <role>', 'your side').choices(ROLES).makeOptionMandatory())
      .requiredOption('--input <file>', 'your set: CSV (with a header), Parquet or JSON lines')
      .requiredOption('--column <name>', 'the identifier column, normalized as the agreement says')
      .addOption(new Option('--format <format>', 'the input format (default: from the file extension)').choices(INPUT_FORMATS))
      .option('--delimiter <char>', 'CSV field delimiter (default ,)')
      .option('--quote <char>', 'CSV quote character (default ")')
      .option('--null-string <text>', 'the CSV text that means NULL')
      .addOption(new Option('--encoding <name>', 'CSV text encoding (default utf-8)').choices(CSV_ENCODINGS))
      .addOption(new Option('--mode <mode>', 'receiver: what to learn (default cardinality)').choices(MODES))
      .option('--value-column <name>', 'sender, sum mode: the column of the values to add')
      .option('--value-decimals <n>', 'the decimals the values keep (2 for cents; default 0)')
      .option('--computation <name>', "the agreement's PSI (needed when you take part in several)")
      .option('--run <id>', 'sender: the run to answer (default: the newest open one)')
      .addOption(new Option('--set-encoding <encoding>', 'receiver: how the sender sends its set (default raw)').choices(ENCODINGS))
      .option('--false-positive-bits <n>', 'receiver, gcs and bloom: a false match has probability at most 2^-n (default 30)')
      .option('--sum-bits <n>', 'receiver, sum mode: the sum is below 2^n (default 32)')
      .option('--timeout <seconds>', 'how long to wait for the other party at each step', '600')
      .option('--threads <n>', 'worker threads for the group operations (default: one per core for large sets)')
      .option('--out <file>', 'receiver: write the result as JSON (intersection: the shared identifiers) to a new file')
      .option('--listen <host:port>', 'sender: take the messages directly from the receiver on this address instead of through the relay')
      .option('--connect <url>', 'receiver: send the messages directly to the sender listening here (its --listen address)'),
    { collab: true },
  ).action(async (options: PsiRunOptions) => {
    const client = clientFor(io, options);
    const partyId = client.keys?.identity.id;
    if (partyId === undefined) throw new MalusError('usage', 'psi run needs --key KEYFILE');
    const role = options.role;
    if (role === 'sender' && (options.mode !== undefined || options.setEncoding !== undefined || options.out !== undefined)) {
      throw new MalusError('usage', '--mode, --set-encoding and --out are the receiver’s: the sender answers the run as it was started');
    }
    if (options.listen !== undefined && role !== 'sender') throw new MalusError('usage', '--listen is the sender’s; the receiver uses --connect');
    if (options.connect !== undefined && role !== 'receiver') throw new MalusError('usage', '--connect is the receiver’s; the sender uses --listen');
    const mode: PsiMode = options.mode ?? 'cardinality';
    if (role === 'receiver' && options.valueColumn !== undefined) throw new MalusError('usage', '--value-column is the sender’s: the receiver brings identifiers only');
    const timeoutMs = (integer(options.timeout, '--timeout', 1, 86_400) ?? 600) * 1000;
    const decimals = integer(options.valueDecimals, '--value-decimals', 0, 18) ?? 0;
    const terms = await activeTerms(client, options.collab);
    const computation = psiComputationFor(terms, partyId, role, options.computation);
    const input = await readPsiInput({
      input: options.input,
      column: options.column,
      ...(options.format === undefined ? {} : { format: options.format }),
      dialect: {
        ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
        ...(options.quote === undefined ? {} : { quote: options.quote }),
        ...(options.nullString === undefined ? {} : { nullString: options.nullString }),
        ...(options.encoding === undefined ? {} : { encoding: options.encoding }),
      },
      ...(options.valueColumn === undefined ? {} : { valueColumn: options.valueColumn, valueDecimals: decimals }),
      ...(computation.normalize === undefined ? {} : { normalize: computation.normalize }),
    });
    const keys = client.keys;
    const listening = options.listen === undefined ? undefined : hostPort(options.listen);
    const listener = listening === undefined ? undefined : await listenForPsi(listening.host, listening.port);
    if (listener !== undefined) io.err(`listening for the receiver on ${listener.url}\n`);
    const threads = integer(options.threads, '--threads', 1, 64) ?? (input.items.length >= POOL_THRESHOLD ? undefined : 0);
    const pool = threads === 0 ? undefined : await createPsiPool(threads);
    const progress = psiReporter(io, role === 'receiver' ? (mode === 'sum' ? 7 : 5) : mode === 'sum' ? 5 : 4);
    const common = {
      client,
      collaborationId: options.collab,
      computation: computation.name,
      timeoutMs,
      onProgress: progress.report,
      ...(pool === undefined ? {} : { executor: pool }),
    };
    try {
      if (role === 'sender') {
        const sent = await sendPsi({
          ...common,
          items: input.items,
          ...(input.values === undefined ? {} : { values: input.values }),
          ...(options.run === undefined ? {} : { runId: options.run }),
          ...(listener === undefined || keys === undefined ? {} : { link: (run, c) => listener.linkFor(run, terms.agreement, keys, c.receiver) }),
        });
        progress.stop();
        if (options.json === true) printJson(io, { run: sent.run.id, computation: computation.name, mode: sent.mode, sent: new Set(input.items).size, receiverSetSize: sent.receiverCount });
        else io.out(`answered ${computation.name} (${sent.mode}, run ${sent.run.id}): the receiver brought ${sent.receiverCount.toLocaleString('en-US')} elements\n`);
        return;
      }
      const falsePositiveBits = integer(options.falsePositiveBits, '--false-positive-bits', 0, 64);
      const sumBits = integer(options.sumBits, '--sum-bits', 1, 64);
      const { run, result } = await receivePsi({
        ...common,
        mode,
        items: input.items,
        ...(options.setEncoding === undefined ? {} : { setEncoding: options.setEncoding }),
        ...(falsePositiveBits === undefined ? {} : { falsePositiveBits }),
        ...(sumBits === undefined ? {} : { sumBits }),
        onStarted: (started) => {
          io.err(`run ${started.id} started: the sender answers it with malus psi run --role sender\n`);
        },
        ...(options.connect === undefined || keys === undefined ? {} : { link: (run, c) => connectForPsi(options.connect ?? '', run, terms.agreement, keys, c.sender) }),
      });
      progress.stop();
      const view = {
        run: run.id,
        computation: computation.name,
        mode: result.mode,
        size: result.size,
        receiverSetSize: result.receiverCount,
        senderSetSize: result.senderCount,
        setEncoding: result.setEncoding,
        falsePositiveRate: result.falsePositiveRate,
        bytes: result.bytes,
        ...(result.mode === 'sum' ? { sum: formatScaled(result.sum, decimals) } : {}),
        ...(result.mode === 'intersection' ? { items: [...result.items].map(String) } : {}),
      };
      if (options.out !== undefined) writeOrPrint(io, options.out, `${JSON.stringify(view, null, 2)}\n`, 'result', { mode: 0o600 });
      if (options.json === true) printJson(io, view);
      else io.out(describeResult(result, computation.name, run.id, decimals));
    } finally {
      progress.stop();
      await pool?.close();
      await listener?.close();
    }
  });
}
