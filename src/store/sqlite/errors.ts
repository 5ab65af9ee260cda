import Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';

/**
 * Runs one synchronous database call as a Promise. Driver failures become
 * MalusError('store-failure'); MalusErrors thrown on purpose pass through.
 */
export function attempt<T>(db: Database.Database, what: string, fn: () => T): Promise<T> {
  if (!db.open) return Promise.reject(new MalusError('store-failure', 'The store is closed'));
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(storeFailure(what, error));
  }
}

export function storeFailure(what: string, error: unknown): MalusError {
  if (error instanceof MalusError) return error;
  // Driver messages name files, tables and conditions, never bound values, so they are safe to show.
  const detail = error instanceof Error ? `: ${error.message}` : '';
  return new MalusError('store-failure', `The store could not ${what}${detail}`, { cause: error });
}

/** True for a UNIQUE or PRIMARY KEY violation: the schema's backstop behind the explicit checks. */
export function isUniqueViolation(error: unknown): boolean {
  return (
    error instanceof Database.SqliteError &&
    (error.code === 'SQLITE_CONSTRAINT_UNIQUE' || error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
  );
}
