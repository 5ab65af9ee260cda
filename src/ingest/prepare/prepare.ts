import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  readSync,
  rmdirSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { pseudonymizedColumns, type Agreement, type Table } from '../../agreement/index.js';
import { MalusError } from '../../errors/index.js';
import type { PartyKeys } from '../../identity/index.js';
import { keyCommitment } from '../../keyrelease/index.js';
import { deriveC3rKeys } from '../c3r/keys.js';
import { unsealC3rCell } from '../c3r/sealed.js';
import { ident, openIngestDb, literal, type IngestDb } from '../duckdb.js';
import { DATASET_ID_PATTERN, DATA_KEY_BYTES, datasetSealer, newDatasetHeader } from '../format/container.js';
import { DATASET_FILES } from '../format/files.js';
import { sealDataKeyForOwner } from '../format/key-at-rest.js';
import { MANIFEST_FORMAT, sha256Of, signManifest, tableSchemaHash, type SignedManifest } from '../format/manifest.js';
import { C3R_SECRET_METADATA_KEY } from '../load.js';
import { DEFAULT_MEMORY_DIR, isMemoryBacked, memoryScratchDir } from '../memory-dir.js';
import { createNamedPipe } from '../pipe.js';
import { syncPath } from '../sync.js';
import { deriveJoinKey, joinKeyCommitment } from './join-key.js';
import { RAW_TABLE, inferFormat, stageInput, type CsvDialect, type InputFormat } from './read.js';
import { planPreparation, validateStaged } from './validate.js';

// `malus dataset prepare`, on the provider's machine: read, check against the agreement,
// normalize and pseudonymize, then stream DuckDB's Parquet output through a named pipe into the
// chunked AEAD. The plaintext exists only in the input the user gave and in this process's memory.

export interface PrepareParameters {
  readonly agreement: Agreement;
  readonly agreementHash: string;
  readonly table: string;
  readonly input: string;
  readonly format?: InputFormat;
  readonly dialect?: CsvDialect;
  readonly keys: PartyKeys;
  readonly out: string;
  /** Defaults to the table name: one dataset per table, so a second, different one is a conflict. */
  readonly dataset?: string;
  /** The providers' shared join secret; needed when the table has identity or join columns. */
  readonly joinSecret?: Uint8Array;
  /** Where the join secret comes from, as messages name it (default MALUS_JOIN_SECRET). */
  readonly joinSecretSource?: string;
  /**
   * The C3R collaboration's shared secret; needed, and only then used, when the table says
   * `c3r.decryptInEnclave`. It travels inside the encrypted payload only (Parquet key-value
   * metadata), so only an enclave the data key is released to can read it. The caller zeroes it.
   */
  readonly c3rSecret?: Uint8Array;
  readonly now?: Date;
  readonly threads?: number;
  /** A tmpfs folder for the Parquet before it is sealed (default /dev/shm); elsewhere a named pipe is used. */
  readonly memoryDir?: string;
  /** The Parquet codec inside the ciphertext (default uncompressed; see docs/dataset-format.md). */
  readonly compression?: PayloadCompression;
}

/**
 * Codecs for the Parquet payload. Pseudonyms are random hex, which no codec shrinks, and DuckDB
 * already dictionary-encodes repetitive columns, so a typical clean-room table gains about 4% from
 * snappy while it costs about a tenth of the prepare (the enclave's load takes the same time
 * either way): uncompressed is the default, and zstd is there for wide text tables sent over slow
 * links.
 */
export const PAYLOAD_COMPRESSIONS = ['uncompressed', 'snappy', 'zstd'] as const;
export type PayloadCompression = (typeof PAYLOAD_COMPRESSIONS)[number];

export interface PreparedDataset {
  readonly dir: string;
  readonly signed: SignedManifest;
}

