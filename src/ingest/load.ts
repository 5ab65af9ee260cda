import { closeSync, openSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBBlobValue, type DuckDBConnection } from '@duckdb/node-api';
import { pseudonymizedColumns, type Table } from '../agreement/index.js';
import { MalusError } from '../errors/index.js';
import { backgroundSha256, type BackgroundHash } from './background-hash.js';
import { deriveC3rKeys, type C3rKeys } from './c3r/keys.js';
import { createUnsealer } from './c3r/sealed.js';
import { valueText } from './c3r/values.js';
import { ident, literal } from './duckdb.js';
import { trimSql } from './prepare/normalize.js';
import { DEFAULT_MEMORY_DIR, isMemoryBacked, memoryScratchDir } from './memory-dir.js';
import { encodeHeader, openDataset, type DatasetHeader } from './format/container.js';
import { sha256Of, type DatasetManifest } from './format/manifest.js';

// Inside the enclave: decrypt a dataset with its released key into an in-memory DuckDB table.
// Every chunk is authenticated before any of it is used; the ciphertext hash and the header are
// checked against the owner-signed manifest. Parquet is read from its end, so the verified
// plaintext waits in a memory-backed file (tmpfs, mode 0600), deleted as soon as DuckDB has it.
// A C3R table whose agreement says `c3r.decryptInEnclave` carries the C3R shared secret in the
// payload's Parquet key-value metadata; its sealed columns are opened here, after the load.

/** The Parquet key-value metadata key under which `dataset prepare` stores the C3R shared secret (base64). */
export const C3R_SECRET_METADATA_KEY = 'malus.c3r-secret';
/** Rows read from DuckDB per round trip while sealed cells are opened. */
const OPEN_BATCH_ROWS = 65_536;


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
  if (!isMemoryBacked(dir)) throw new MalusError('internal', `${dir} is not a tmpfs (or does not exist): refusing to write decrypted data to disk`);
}

function headerMismatch(header: DatasetHeader, manifest: DatasetManifest): string | undefined {
  for (const field of ['dataset', 'collaboration', 'agreementHash', 'table', 'owner', 'schemaHash', 'rows'] as const) {
    if (header[field] !== manifest[field]) return field;
  }
  return undefined;
}

async function* hashing(source: AsyncIterable<Uint8Array>, into: { hash: BackgroundHash; bytes: number }): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    const catchingUp = into.hash.update(piece);
    into.bytes += piece.byteLength;
    yield piece;
    if (catchingUp !== undefined) await catchingUp;
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
  const scratch = memoryScratchDir(memoryDir, 'load');
  const file = join(scratch.path, 'payload.parquet');
  let ciphertext: { hash: string; bytes: number } | undefined;
  let headerHash: string | undefined;
  let removing: Promise<void> | undefined;
  try {
    const fd = openSync(file, 'wx', 0o600);
    // Hashed on a second thread while this one decrypts.
    const counted = { hash: backgroundSha256(), bytes: 0 };
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
          ciphertext = { hash: await counted.hash.digest(), bytes: counted.bytes };
          break;
        }
        // writeSync may write less than asked (a full tmpfs): keep going, or fail on the error.
        for (let offset = 0; offset < next.value.length; ) offset += writeSync(fd, next.value, offset);
      }
    } finally {
      // A stream that failed before its end leaves no hash behind in the worker.
      if (ciphertext === undefined) counted.hash.abandon();
      closeSync(fd);
    }
    if (ciphertext.hash !== manifest.ciphertext.sha256 || ciphertext.bytes !== manifest.ciphertext.bytes) {
      throw new MalusError('invalid-input', `dataset ${manifest.dataset}: the ciphertext is not the one its owner signed (hash or size differs)`);
    }
    if (headerHash !== manifest.headerHash) throw new MalusError('invalid-input', `dataset ${manifest.dataset}: the header is not the one its owner signed`);
    await connection.run(`CREATE TABLE ${ident(target)} AS SELECT * FROM read_parquet(${literal(file)})`);
    const c3r = table.c3r?.decryptInEnclave === true ? table.c3r : undefined;
    let c3rSecret: Buffer | undefined;
    try {
      // The metadata is read from the file itself, so it must happen before the file goes.
      if (c3r !== undefined) c3rSecret = await readC3rSecret(connection, file, table);
      // Freeing the tmpfs pages overlaps the checks; it is awaited before anything returns.
      removing = rm(file, { force: true });
      await checkLoaded(connection, target, table, manifest.rows);
      if (c3r !== undefined && c3rSecret !== undefined) await openSealedColumns(connection, target, table, deriveC3rKeys(c3rSecret, c3r.collaborationId));
    } catch (error) {
      await connection.run(`DROP TABLE IF EXISTS ${ident(target)}`);
      throw error;
    } finally {
      c3rSecret?.fill(0);
    }
    return { table: target, rows: manifest.rows, ciphertextBytes: ciphertext.bytes };
  } finally {
    await removing?.catch(() => undefined);
    scratch.remove();
  }
}

