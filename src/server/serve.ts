import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import { MalusError } from '../errors/index.js';
import { openSqliteStore, type Store } from '../store/index.js';
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
}

export interface RunningServer {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly log: TransparencyLog;
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

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  prepareDataDir(options.dataDir);
  const databasePath = join(options.dataDir, 'malus.db');
  // Create the database owner-only; SQLite gives its -wal and -shm files the same mode.
  closeSync(openSync(databasePath, 'a', 0o600));
  chmodSync(databasePath, 0o600);
  const store = openSqliteStore({ path: databasePath });
  const now = options.now ?? (() => new Date());
  let app: FastifyInstance | undefined;
  let log: TransparencyLog;
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
    app = await buildApp({
      publicEntries: options.publicEntries ?? false,
      context: {
        store,
        now,
        log,
        ...(options.publicBaseUrl === undefined ? {} : { publicBaseUrl: options.publicBaseUrl }),
      },
      logger: options.logger ?? false,
      ...(options.loggerInstance === undefined ? {} : { loggerInstance: options.loggerInstance }),
    });
    await app.listen({ host: options.host, port: options.port });
    app.log.info({ origin: log.origin, size: log.tree.size }, 'transparency log verified');
    log.start();
  } catch (error) {
    await app?.close();
    await store.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new MalusError('usage', `cannot listen on ${options.host}:${options.port}: ${code}`);
    }
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    app,
    store,
    log,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await log.stop();
        await store.close();
      })();
      return closing;
    },
  };
}
