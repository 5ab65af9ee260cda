// The one place that opens DuckDB: in memory, with spilling to disk turned off, so a file's
// contents never land in a temporary file we did not ask for.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** Runs `work` on a fresh in-memory DuckDB connection and closes it afterwards. */
export async function withDuckDb<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const instance = await DuckDBInstance.create(':memory:', { temp_directory: '' });
  const connection = await instance.connect();
  try {
    return await work(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** A string as a SQL literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A name as a SQL identifier. */
export function sqlIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
