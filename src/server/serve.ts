import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import { MalusError } from '../errors/index.js';
import { createSimAttester, simCaFingerprint, simPlatformAttester } from '../attestation/index.js';
import { createClient, httpWorkerPort } from '../client/index.js';
import { fromHex, generateEncryptionKeyPair } from '../crypto/index.js';
import { createWorkerIdentity, loadOrCreateSimCa, measureBuild, startWorker, type RunningWorker } from '../engine/index.js';
import { aesKeyWrapper, loadOrCreateMasterKey } from '../keyrelease/index.js';
import { openSqliteStore, type Store } from '../store/index.js';
import { createConfidentialServices } from './confidential.js';
import { buildApp } from './app.js';
import { loadOrCreateLogKey } from './log-key.js';
import { openTransparencyLog, type TransparencyLog } from './transparency.js';

// `malus serve`: the data directory (docs/data-directory.md), the store in it, and a listening app.

export interface StartServerOptions {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly logger?: FastifyServerOptions['logger'];
  readonly loggerInstance?: FastifyBaseLogger;
  readonly publicBaseUrl?: string;
  readonly now?: () => Date;
  /** The log's origin line; fixed when the data directory's log key is made. */
  readonly logOrigin?: string;
  readonly publicEntries?: boolean;
  /** Run the sim enclave worker in this process (default true). */
  readonly worker?: boolean;
  /** The measurement the in-process sim worker and key-release service report (default: the build's). */
  readonly simMeasurement?: string;
  readonly workerPollIntervalMs?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly log: TransparencyLog;
  /** The sim platform's development CA certificate (DER): the root of every sim evidence this server makes. */
  readonly simRoot: Uint8Array;
  /** The measurement the in-process sim worker reports. */
  readonly simMeasurement: string;
  /** The in-process worker, when one runs. */
  readonly worker?: RunningWorker;
  /** Stops accepting, lets in-flight requests finish, then closes the store. */
  close(): Promise<void>;
}

/** Creates the data directory (owner-only) if needed. */
export function prepareDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot use data directory ${dataDir}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function listeningUrl(app: FastifyInstance, options: Pick<StartServerOptions, 'host' | 'port'>): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `http://${host}:${port}`;
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  prepareDataDir(options.dataDir);
  const databasePath = join(options.dataDir, 'malus.db');
  // Create the database owner-only; SQLite gives its -wal and -shm files the same mode.
  closeSync(openSync(databasePath, 'a', 0o600));
  chmodSync(databasePath, 0o600);
  const now = options.now ?? (() => new Date());
  // Before the store opens, so that a failure here leaves nothing open.
  const simCa = await loadOrCreateSimCa(options.dataDir, now());
  const simMeasurement = options.simMeasurement ?? measureBuild().measurement;
  const measurementBytes = fromHex(simMeasurement);
  if (measurementBytes?.length !== 48) throw new MalusError('usage', 'a sim measurement is 96 lower-case hex characters (SHA-384)');
  const store = openSqliteStore({ path: databasePath });
  let app: FastifyInstance | undefined;
  let log: TransparencyLog;
  let worker: RunningWorker | undefined;
  try {
    // Refuses to serve a log that does not reproduce its own latest checkpoint.
    log = await openTransparencyLog({
      store,
      key: loadOrCreateLogKey(options.dataDir, options.logOrigin, now()),
      now,
      onError: (error) => {
        app?.log.error({ err: error }, 'checkpoint failed');
      },
    });
    const trust = { simRoots: [simCaFingerprint(simCa)] };
    const confidential = createConfidentialServices({
      store,
      log,
      now,
      wrapper: aesKeyWrapper(loadOrCreateMasterKey(options.dataDir)),
      // The service's HPKE key lives in memory only; providers seal to it after checking its evidence.
      encryption: generateEncryptionKeyPair(),
      attester: simPlatformAttester(await createSimAttester(simCa, now()), measurementBytes, { ca: simCa }),
      trust,
      simRoot: simCa.certificate,
    });
    app = await buildApp({
      publicEntries: options.publicEntries ?? false,
      context: {
        store,
        now,
        log,
        confidential,
        ...(options.publicBaseUrl === undefined ? {} : { publicBaseUrl: options.publicBaseUrl }),
      },
      logger: options.logger ?? false,
      ...(options.loggerInstance === undefined ? {} : { loggerInstance: options.loggerInstance }),
    });
    await app.listen({ host: options.host, port: options.port });
    app.log.info({ origin: log.origin, size: log.tree.size }, 'transparency log verified');
    log.start();
    if (options.worker !== false) {
      const identity = createWorkerIdentity();
      const url = listeningUrl(app, options);
      worker = await startWorker(
        {
          identity,
          attester: simPlatformAttester(await createSimAttester(simCa, now()), measurementBytes, { ca: simCa }),
          // Behind a proxy, signatures cover the public URI, so the worker goes the way clients do.
          port: httpWorkerPort(createClient({ server: options.publicBaseUrl ?? url, keys: identity.keys })),
          now,
          log: (level, message, details) => {
            app?.log[level](details ?? {}, `enclave worker: ${message}`);
          },
        },
        options.workerPollIntervalMs === undefined ? {} : { pollIntervalMs: options.workerPollIntervalMs },
      );
    }
  } catch (error) {
    await worker?.stop();
    await app?.close();
    await store.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new MalusError('usage', `cannot listen on ${options.host}:${options.port}: ${code}`);
    }
    throw error;
  }
  let closing: Promise<void> | undefined;
  const running = worker;
  return {
    url: listeningUrl(app, options),
    app,
    store,
    log,
    simRoot: simCa.certificate,
    simMeasurement,
    ...(running === undefined ? {} : { worker: running }),
    close: () => {
      closing ??= (async () => {
        // The worker stops polling at once; requests in flight finish while the app closes.
        const stopping = running?.stop();
        await app.close();
        await stopping;
        await log.stop();
        await store.close();
      })();
      return closing;
    },
  };
}