function findTable(agreement: Agreement, name: string, owner: string): Table {
  const table = agreement.tables.find((t) => t.name === name);
  if (table === undefined) {
    throw new MalusError('invalid-input', `the agreement has no table ${name} (it has ${agreement.tables.map((t) => t.name).join(', ') || 'none'})`);
  }
  if (table.owner !== owner) throw new MalusError('forbidden', `table ${name} belongs to party ${table.owner}, not to ${owner} whose key file was given`);
  return table;
}

function joinKeyFor(agreement: Agreement, table: Table, secret: Uint8Array | undefined, source = 'MALUS_JOIN_SECRET'): Uint8Array | undefined {
  const columns = pseudonymizedColumns(table);
  if (columns.length === 0) return undefined;
  if (secret === undefined) {
    throw new MalusError('usage', `table ${table.name} pseudonymizes ${columns.join(', ')}: give the providers' shared join secret (${source})`);
  }
  const key = deriveJoinKey(secret, agreement.id);
  const expected = agreement.joinKey?.commitment;
  if (expected !== undefined && joinKeyCommitment(key, agreement.id) !== expected) {
    throw new MalusError('invalid-input', "the join secret given is not the one the agreement commits to (joinKey.commitment): the parties' pseudonyms would not join");
  }
  return key;
}

/** The C3R shared secret when the table lets the enclave open its sealed columns, else undefined (never stored). */
function c3rSecretFor(table: Table, secret: Uint8Array | undefined): { secret: Uint8Array; collaborationId: string } | undefined {
  if (table.c3r?.decryptInEnclave !== true) return undefined;
  if (secret === undefined) {
    throw new MalusError('usage', `table ${table.name} lets the enclave open its C3R sealed columns (c3r.decryptInEnclave): give the collaboration's C3R shared secret (C3R_SHARED_SECRET)`);
  }
  return { secret, collaborationId: table.c3r.collaborationId };
}

/**
 * Checks that the secret opens the first sealed cell of the input, so that a wrong secret (or a
 * wrong c3r.collaborationId) is refused here rather than inside the enclave. The cell is never shown.
 */
async function checkC3rSecret(db: IngestDb, table: Table, c3r: { secret: Uint8Array; collaborationId: string }): Promise<void> {
  const keys = deriveC3rKeys(c3r.secret, c3r.collaborationId);
  try {
    for (const column of table.columns.filter((c) => c.c3r === 'sealed')) {
      const name = ident(column.name);
      const reader = await db.connection.runAndReadAll(`SELECT rowid AS r, CAST(${name} AS VARCHAR) AS v FROM ${RAW_TABLE} WHERE ${name} IS NOT NULL ORDER BY rowid LIMIT 1`);
      const first = reader.getRowObjects()[0];
      if (first === undefined) continue;
      const at = `row ${Number(first.r) + 1}, column ${column.name}`;
      try {
        unsealC3rCell(String(first.v), keys);
      } catch (error) {
        if (error instanceof MalusError && error.message.includes('does not authenticate')) {
          throw new MalusError('invalid-input', `the C3R shared secret does not open the input's sealed cells (${at}): the secret or the table's c3r.collaborationId is not the one the file was encrypted with`);
        }
        throw new MalusError('invalid-input', `${at}: ${error instanceof Error ? error.message : String(error)}`);
      }
      return;
    }
    throw new MalusError('invalid-input', `table ${table.name} lets the enclave open its sealed columns, but the input has no sealed cell to check the C3R shared secret against`);
  } finally {
    keys.secret.fill(0);
    keys.rootKey.fill(0);
  }
}

/** The COPY option that stores the C3R secret in the Parquet file's key-value metadata (base64). */
function c3rSecretOption(c3r: { secret: Uint8Array } | undefined): string {
  if (c3r === undefined) return '';
  return `, KV_METADATA {${ident(C3R_SECRET_METADATA_KEY)}: ${literal(Buffer.from(c3r.secret.buffer, c3r.secret.byteOffset, c3r.secret.byteLength).toString('base64'))}}`;
}

interface OutputDir {
  readonly final: string;
  readonly staging: string;
  /** The first of the folders above `final` that this run created, if any: removed on failure. */
  readonly createdAbove: string | undefined;
}