async function checkLoaded(connection: DuckDBConnection, target: string, table: Table, rows: number): Promise<void> {
  const described = (await connection.runAndReadAll(`DESCRIBE ${ident(target)}`)).getRowObjects();
  const found = described.map((row) => `${String(row.column_name)} ${String(row.column_type)}`);
  const expected = table.columns.map((c) => `${c.name} ${describedType(c.type)}`);
  // Column by column: a Parquet name may hold commas and spaces, so joined lists could match.
  const same = described.length === table.columns.length && table.columns.every((c, i) => {
    const row = described[i];
    return row !== undefined && String(row.column_name) === c.name && String(row.column_type) === describedType(c.type);
  });
  if (!same) {
    throw new MalusError('invalid-input', `table ${table.name}: the dataset's columns (${found.join(', ')}) are not the agreement's (${expected.join(', ')})`);
  }
  // The owner's machine ran these checks at prepare; the enclave trusts no client, so it runs them
  // again, all in one scan with the row count.
  // The failure reaches whoever submitted the job, so it says which rule broke, never how many
  // rows broke it: a count would be an exact statistic of the data, outside any noise.
  const measures: { sql: string; says: string }[] = [];
  if (table.identityColumn !== null) {
    const identity = ident(table.identityColumn);
    const column = table.columns.find((c) => c.name === table.identityColumn);
    // As prepare: a text identity of only white space is as empty as NULL. (A pseudonymized one
    // is caught below, by the pseudonym check on its distinct values, at less cost.)
    const checkText = column?.type.toUpperCase() === 'VARCHAR' && !pseudonymizedColumns(table).includes(table.identityColumn);
    const empty = checkText ? ` OR ${trimSql(identity)} = ''` : '';
    measures.push({ sql: `count(*) FILTER (WHERE ${identity} IS NULL${empty})`, says: `rows have no ${table.identityColumn}` });
    if (table.duplicates === 'reject') {
      measures.push({ sql: `count(${identity}) - count(DISTINCT ${identity})`, says: "rows repeat an identity, and the table's duplicates policy is reject" });
    }
  }
  // Pseudonyms repeat (one person, many rows): each distinct value is checked once, which halves
  // the cost of the check on a typical table.
  for (const name of pseudonymizedColumns(table)) {
    const column = ident(name);
    measures.push({
      // any_value keeps DuckDB from pushing the check below the grouping, onto every row again.
      sql: `(SELECT count(*) FROM (SELECT any_value(${column}) AS v FROM ${ident(target)} WHERE ${column} IS NOT NULL GROUP BY ${column}) WHERE strlen(v) <> 64 OR NOT regexp_full_match(v, '[0-9a-f]{64}'))`,
      says: `values of ${name} are not pseudonyms (64 lower-case hex characters)`,
    });
  }
  const row = (await connection.runAndReadAll(`SELECT ${['count(*)', ...measures.map((m) => m.sql)].map((sql, i) => `${sql} AS m${i}`).join(', ')} FROM ${ident(target)}`)).getRows()[0] ?? [];
  const count = Number(row[0]);
  if (count !== rows) throw new MalusError('invalid-input', `table ${table.name}: the dataset holds ${count} rows, its header says ${rows}`);
  const violations: string[] = [];
  measures.forEach((measure, i) => {
    const n = Number(row[i + 1] ?? 0);
    if (n > 0) violations.push(measure.says);
  });
  if (violations.length > 0) throw new MalusError('invalid-input', `table ${table.name}: the dataset breaks the agreement: ${violations.join('; ')}`);
}

