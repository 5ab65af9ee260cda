import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { pseudonymizedColumns, type Agreement, type Table } from '../../agreement/index.js';
import { MalusError } from '../../errors/index.js';
import type { PartyKeys } from '../../identity/index.js';
import { keyCommitment } from '../../keyrelease/index.js';
import { openIngestDb, literal, type IngestDb } from '../duckdb.js';
import { DATA_KEY_BYTES, datasetSealer, newDatasetHeader } from '../format/container.js';
import { DATASET_FILES } from '../format/files.js';
import { sealDataKeyForOwner } from '../format/key-at-rest.js';
import { MANIFEST_FORMAT, sha256Of, signManifest, tableSchemaHash, type SignedManifest } from '../format/manifest.js';
import { createNamedPipe } from '../pipe.js';
import { deriveJoinKey, joinKeyCommitment } from './join-key.js';
import { inferFormat, stageInput, type CsvDialect, type InputFormat } from './read.js';
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
  readonly now?: Date;
  readonly threads?: number;
}

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

function joinKeyFor(agreement: Agreement, table: Table, secret: Uint8Array | undefined): Uint8Array | undefined {
  const columns = pseudonymizedColumns(table);
  if (columns.length === 0) return undefined;
  if (secret === undefined) {
    throw new MalusError('usage', `table ${table.name} pseudonymizes ${columns.join(', ')}: give the providers' shared join secret (MALUS_JOIN_SECRET)`);
  }
  const key = deriveJoinKey(secret, agreement.id);
  const expected = agreement.joinKey?.commitment;
  if (expected !== undefined && joinKeyCommitment(key, agreement.id) !== expected) {
    throw new MalusError('invalid-input', "the join secret given is not the one the agreement commits to (joinKey.commitment): the parties' pseudonyms would not join");
  }
  return key;
}

function prepareOutputDir(out: string): { final: string; staging: string } {
  const final = resolve(out);
  if (existsSync(final) && readdirSync(final).length > 0) throw new MalusError('usage', `output folder ${out} exists and is not empty`);
  const staging = join(dirname(final), `.${basename(final)}.partial-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  return { final, staging };
}

/** Streams `SELECT … FROM malus_raw` as Parquet through a pipe into the sealer and the file. */
async function writeCiphertext(db: IngestDb, output: string, file: string, seal: ReturnType<typeof datasetSealer>): Promise<{ sha256: string; bytes: number }> {
  const pipe = await createNamedPipe();
  const hash = createHash('sha256');
  let bytes = 0;
  const sink = createWriteStream(file, { mode: 0o600 });
  const write = async (data: Buffer): Promise<void> => {
    hash.update(data);
    bytes += data.length;
    if (!sink.write(data)) await new Promise<void>((done) => sink.once('drain', () => { done(); }));
  };
  try {
    const reading = (async () => {
      await write(seal.prefix);
      for await (const piece of createReadStream(pipe.path, { highWaterMark: 1 << 20 })) {
        for (const chunk of seal.push(piece as Buffer)) await write(chunk);
      }
      await write(seal.finish());
    })();
    try {
      await db.connection.run(
        `COPY (${output}) TO ${literal(pipe.path)} (FORMAT parquet, COMPRESSION snappy, USE_TMP_FILE false)`,
      );
    } catch (error) {
      // Unblock the reader, which may still wait for a writer to open the pipe.
      closeSync(openSync(pipe.path, constants.O_RDWR | constants.O_NONBLOCK));
      await reading.catch(() => undefined);
      throw new MalusError('invalid-input', 'DuckDB could not write the prepared rows', { cause: error });
    }
    await reading;
    sink.end();
    await finished(sink);
    return { sha256: `sha256:${hash.digest('hex')}`, bytes };
  } finally {
    sink.destroy();
    pipe.remove();
  }
}

export async function prepareDataset(parameters: PrepareParameters): Promise<PreparedDataset> {
  const { agreement, keys } = parameters;
  const owner = keys.identity.id;
  const table = findTable(agreement, parameters.table, owner);
  const joinKey = joinKeyFor(agreement, table, parameters.joinSecret);
  const dataset = parameters.dataset ?? table.name;
  const format = parameters.format ?? inferFormat(parameters.input);
  const { final, staging } = prepareOutputDir(parameters.out);
  const db = await openIngestDb(parameters.threads === undefined ? {} : { threads: parameters.threads });
  const dataKey = randomBytes(DATA_KEY_BYTES);
  try {
    const staged = await stageInput(db, { path: parameters.input, format, ...(parameters.dialect === undefined ? {} : { dialect: parameters.dialect }), columns: table.columns });
    const plan = planPreparation(table, joinKey);
    await validateStaged(db, table, plan, staged.rows);
    const header = newDatasetHeader({
      dataset,
      collaboration: agreement.id,
      agreementHash: parameters.agreementHash,
      table: table.name,
      owner,
      schemaHash: tableSchemaHash(table),
      rows: staged.rows,
    });
    for (const statement of plan.maps) await db.connection.run(statement);
    const seal = datasetSealer(header, dataKey);
    const ciphertext = await writeCiphertext(db, plan.output, join(staging, DATASET_FILES.ciphertext), seal);
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
    if (existsSync(final)) rmSync(final, { recursive: true });
    renameSync(staging, final);
    return { dir: final, signed };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  } finally {
    dataKey.fill(0);
    joinKey?.fill(0);
    db.close();
  }
}