/** A system error while making the output, named with the folder and its code. */
const cannotWrite = (out: string, error: unknown): MalusError =>
  new MalusError('file-unreadable', `cannot write output folder ${out}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);

function prepareOutputDir(out: string): OutputDir {
  const final = resolve(out);
  let found;
  try {
    found = lstatSync(final, { throwIfNoEntry: false });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') throw new MalusError('usage', `output folder ${out}: a path above it is a file, not a folder`);
    throw cannotWrite(out, error);
  }
  if (found !== undefined) {
    // The finished folder is renamed into place: a link there would be replaced, not followed.
    if (found.isSymbolicLink()) throw new MalusError('usage', `output folder ${out} is a symbolic link: give the folder itself`);
    if (!found.isDirectory()) throw new MalusError('usage', `output folder ${out} exists and is not a folder`);
    if (readdirSync(final).length > 0) throw new MalusError('usage', `output folder ${out} exists and is not empty`);
  }
  const parent = dirname(final);
  let createdAbove: string | undefined;
  try {
    createdAbove = makeFolders(parent);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST') throw new MalusError('usage', `output folder ${out}: a path above it is a file, not a folder`);
    throw cannotWrite(out, error);
  }
  const staging = join(parent, `.${basename(final)}.partial-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(staging, { mode: 0o700 });
  } catch (error) {
    const output = { final, staging, createdAbove };
    removeOutputDir(output);
    throw cannotWrite(out, error);
  }
  return { final, staging, createdAbove };
}

/**
 * Makes a folder and the missing ones above it, one at a time, and returns the topmost it made.
 * Node's own recursive mkdir never returns on some file systems (under /proc it loops for good);
 * here a level that cannot be made fails with its error at once.
 */
function makeFolders(folder: string): string | undefined {
  const missing: string[] = [];
  for (let at = folder; lstatSync(at, { throwIfNoEntry: false }) === undefined; at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  for (const level of [...missing].reverse()) mkdirSync(level);
  return missing.at(-1);
}

/** Removes what a failed run made: its staging folder and the empty folders it created above it. */
function removeOutputDir({ final, staging, createdAbove }: OutputDir): void {
  rmSync(staging, { recursive: true, force: true });
  if (createdAbove === undefined) return;
  // rmdir refuses a folder that is not empty, so nothing that arrived there meanwhile is lost.
  for (let folder = dirname(final); folder.length >= createdAbove.length; folder = dirname(folder)) {
    try {
      rmdirSync(folder);
    } catch {
      return;
    }
  }
}

/** Bytes read from the Parquet file per read while it is sealed. */
const PIECE_BYTES = 1 << 20;

/**
 * Writes `SELECT … FROM malus_raw` as Parquet into the sealer and the file: through a file on tmpfs
 * when the machine has one (fast), else through a named pipe (no file at all, but DuckDB and this
 * process then trade 64 KiB at a time).
 */
async function writeCiphertext(
  db: IngestDb,
  output: string,
  file: string,
  seal: ReturnType<typeof datasetSealer>,
  copyOptions: string,
  memoryDir: string,
): Promise<{ sha256: string; bytes: number }> {
  if (!isMemoryBacked(memoryDir)) return writeCiphertextThroughPipe(db, output, file, seal, copyOptions);
  const scratch = memoryScratchDir(memoryDir, 'prepare');
  try {
    const payload = join(scratch.path, 'payload.parquet');
    try {
      await db.connection.run(`COPY (${output}) TO ${literal(payload)} (FORMAT parquet, ${copyOptions})`);
    } catch {
      throw new MalusError('invalid-input', 'DuckDB could not write the prepared rows');
    }
    const hash = createHash('sha256');
    const fd = openSync(file, 'wx', 0o600);
    let bytes = 0;
    const write = (data: Buffer): void => {
      hash.update(data);
      bytes += data.length;
      for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset);
    };
    const input = openSync(payload, 'r');
    try {
      write(seal.prefix);
      // Read synchronously: the file is in memory, and a stream's round trips to the thread pool
      // cost more than the reads (40 ms of a 74 MB seal). The event loop gets a turn every 16 MiB.
      for (let position = 0, pieces = 1; ; pieces += 1) {
        const piece = Buffer.allocUnsafe(PIECE_BYTES);
        const n = readSync(input, piece, 0, PIECE_BYTES, position);
        if (n === 0) break;
        position += n;
        for (const chunk of seal.push(piece.subarray(0, n))) write(chunk);
        if (pieces % 16 === 0) await new Promise((resume) => setImmediate(resume));
      }
      write(seal.finish());
    } finally {
      closeSync(input);
      closeSync(fd);
    }
    return { sha256: `sha256:${hash.digest('hex')}`, bytes };
  } finally {
    scratch.remove();
  }
}

