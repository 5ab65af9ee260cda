import Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { SqliteStoreOptions, Store } from '../types.js';
import { sqliteCollaborations } from './collaborations.js';
import { storeFailure } from './errors.js';
import { migrate } from './migrations.js';
import { sqliteLog } from './log.js';
import { sqliteNonces } from './nonces.js';
import { sqliteJobs, sqliteWorkers } from './jobs.js';
import { sqliteKeys } from './keys.js';
import { sqliteDatasets } from './datasets.js';
import { sqliteRelay } from './relay.js';

/** How long a writer waits for another connection's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5_000;

export function openSqliteStore(options: SqliteStoreOptions): Store {
  const db = openSqliteDatabase(options.path);
  try {
    const collaborations = sqliteCollaborations(db);
    const nonces = sqliteNonces(db);
    const log = sqliteLog(db);
    return {
      collaborations,
      nonces,
      log,
      keys: sqliteKeys(db),
      jobs: sqliteJobs(db),
      workers: sqliteWorkers(db),
      datasets: sqliteDatasets(db),
      relay: sqliteRelay(db),
      close() {
        try {
          if (db.open) db.close();
          return Promise.resolve();
        } catch (error) {
          return Promise.reject(storeFailure('close the database', error));
        }
      },
    };
  } catch (error) {
    db.close();
    throw storeFailure('prepare its statements', error);
  }
}

/** Opens the file, sets the connection's pragmas and applies pending migrations. */
export function openSqliteDatabase(path: string): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw storeFailure(`open the database at ${path}`, error);
  }
  try {
    configure(db);
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw storeFailure(`prepare the database at ${path}`, error);
  }
}

function configure(db: Database.Database): void {
  // First, so that everything below waits for a lock held by another process instead of failing.
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  // An in-memory database has no journal file and stays 'memory'; a file that refuses WAL (for
  // example on a file system without shared memory) is refused rather than run unsafely.
  if (!db.memory && mode !== 'wal') {
    throw new MalusError('store-failure', `The database could not switch to WAL journal mode (got ${String(mode)})`);
  }
  // FULL syncs the WAL on every commit: a stored agreement or signature survives power loss.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
}
