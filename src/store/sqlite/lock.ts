import Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';

// One server process per database file. The transparency log's tree lives in the process that
// appends to it: a second process on the same file would sign checkpoints over leaves it never
// saw. The lock is an exclusive transaction held open on a small SQLite file beside the database,
// so the operating system drops it when the process ends, however it ends: no stale lock file.

export interface DatabaseLock {
  release(): void;
}

/** Takes the lock of the database at `path` (`<path>.lock`), or throws `usage` naming the file if another process holds it. */
export function lockDatabaseFile(path: string, holder: string): DatabaseLock {
  const lockPath = `${path}.lock`;
  let db: Database.Database;
  try {
    db = new Database(lockPath, { timeout: 0 });
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot open the lock ${lockPath}: ${(error as { code?: string }).code ?? 'error'}`);
  }
  try {
    db.pragma('journal_mode = DELETE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY') === true) {
      throw new MalusError('usage', `${path} is in use by another ${holder}: one process serves a data directory at a time`);
    }
    throw error;
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      db.exec('ROLLBACK');
      db.close();
    },
  };
}