async function writeCiphertextThroughPipe(
  db: IngestDb,
  output: string,
  file: string,
  seal: ReturnType<typeof datasetSealer>,
  copyOptions: string,
): Promise<{ sha256: string; bytes: number }> {
  const pipe = await createNamedPipe();
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = createWriteStream(file, { mode: 0o600 });
  // A failed write (disk full, folder gone) rejects here instead of becoming an uncaught error.
  const sinkFailed = new Promise<never>((_, reject) => sink.once('error', reject));
  sinkFailed.catch(() => undefined);
  const write = async (data: Buffer): Promise<void> => {
    hash.update(data);
    bytes += data.length;
    if (!sink.write(data)) await Promise.race([new Promise<void>((done) => sink.once('drain', () => { done(); })), sinkFailed]);
  };
  const source = createReadStream(pipe.path, { highWaterMark: 1 << 20 });
  const reading = (async () => {
    await write(seal.prefix);
    for await (const piece of source) {
      for (const chunk of seal.push(piece as Buffer)) await write(chunk);
    }
    await write(seal.finish());
  })();
  // Observed now, so that a reader failure while COPY runs is never an unhandled rejection.
  const readOutcome = reading.then(
    () => undefined,
    (error: unknown) => error,
  );
  try {
    let copyError: unknown;
    try {
      await db.connection.run(`COPY (${output}) TO ${literal(pipe.path)} (FORMAT parquet, USE_TMP_FILE false, ${copyOptions})`);
    } catch (error) {
      copyError = error;
      // Unblock the reader, which may still wait for a writer to open the pipe.
      closeSync(openSync(pipe.path, constants.O_RDWR | constants.O_NONBLOCK));
    }
    const readError = await readOutcome;
    if (readError !== undefined) {
      throw new MalusError('internal', `cannot write the encrypted dataset: ${(readError as NodeJS.ErrnoException).code ?? 'write failed'}`);
    }
    if (copyError !== undefined) throw new MalusError('invalid-input', 'DuckDB could not write the prepared rows');
    sink.end();
    await Promise.race([finished(sink), sinkFailed]);
    return { sha256: `sha256:${hash.digest('hex')}`, bytes };
  } finally {
    source.destroy();
    sink.destroy();
    pipe.remove();
  }
}