/** The C3R shared secret `dataset prepare` sealed into the payload's key-value metadata. */
async function readC3rSecret(connection: DuckDBConnection, file: string, table: Table): Promise<Buffer> {
  const reader = await connection.runAndReadAll(
    `SELECT value FROM parquet_kv_metadata(${literal(file)}) WHERE key = CAST(${literal(C3R_SECRET_METADATA_KEY)} AS BLOB)`,
  );
  const value = reader.getRows()[0]?.[0];
  if (!(value instanceof DuckDBBlobValue)) {
    throw new MalusError('invalid-input', `table ${table.name}: its agreement lets the enclave open C3R sealed columns, but the dataset carries no C3R shared secret`);
  }
  const text = Buffer.from(value.bytes);
  try {
    return Buffer.from(text.toString('latin1'), 'base64');
  } finally {
    text.fill(0);
    value.bytes.fill(0);
  }
}

/**
 * Replaces every sealed column's cells by the values they seal, as text (NULL, and a sealed NULL,
 * become NULL). Cells are read with their rowid, opened here, staged in a temporary table and
 * written back with one UPDATE. A cell that does not open is named by column and row, never shown.
 * The keys are zeroed when done.
 */
async function openSealedColumns(connection: DuckDBConnection, target: string, table: Table, keys: C3rKeys): Promise<void> {
  const sealed = table.columns.filter((c) => c.c3r === 'sealed').map((c) => c.name);
  const staging = ident(`malus_c3r_open_${target}`);
  try {
    if (sealed.length === 0) return;
    const counted = await connection.runAndReadAll(`SELECT coalesce(max(rowid) + 1, 0) AS n FROM ${ident(target)}`);
    const end = Number(counted.getRowObjects()[0]?.n ?? 0);
    await connection.run(`CREATE OR REPLACE TEMP TABLE ${staging} (r BIGINT, ${sealed.map((_, i) => `v${i} VARCHAR`).join(', ')})`);
    const appender = await connection.createAppender(`malus_c3r_open_${target}`, null, 'temp');
    const unseal = createUnsealer(keys);
    const columns = sealed.map((name) => `CAST(${ident(name)} AS VARCHAR)`).join(', ');
    try {
      for (let from = 0; from < end; from += OPEN_BATCH_ROWS) {
        const reader = await connection.runAndReadAll(
          `SELECT rowid, ${columns} FROM ${ident(target)} WHERE rowid >= ${from} AND rowid < ${from + OPEN_BATCH_ROWS} ORDER BY rowid`,
        );
        for (const row of reader.getRows()) {
          const rowid = row[0] as bigint;
          // Every cell of the row is opened before any of it is appended: a failure leaves no half row.
          const opened = sealed.map((name, i) => {
            const cell = row[i + 1];
            if (cell === null || cell === undefined) return null;
            try {
              const value = unseal(String(cell));
              return value === null ? null : valueText(value);
            } catch (error) {
              const reason = error instanceof Error ? error.message : String(error);
              throw new MalusError('invalid-input', `table ${table.name}, column ${name}, row ${Number(rowid) + 1}: ${reason}`);
            }
          });
          appender.appendBigInt(rowid);
          for (const text of opened) {
            if (text === null) appender.appendNull();
            else appender.appendVarchar(text);
          }
          appender.endRow();
        }
      }
    } finally {
      appender.closeSync();
    }
    const assignments = sealed.map((name, i) => `${ident(name)} = o.v${i}`).join(', ');
    await connection.run(`UPDATE ${ident(target)} SET ${assignments} FROM ${staging} AS o WHERE ${ident(target)}.rowid = o.r`);
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${staging}`);
    keys.secret.fill(0);
    keys.rootKey.fill(0);
  }
}
