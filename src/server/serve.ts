import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import { createSimAttester, simCaFingerprint, simPlatformAttester } from '../attestation/index.js';
import { createClient, httpWorkerPort } from '../client/index.js';
import { generateEncryptionKeyPair } from '../crypto/index.js';
import { createWorkerIdentity, startWorker, type RunningWorker } from '../engine/index.js';
import { aesKeyWrapper, loadOrCreateMasterKey } from '../keyrelease/index.js';
import { lockDatabaseFile, openSqliteStore, type Store } from '../store/index.js';
import { createConfidentialServices } from './confidential.js';
import { buildApp } from './app.js';
import type { UploadLimits } from './context.js';
import { loadOrCreateLogKey } from './log-key.js';
import { listenError, listeningUrl, prepareDatabaseFile, simPlatformOf } from './startup.js';
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
  /**
   * How long close() lets the in-process worker finish and report its current job before the
   * server stops answering (default WORKER_STOP_GRACE_MS).
   */
  readonly workerStopGraceMs?: number;
  /** What uploads may claim of the disk (default DEFAULT_UPLOAD_LIMITS). */
  readonly uploadLimits?: UploadLimits;
  /** How long a running job's worker may go unseen before the job fails (default JOB_LEASE_MS). */
  readonly jobLeaseMs?: number;
}

/** A query's default time limit and then some: the worker's current job reports before the server goes. */
export const WORKER_STOP_GRACE_MS = 75_000;

/** True when `work` settled within `ms`. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
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

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const databasePath = prepareDatabaseFile(options.dataDir, 'malus.db');
  const now = options.now ?? (() => new Date());
  // Before the store opens, so that a failure here leaves nothing open.
  const { ca: simCa, measurement: simMeasurement, measurementBytes } = await simPlatformOf(options.dataDir, now(), options.simMeasurement);
  // Held until close: a second server on this directory would fork the transparency log.
  const lock = lockDatabaseFile(databasePath, 'malus serve');
  let store: Store;
  try {
    store = openSqliteStore({ path: databasePath });
  } catch (error) {
    lock.release();
    throw error;
  }
  let app: FastifyInstance | undefined;
  let log: TransparencyLog | undefined;
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
      ...(options.jobLeaseMs === undefined ? {} : { jobLeaseMs: options.jobLeaseMs }),
    });
    app = await buildApp({
      publicEntries: options.publicEntries ?? false,
      context: {
        store,
        now,
        log,
        dataDir: options.dataDir,
        confidential,
        ...(options.uploadLimits === undefined ? {} : { uploadLimits: options.uploadLimits }),
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
    // The checkpointer may already run; stop it before the store goes.
    await log?.stop().catch(() => undefined);
    await store.close();
    lock.release();
    throw listenError(error, options);
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
        // The worker stops claiming at once, and its current job, if any, still needs the server
        // to fetch its keys and to report to: closing the app first left that job running for
        // good, its charge spent. So the app stays up until the job has reported, or the grace ends.
        const stopping = running?.stop();
        const grace = options.workerStopGraceMs ?? WORKER_STOP_GRACE_MS;
        const stopped = stopping === undefined || (await settlesWithin(stopping, grace));
        if (!stopped) app.log.warn({ graceMs: grace }, 'the worker did not finish its job in time; it stays running in the store');
        await app.close();
        if (stopped) await stopping;
        await log.stop();
        try {
          await store.close();
        } finally {
          lock.release();
        }
      })();
      return closing;
    },
  };
}