export async function prepareDataset(parameters: PrepareParameters): Promise<PreparedDataset> {
  const { agreement, keys } = parameters;
  const owner = keys.identity.id;
  const table = findTable(agreement, parameters.table, owner);
  const joinKey = joinKeyFor(agreement, table, parameters.joinSecret, parameters.joinSecretSource);
  const c3rSecret = c3rSecretFor(table, parameters.c3rSecret);
  const dataset = parameters.dataset ?? table.name;
  if (!DATASET_ID_PATTERN.test(dataset)) {
    throw new MalusError('invalid-input', `dataset id ${dataset}: expected 3 to 64 characters: a-z, 0-9, ".", "_", "-", starting with a letter or digit${parameters.dataset === undefined ? ' (the table name is used unless --dataset is given)' : ''}`);
  }
  const compression = parameters.compression ?? 'uncompressed';
  if (!PAYLOAD_COMPRESSIONS.includes(compression)) throw new MalusError('usage', `compression ${compression}: expected one of ${PAYLOAD_COMPRESSIONS.join(', ')}`);
  const format = parameters.format ?? inferFormat(parameters.input);
  const output = prepareOutputDir(parameters.out);
  const { final, staging } = output;
  const dataKey = randomBytes(DATA_KEY_BYTES);
  let db: IngestDb | undefined;
  let synced: Promise<void> | undefined;
  try {
    db = await openIngestDb(parameters.threads === undefined ? {} : { threads: parameters.threads });
    const plan = planPreparation(table, joinKey);
    const staged = await stageInput(db, {
      path: parameters.input,
      format,
      ...(parameters.dialect === undefined ? {} : { dialect: parameters.dialect }),
      columns: table.columns,
      stage: plan.stage,
    });
    await validateStaged(db, table, plan, staged.rows);
    if (c3rSecret !== undefined) await checkC3rSecret(db, table, c3rSecret);
    const header = newDatasetHeader({
      dataset,
      collaboration: agreement.id,
      agreementHash: parameters.agreementHash,
      table: table.name,
      owner,
      schemaHash: tableSchemaHash(table),
      rows: staged.rows,
    });
    for (const statement of plan.maps) {
      // The statement holds key material: its error, which may quote it, is never passed on.
      await db.connection.run(statement).catch(() => {
        throw new MalusError('internal', 'DuckDB could not pseudonymize the join columns');
      });
    }
    const seal = datasetSealer(header, dataKey);
    const cipherPath = join(staging, DATASET_FILES.ciphertext);
    const ciphertext = await writeCiphertext(db, plan.output, cipherPath, seal, `COMPRESSION ${compression}${c3rSecretOption(c3rSecret)}`, parameters.memoryDir ?? DEFAULT_MEMORY_DIR);
    // The ciphertext goes to the disk on a pool thread while DuckDB is closed and the manifest made.
    synced = syncPath(cipherPath);
    synced.catch(() => undefined);
    db.close();
    db = undefined;
    const signed = signManifest(
      {
        format: MANIFEST_FORMAT,
        dataset,
        collaboration: agreement.id,
        agreementHash: parameters.agreementHash,
        table: table.name,
        owner,
        schemaHash: header.schemaHash,
        rows: staged.rows,
        headerHash: sha256Of(seal.prefix),
        ciphertext,
        keyCommitment: keyCommitment(dataKey, agreement.id, dataset),
        source: table.c3r === undefined ? format : 'c3r',
        createdAt: (parameters.now ?? new Date()).toISOString(),
      },
      { partyId: owner, signingSecret: keys.signingSecret },
    );
    const sealedKey = await sealDataKeyForOwner(dataKey, { collaboration: agreement.id, dataset }, keys);
    writeFileSync(join(staging, DATASET_FILES.manifest), `${JSON.stringify(signed, null, 2)}\n`, { mode: 0o644 });
    writeFileSync(join(staging, DATASET_FILES.dataKey), `${JSON.stringify(sealedKey, null, 2)}\n`, { mode: 0o600 });
    await Promise.all([synced, syncPath(join(staging, DATASET_FILES.manifest)), syncPath(join(staging, DATASET_FILES.dataKey))]);
    // Only an empty folder is replaced (rmdir refuses any other): nothing put there meanwhile is lost.
    try {
      if (existsSync(final)) rmdirSync(final);
      renameSync(staging, final);
    } catch (error) {
      throw cannotWrite(parameters.out, error);
    }
    // The new name is durable once the folder that holds it is synced.
    await syncPath(dirname(final));
    return { dir: final, signed };
  } catch (error) {
    await synced?.catch(() => undefined);
    removeOutputDir(output);
    throw error;
  } finally {
    dataKey.fill(0);
    joinKey?.fill(0);
    db?.close();
  }
}
