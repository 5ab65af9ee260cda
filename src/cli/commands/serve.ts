import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import type { CliIo } from '../io.js';

export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port > 65535) {
    throw new MalusError('usage', `--listen must be HOST:PORT such as 127.0.0.1:8787, not ${JSON.stringify(text)}`);
  }
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port };
}

function positiveInteger(text: string, flag: string): number {
  const n = Number(text);
  if (!/^[1-9]\d*$/.test(text) || !Number.isSafeInteger(n)) throw new MalusError('usage', `${flag} takes a whole number of at least 1 (not ${JSON.stringify(text)})`);
  return n;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the Malus server: HTTP API, store, transparency log, key release and the sim enclave worker')
    .requiredOption('--data-dir <dir>', 'the data directory (created with mode 0700 if missing)')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8787')
    .option('--public-url <url>', 'the URL clients use, when behind a proxy (signatures cover the full URI)')
    .option('--log-origin <origin>', "the transparency log's origin line (default: derived from its key; fixed once chosen)")
    .option('--public-entries', 'serve the log entry bundles (tile/entries) to anyone, not only hash tiles')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--no-worker', 'do not run the sim enclave worker in this process (run `malus enclave` instead)')
    .option('--max-dataset-bytes <n>', 'the largest dataset ciphertext an upload may declare, in bytes (default 2^40, 1 TiB)')
    .option('--max-pending-uploads <n>', 'uploads in progress one party may have in one collaboration (default 8)')
    .option('--job-lease <seconds>', "how long a running job's enclave worker may go unheard (it beats every 30 s) before the job fails; at least 90", '300')
    .action(async (options: { dataDir: string; listen: string; publicUrl?: string; logOrigin?: string; publicEntries?: boolean; logLevel: string; worker: boolean; maxDatasetBytes?: string; maxPendingUploads?: string; jobLease: string }) => {
      const { host, port } = parseListen(options.listen);
      if (!LOG_LEVELS.includes(options.logLevel)) {
        throw new MalusError('usage', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
      }
      // Loaded only here: the server and its dependencies are not needed by offline commands.
      const { DEFAULT_UPLOAD_LIMITS, startServer } = await import('../../server/index.js');
      const leaseSeconds = positiveInteger(options.jobLease, '--job-lease');
      // Two missed beats must not fail a job that is still running.
      if (leaseSeconds < 90) throw new MalusError('usage', `--job-lease takes at least 90 seconds: two missed beats of the worker's 30 s must not end a job (not ${leaseSeconds})`);
      const uploadLimits = {
        maxDatasetBytes: options.maxDatasetBytes === undefined ? DEFAULT_UPLOAD_LIMITS.maxDatasetBytes : positiveInteger(options.maxDatasetBytes, '--max-dataset-bytes'),
        maxPendingPerParty: options.maxPendingUploads === undefined ? DEFAULT_UPLOAD_LIMITS.maxPendingPerParty : positiveInteger(options.maxPendingUploads, '--max-pending-uploads'),
      };
      const server = await startServer({
        dataDir: options.dataDir,
        host,
        port,
        logger: {
          level: options.logLevel,
          // Signatures are not secrets, but headers are dropped wholesale: nothing sensitive by accident.
          redact: { paths: ['req.headers', 'res.headers'], remove: true },
        },
        ...(options.publicUrl === undefined ? {} : { publicBaseUrl: options.publicUrl }),
        ...(options.logOrigin === undefined ? {} : { logOrigin: options.logOrigin }),
        publicEntries: options.publicEntries === true,
        worker: options.worker,
        uploadLimits,
        jobLeaseMs: leaseSeconds * 1000,
      });
      io.err(`malus serving on ${server.url} (data in ${options.dataDir})\n`);
      io.err(`transparency log ${server.log.origin}, ${server.log.tree.size} entries, key ${server.log.verifierKey}\n`);
      io.err(
        server.worker === undefined
          ? 'no in-process enclave worker (--no-worker)\n'
          : `sim enclave worker running, measurement ${server.simMeasurement} (SIMULATED TEE: NOT CONFIDENTIAL)\n`,
      );
      const signal = await io.stopSignal();
      io.err(`received ${signal}; finishing in-flight requests\n`);
      await server.close();
      io.err('stopped\n');
    });
}
