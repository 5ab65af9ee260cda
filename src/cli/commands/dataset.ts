import { basename, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { agreementHash } from '../../agreement/index.js';
import { abandonUpload, getDataset, listDatasets, remoteAgreementSource, uploadDataset, type DatasetView } from '../../client/index.js';
import { MalusError } from '../../errors/index.js';
import { printJson, type CliIo } from '../io.js';
import { clientFor, collect, simRootFingerprints, withServerOptions as withCommonServerOptions, type CollabServerOptions } from '../server-options.js';
import { readAgreementFile } from './agreement.js';
import { registerDatasetPrepare } from './dataset-prepare.js';

// `malus dataset`: prepare (./dataset-prepare.ts), upload and inspect encrypted datasets. Upload
// checks the folder against the active agreement it recomputes itself, registers the data key only
// with a key-release service whose attestation satisfies that agreement, and resumes where the
// server stopped.

type ServerOptions = CollabServerOptions;

const withServerOptions = (command: Command): Command => withCommonServerOptions(command, { collab: true });

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit] ?? ''}`;
}

function describeDataset(view: DatasetView): string {
  return [
    `${view.dataset}: table ${view.table}, owner ${view.owner}`,
    `  rows:           ${view.rows}`,
    `  size:           ${formatBytes(view.bytes)} (${view.bytes} bytes)`,
    `  ciphertext:     ${view.ciphertext}`,
    `  header hash:    ${view.headerHash}`,
    `  schema hash:    ${view.schemaHash}`,
    `  agreement:      ${view.agreementHash}`,
    `  key commitment: ${view.keyCommitment}`,
    `  key registered: ${view.keyRegistered ? 'yes' : 'no'}`,
    `  uploaded:       ${view.createdAt}`,
    '',
  ].join('\n');
}

interface Progress {
  update(sent: number, total: number): void;
  stop(): void;
}

/**
 * A progress bar with bytes, rate and time left on a terminal; elsewhere (a pipe, a log file) a plain
 * line at most every 10 % with bytes, rate and time left. The first update is where the upload starts (a resumed one says so).
 */
function progressReporter(io: CliIo, label: string): Progress {
  const started = Date.now();
  let first: number | undefined;
  const rate = (sent: number): string => {
    const seconds = (Date.now() - started) / 1000;
    return seconds <= 0 || first === undefined ? '-' : `${formatBytes((sent - first) / seconds)}/s`;
  };
  /** The time left at the rate so far, for the plain lines (the bar computes its own). */
  const left = (sent: number, total: number): string => {
    const seconds = (Date.now() - started) / 1000;
    if (first === undefined || sent >= total) return '0 s left';
    if (seconds <= 0 || sent <= first) return 'time left unknown';
    const remaining = ((total - sent) * seconds) / (sent - first);
    return remaining < 100 ? `${Math.ceil(remaining)} s left` : `${Math.ceil(remaining / 60)} min left`;
  };
  const resuming = (sent: number, total: number): void => {
    if (sent > 0) io.err(`resuming ${label} at ${formatBytes(sent)} of ${formatBytes(total)}\n`);
  };
  const stream = io.errStream;
  if (stream?.isTTY === true) {
    const bar = new cliProgress.SingleBar(
      { stream, format: `${label} [{bar}] {percentage}% | {sent} of {size} | {rate} | {eta_formatted} left`, hideCursor: true, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    return {
      update(sent, total) {
        const payload = { sent: formatBytes(sent), size: formatBytes(total), rate: rate(sent) };
        if (first === undefined) {
          first = sent;
          resuming(sent, total);
          bar.start(total, sent, payload);
        } else bar.update(sent, payload);
      },
      stop() {
        if (first !== undefined) bar.stop();
      },
    };
  }
  let lastDecile = -1;
  return {
    update(sent, total) {
      if (first === undefined) {
        first = sent;
        resuming(sent, total);
      }
      const decile = Math.floor((sent / total) * 10);
      if (decile <= lastDecile) return;
      lastDecile = decile;
      io.err(`${label}: ${decile * 10}% (${formatBytes(sent)} of ${formatBytes(total)}, ${rate(sent)}, ${left(sent, total)})\n`);
    },
    stop() {
      /* plain lines need no cleanup */
    },
  };
}

async function simRootsOf(options: { simRoot?: string[]; simCa?: string }): Promise<string[] | undefined> {
  const roots = simRootFingerprints(options.simRoot) ?? [];
  if (options.simCa !== undefined) {
    const [{ readSimCa }, { simCaFingerprint }] = await Promise.all([import('../../engine/index.js'), import('../../attestation/index.js')]);
    roots.push(simCaFingerprint(readSimCa(options.simCa)));
  }
  return roots.length === 0 ? undefined : roots;
}

export function registerDataset(program: Command, io: CliIo): void {
  const dataset = program.command('dataset').description('prepare, upload and inspect encrypted datasets');
  registerDatasetPrepare(dataset, io);

  withServerOptions(
    dataset
      .command('upload')
      .description("upload a prepared dataset folder: the data key goes only to an attested key-release service, then the encrypted file (resumes if interrupted)")
      .argument('<dir>', 'the folder `malus dataset prepare` wrote (dataset.mds, manifest.json, data-key.json)')
      .option('--agreement <file>', 'upload only if the active agreement is exactly this one')
      .option('--sim-root <sha256>', "trust sim evidence only under this development CA fingerprint (repeatable; default: the service's own, on first use)", collect)
      .option('--sim-ca <file>', "trust sim evidence under the CA of this file (the server's DATA_DIR/sim-ca.json)"),
  ).action(async (dir: string, options: ServerOptions & { agreement?: string; simRoot?: string[]; simCa?: string }) => {
    const client = clientFor(io, options);
    const simRoots = await simRootsOf(options);
    // The active agreement recomputed here from the signed versions: the server's word is not enough.
    const active = await remoteAgreementSource(client).active(options.collab, new Date());
    if (active === undefined) throw new MalusError('conflict', `collaboration ${options.collab} is not found or has no active agreement`);
    if (options.agreement !== undefined) {
      const expected = agreementHash(readAgreementFile(options.agreement));
      if (expected !== active.hash) {
        throw new MalusError('agreement-mismatch', `the active agreement of ${options.collab} has hash ${active.hash}, not ${expected}; not uploading`);
      }
    }
    const started = Date.now();
    const progress = progressReporter(io, basename(resolve(dir)));
    let from: number | undefined;
    let view: DatasetView;
    try {
      view = await uploadDataset(client, {
        dir,
        agreement: active.agreement,
        lineage: active.lineage,
        ...(simRoots === undefined ? {} : { simRoots }),
        onProgress: (sent, total) => {
          from ??= sent;
          progress.update(sent, total);
        },
      });
    } finally {
      progress.stop();
    }
    if (options.json === true) {
      printJson(io, view);
      return;
    }
    const what = `${view.dataset} (table ${view.table}, ${view.rows} rows, ${formatBytes(view.bytes)}, ${view.ciphertext})`;
    if (from === undefined) io.out(`already uploaded: ${what}\n`);
    else {
      const seconds = (Date.now() - started) / 1000;
      const resumed = from === 0 ? '' : `, resumed at ${formatBytes(from)}`;
      io.out(`uploaded ${what}: ${formatBytes(view.bytes - from)} sent in ${seconds.toFixed(1)} s${resumed}\n`);
    }
  });

  withServerOptions(
    dataset
      .command('abandon')
      .description('give up your unfinished upload of a dataset: the server drops its bytes and its claim on the disk (the id keeps its registered data key)')
      .argument('<dataset>', 'the dataset id'),
  ).action(async (id: string, options: ServerOptions) => {
    await abandonUpload(clientFor(io, options), options.collab, id);
    if (options.json === true) printJson(io, { dataset: id, abandoned: true });
    else io.out(`abandoned the upload of ${id}\n`);
  });

  withServerOptions(dataset.command('list').description("list a collaboration's uploaded datasets: owners, sizes, row counts and hashes")).action(
    async (options: ServerOptions) => {
      const views = await listDatasets(clientFor(io, options), options.collab);
      if (options.json === true) printJson(io, views);
      else if (views.length === 0) io.out('no datasets\n');
      else {
        io.out('dataset\ttable\towner\trows\tsize\tkey\tciphertext\n');
        for (const v of views) {
          io.out(`${v.dataset}\t${v.table}\t${v.owner}\t${v.rows}\t${formatBytes(v.bytes)}\t${v.keyRegistered ? 'registered' : 'missing'}\t${v.ciphertext}\n`);
        }
      }
    },
  );

  withServerOptions(dataset.command('show').description('show one uploaded dataset with its hashes').argument('<dataset>', 'the dataset id')).action(
    async (id: string, options: ServerOptions) => {
      const view = await getDataset(clientFor(io, options), options.collab, id);
      if (options.json === true) printJson(io, view);
      else io.out(describeDataset(view));
    },
  );
}

