import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Table } from '../agreement/index.js';
import { MalusError } from '../errors/index.js';
import { ident, literal } from './duckdb.js';
import { encodeHeader, openDataset, type DatasetHeader } from './format/container.js';
import { sha256Of, type DatasetManifest } from './format/manifest.js';

// Inside the enclave: decrypt a dataset with its released key into an in-memory DuckDB table.
// Every chunk is authenticated before any of it is used; the ciphertext hash and the header are
// checked against the owner-signed manifest. Parquet is read from its end, so the verified
// plaintext waits in a memory-backed file (tmpfs, mode 0600), deleted as soon as DuckDB has it.

const TMPFS_MAGIC = 0x01021994;
export const DEFAULT_MEMORY_DIR = '/dev/shm';

export interface LoadParameters {
  readonly connection: DuckDBConnection;
  /** The ciphertext, as stored: streamed, never buffered whole. */
  readonly source: AsyncIterable<Uint8Array>;
  readonly key: Uint8Array;
  /** The manifest, already verified against the active agreement by the caller. */
  readonly manifest: DatasetManifest;
  readonly table: Table;
  /** The name of the DuckDB table to create (default: the table's name). */
  readonly as?: string;
  /** A memory-backed folder for the verified Parquet bytes; refused unless it is tmpfs. */
  readonly memoryDir?: string;
}

export interface LoadedDataset {
  readonly table: string;
  readonly rows: number;
  readonly ciphertextBytes: number;
}

function requireMemoryDir(dir: string): void {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch {
    throw new MalusError('internal', `the memory-backed folder ${dir} does not exist: plaintext would have to touch disk`);
  }
  if (type !== TMPFS_MAGIC) throw new MalusError('internal', `${dir} is not a tmpfs: refusing to write decrypted data to disk`);
}

function headerMismatch(header: DatasetHeader, manifest: DatasetManifest): string | undefined {
  for (const field of ['dataset', 'collaboration', 'agreementHash', 'table', 'owner', 'schemaHash', 'rows'] as const) {
    if (header[field] !== manifest[field]) return field;
  }
  return undefined;
}

async function* hashing(source: AsyncIterable<Uint8Array>, into: { hash: ReturnType<typeof createHash>; bytes: number }): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    into.hash.update(piece);
    into.bytes += piece.byteLength;
    yield piece;
  }
}

/** DuckDB's name for an agreement column type, as DESCRIBE prints it. */
function describedType(type: string): string {
  return type.startsWith('DECIMAL(') ? type.replace(/\s+/g, '') : type === 'TIMESTAMPTZ' ? 'TIMESTAMP WITH TIME ZONE' : type;
}

export async function loadDataset(parameters: LoadParameters): Promise<LoadedDataset> {
  const { connection, manifest, table } = parameters;
  const target = parameters.as ?? table.name;
  const memoryDir = parameters.memoryDir ?? DEFAULT_MEMORY_DIR;
  requireMemoryDir(memoryDir);
  const dir = mkdtempSync(join(memoryDir, 'malus-load-'));
  const file = join(dir, 'payload.parquet');
  const counted = { hash: createHash('sha256'), bytes: 0 };
  let headerHash: string | undefined;
  try {
    const fd = openSync(file, 'wx', 0o600);
    try {
      const chunks = openDataset(hashing(parameters.source, counted), parameters.key, (header) => {
        const field = headerMismatch(header, manifest);
        if (field !== undefined) throw new MalusError('invalid-input', `dataset ${manifest.dataset}: the file's header ${field} differs from the signed manifest`);
      });
      for (;;) {
        const next = await chunks.next();
        if (next.done === true) {
          // The header was checked canonical, so encoding it again gives the very bytes that were read.
          headerHash = sha256Of(encodeHeader(next.value));
          break;
        }
        writeSync(fd, next.value);
      }
    } finally {
      closeSync(fd);
    }
    const ciphertext = `sha256:${counted.hash.digest('hex')}`;
    if (ciphertext !== manifest.ciphertext.sha256 || counted.bytes !== manifest.ciphertext.bytes) {
      throw new MalusError('invalid-input', `dataset ${manifest.dataset}: the ciphertext is not the one its owner signed (hash or size differs)`);
    }
    if (headerHash !== manifest.headerHash) throw new MalusError('invalid-input', `dataset ${manifest.dataset}: the header is not the one its owner signed`);
    await connection.run(`CREATE TABLE ${ident(target)} AS SELECT * FROM read_parquet(${literal(file)})`);
    rmSync(dir, { recursive: true, force: true });
    try {
      await checkLoaded(connection, target, table, manifest.rows);
    } catch (error) {
      await connection.run(`DROP TABLE IF EXISTS ${ident(target)}`);
      throw error;
    }
    return { table: target, rows: manifest.rows, ciphertextBytes: counted.bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function checkLoaded(connection: DuckDBConnection, target: string, table: Table, rows: number): Promise<void> {
  const described = (await connection.runAndReadAll(`DESCRIBE ${ident(target)}`)).getRowObjects();
  const found = described.map((row) => `${String(row.column_name)} ${String(row.column_type)}`);
  const expected = table.columns.map((c) => `${c.name} ${describedType(c.type)}`);
  if (found.join(',') !== expected.join(',')) {
    throw new MalusError('invalid-input', `table ${table.name}: the dataset's columns (${found.join(', ')}) are not the agreement's (${expected.join(', ')})`);
  }
  const count = Number((await connection.runAndReadAll(`SELECT count(*) AS n FROM ${ident(target)}`)).getRowObjects()[0]?.n);
  if (count !== rows) throw new MalusError('invalid-input', `table ${table.name}: the dataset holds ${count} rows, its header says ${rows}`);
}
