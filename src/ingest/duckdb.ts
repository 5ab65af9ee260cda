import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

// One place that opens DuckDB for ingest work: in memory, never spilling to disk (an empty
// temp_directory turns spilling off), so plaintext rows exist only in this process's memory. Its
// time zone is UTC whatever the machine's, so a time with an offset means the same instant everywhere.

export interface IngestDb {
  readonly connection: DuckDBConnection;
  close(): void;
}

export async function openIngestDb(options: { threads?: number; memoryLimit?: string } = {}): Promise<IngestDb> {
  const instance = await DuckDBInstance.create(':memory:', {
    temp_directory: '',
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    ...(options.threads === undefined ? {} : { threads: String(options.threads) }),
    ...(options.memoryLimit === undefined ? {} : { memory_limit: options.memoryLimit }),
  });
  let connection: DuckDBConnection;
  try {
    connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
  } catch (error) {
    instance.closeSync();
    throw error;
  }
  return {
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** A DuckDB identifier, quoted. */
export const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;
/** A DuckDB string literal. */
export const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;
