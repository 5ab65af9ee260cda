import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, checkAgreement, type Agreement, type Table } from '../../src/agreement/index.js';
import { ERROR_CODES, MalusError } from '../../src/errors/index.js';
import {
  DATASET_FILES,
  c3rEncryptFile,
  loadDataset,
  openDataset,
  openIngestDb,
  openOwnerDataKey,
  prepareDataset,
  sealedDataKeySchema,
  signedManifestSchema,
  type PrepareParameters,
  type PreparedDataset,
} from '../../src/ingest/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { prepareError } from './prepare-helpers.js';
import { writePreparedDataset } from './make-dataset.js';
import { parquetOf } from '../engine/query-fixtures.js';
import { makeAgreement, makeKeys, mutable, type ExampleKeys } from '../agreement/helpers.js';

// A C3R table registered as a Malus dataset: C3R's own sample output (marshalled_data_sample.csv,
// encrypted with the secret 00 01 .. 1f under the collaboration id below, from config_sample.json)
// is prepared and loaded; the enclave opens its sealed columns only when the agreement says so.

const V = '/work/shared/vectors/c3r';
const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const ID = '00000000-1111-2222-3333-444444444444';
const MARSHALLED = `${V}/marshalled_data_sample.csv`;

interface ConfigColumn {
  readonly targetHeader: string;
  readonly type: 'cleartext' | 'sealed' | 'fingerprint';
}

const config = JSON.parse(readFileSync(`${V}/config_sample.json`, 'utf8')) as { columns: ConfigColumn[] };

let dir: string;
let keys: ExampleKeys;
let base: Agreement;

/** The agreement's table for C3R's sample: one column per target header, in its original case. */
function sampleTable(owner: string, decryptInEnclave: boolean): Table {
  return {
    name: 'contacts',
    owner,
    columns: config.columns.map((c) => ({ name: c.targetHeader, type: c.targetHeader === 'Level' ? 'INTEGER' : 'VARCHAR', c3r: c.type })),
    identityColumn: 'PhoneNumber_Fingerprint',
    analysisRule: { type: 'list', joinColumns: ['PhoneNumber_Fingerprint'], listColumns: ['FirstName', 'LastName', 'State'] },
    c3r: { allowCleartext: true, allowDuplicates: true, allowJoinsOnColumnsWithDifferentNames: false, preserveNulls: false, decryptInEnclave, collaborationId: ID },
  };
}

/** The example agreement with these tables added; it must pass every check. */
function withTables(...tables: Table[]): Agreement {
  const checked = checkAgreement({ ...mutable(base), tables: [...base.tables, ...tables] });
  if (!checked.ok) throw new Error(`agreement: ${JSON.stringify(checked.issues)}`);
  return checked.agreement;
}

function params(agreement: Agreement, table: string, input: string, extra: Partial<PrepareParameters> = {}): PrepareParameters {
  return {
    agreement,
    agreementHash: agreementHash(agreement),
    table,
    input,
    keys: keys.advertiser,
    out: join(dir, `out-${randomBytes(4).toString('hex')}`),
    ...extra,
  };
}


/** The owner's view of a prepared dataset: its manifest and its data key. */
async function opened(prepared: PreparedDataset, owner: PartyKeys) {
  const signed = signedManifestSchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.manifest), 'utf8')));
  const sealed = sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8')));
  return { manifest: signed.manifest, key: await openOwnerDataKey(sealed, owner) };
}

/** Loads a prepared dataset into `connection` as its table (or `as`). */
async function load(connection: Parameters<typeof loadDataset>[0]['connection'], prepared: PreparedDataset, table: Table, owner: PartyKeys, as?: string) {
  const { manifest, key } = await opened(prepared, owner);
  const source = createReadStream(join(prepared.dir, DATASET_FILES.ciphertext));
  return loadDataset({ connection, source, key, manifest, table, ...(as === undefined ? {} : { as }) });
}

/** The payload's Parquet key-value metadata, read from a plaintext copy on tmpfs (removed after). */
async function kvMetadata(prepared: PreparedDataset, owner: PartyKeys): Promise<Map<string, string>> {
  const { key } = await opened(prepared, owner);
  const shm = mkdtempSync('/dev/shm/malus-c3r-test-');
  const file = join(shm, 'payload.parquet');
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of openDataset(createReadStream(join(prepared.dir, DATASET_FILES.ciphertext)), key)) chunks.push(chunk);
    writeFileSync(file, Buffer.concat(chunks), { mode: 0o600 });
    const db = await openIngestDb();
    try {
      const rows = (await db.connection.runAndReadAll(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata('${file}')`)).getRows();
      return new Map(rows.map(([k, v]) => [String(k), String(v)]));
    } finally {
      db.close();
    }
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
}

/** The cleartext sample, as rows of header -> value (no quoted commas in it: split by hand). */
function cleartextRows(): Map<string, string>[] {
  const [header = [], ...rows] = readFileSync(`${V}/data_sample_without_quotes.csv`, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(','));
  return rows.map((row) => new Map(header.map((h, i) => [h, row[i] ?? ''])));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'malus-c3r-dataset-'));
  keys = makeKeys();
  base = makeAgreement(keys);
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

describe('a C3R table as a Malus dataset', () => {
  it('the agreement names the C3R collaboration id, a UUID', () => {
    const table = sampleTable(keys.advertiser.identity.id, true);
    expect(checkAgreement({ ...mutable(base), tables: [...base.tables, table] }).ok).toBe(true);
    const upper = { ...table, c3r: { ...table.c3r, collaborationId: ID.toUpperCase() } };
    expect(checkAgreement({ ...mutable(base), tables: [...base.tables, upper] }).ok).toBe(true);
    const bad = { ...table, c3r: { ...table.c3r, collaborationId: 'campaign-measurement' } };
    expect(checkAgreement({ ...mutable(base), tables: [...base.tables, bad] })).toEqual({
      ok: false,
      issues: [{ path: 'tables[2].c3r.collaborationId', message: 'expected a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)' }],
    });
    // A sealed cell is randomized: it can be neither the identity nor a join column.
    const sealedJoin = { ...table, analysisRule: { type: 'list', joinColumns: ['Address'], listColumns: ['FirstName'] } };
    expect(checkAgreement({ ...mutable(base), tables: [...base.tables, sealedJoin] })).toEqual({
      ok: false,
      issues: [{ path: 'tables[2].columns[2].c3r', message: 'Address is an identity or join column: a C3R sealed column cannot be one (sealed cells never match); use a fingerprint column' }],
    });
    const missing = { ...table, c3r: { ...table.c3r, collaborationId: undefined } };
    expect(checkAgreement({ ...mutable(base), tables: [...base.tables, missing] })).toMatchObject({ ok: false, issues: [{ path: 'tables[2].c3r.collaborationId' }] });
  });

  it('with decryptInEnclave, the enclave opens every sealed column to the cleartext; fingerprints stay as they are', async () => {
    const table = sampleTable(keys.advertiser.identity.id, true);
    const agreement = withTables(table);
    const prepared = await prepareDataset(params(agreement, 'contacts', MARSHALLED, { c3rSecret: SECRET }));
    expect(prepared.signed.manifest).toMatchObject({ rows: 7, source: 'c3r', table: 'contacts' });
    // The secret is in the payload, which only the data key opens.
    expect((await kvMetadata(prepared, keys.advertiser)).get('malus.c3r-secret')).toBe(SECRET.toString('base64'));
    const ciphertext = readFileSync(join(prepared.dir, DATASET_FILES.ciphertext));
    expect(ciphertext.includes(Buffer.from(SECRET.toString('base64')))).toBe(false);

    const db = await openIngestDb();
    try {
      expect((await load(db.connection, prepared, table, keys.advertiser)).rows).toBe(7);
      const loaded = (await db.connection.runAndReadAll('SELECT * FROM contacts')).getRowObjects();
      const marshalled = readFileSync(MARSHALLED, 'utf8').split('\n').filter((l) => l !== '').slice(1).map((l) => l.split(','));
      const clear = cleartextRows();
      expect(loaded).toHaveLength(clear.length);
      for (const row of loaded) {
        const expected = clear.find((c) => c.get('FirstName') === row.FirstName && c.get('LastName') === row.LastName);
        expect(expected, `${String(row.FirstName)} ${String(row.LastName)}`).toBeDefined();
        const value = (header: string): string | null => (expected?.get(header) === '' ? null : (expected?.get(header) ?? null));
        // C3R sealed the empty Notes as NULL; the four letters "null" are a value.
        expect([row.Address, row.City, row.PhoneNumber_Sealed, row.Title, row.Notes]).toEqual([
          value('Address'), value('City'), value('PhoneNumber'), value('Title'), value('Notes'),
        ]);
        expect(row.PhoneNumber_Cleartext).toBe(value('PhoneNumber'));
        expect(row.Level).toBe(Number(value('Level')));
        const source = marshalled.find((m) => m[0] === row.FirstName && m[1] === row.LastName);
        expect([row.State, row.PhoneNumber_Fingerprint]).toEqual([source?.[4], source?.[7]]);
      }
      expect(loaded.find((r) => r.FirstName === 'Jake')?.Notes).toBe('null');
      expect(loaded.find((r) => r.FirstName === 'John')?.Notes).toBeNull();
      // Nothing of the opening is left behind.
      expect((await db.connection.runAndReadAll("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'malus_c3r%'")).getRows()).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('without decryptInEnclave, sealed cells stay ciphertext and no secret is stored, even when one is given', async () => {
    const table = sampleTable(keys.advertiser.identity.id, false);
    const agreement = withTables(table);
    const prepared = await prepareDataset(params(agreement, 'contacts', MARSHALLED, { c3rSecret: SECRET }));
    expect([...(await kvMetadata(prepared, keys.advertiser)).keys()].filter((k) => k.startsWith('malus.'))).toEqual([]);
    const db = await openIngestDb();
    try {
      await load(db.connection, prepared, table, keys.advertiser);
      const rows = (await db.connection.runAndReadAll('SELECT Address, City, PhoneNumber_Sealed, Title, Notes FROM contacts')).getRows();
      expect(rows).toHaveLength(7);
      for (const cell of rows.flat()) expect(String(cell).startsWith('02:enc:')).toBe(true);
      // Counting still works: the sealed NULL is a distinct ciphertext like any value.
      const count = (await db.connection.runAndReadAll('SELECT count(DISTINCT Notes) AS n FROM contacts')).getRowObjects();
      expect(Number(count[0]?.n)).toBe(7);
    } finally {
      db.close();
    }
  });

  it('fingerprint columns of two tables C3R-encrypted under one secret and collaboration id join (CSV and Parquet)', async () => {
    const secret = randomBytes(32);
    const collaborationId = '3f1b2c4d-5e6f-4a1b-8c2d-9e0f1a2b3c4d';
    const segments = join(dir, 'segments.csv');
    const spend = join(dir, 'spend.parquet');
    writeFileSync(segments, 'email,segment\na@example.com,s1\nb@example.com,\nc@example.com,s3\n');
    const make = await openIngestDb();
    await make.connection.run(
      `COPY (SELECT * FROM (VALUES ('b@example.com', 10::BIGINT, 'east'), ('c@example.com', 20, 'west'), ('d@example.com', 30, 'east')) t(email, spend, region)) TO '${spend}' (FORMAT parquet)`,
    );
    make.close();
    const column = (sourceHeader: string, type: string) => ({ sourceHeader, targetHeader: sourceHeader, type, ...(type === 'sealed' ? { pad: { type: 'none' } } : {}) });
    await c3rEncryptFile({
      input: segments, output: `${segments}.c3r`, secret, collaborationId,
      schema: { headerRow: true, columns: [column('email', 'fingerprint'), column('segment', 'sealed')] },
      settings: { preserveNulls: true },
    });
    await c3rEncryptFile({
      input: spend, output: join(dir, 'spend.c3r.parquet'), secret, collaborationId,
      schema: { headerRow: true, columns: [column('email', 'fingerprint'), column('spend', 'sealed'), column('region', 'cleartext')] },
      settings: { allowCleartext: true },
    });
    const c3r = (preserveNulls: boolean) => ({
      allowCleartext: true, allowDuplicates: false, allowJoinsOnColumnsWithDifferentNames: false, preserveNulls, decryptInEnclave: true, collaborationId,
    });
    const segmentsTable: Table = {
      name: 'segments',
      owner: keys.advertiser.identity.id,
      columns: [{ name: 'email', type: 'VARCHAR', c3r: 'fingerprint' }, { name: 'segment', type: 'VARCHAR', c3r: 'sealed' }],
      identityColumn: 'email',
      analysisRule: { type: 'list', joinColumns: ['email'], listColumns: ['segment'] },
      c3r: c3r(true),
    };
    const spendTable: Table = {
      name: 'spend',
      owner: keys.publisher.identity.id,
      columns: [{ name: 'email', type: 'VARCHAR', c3r: 'fingerprint' }, { name: 'spend', type: 'VARCHAR', c3r: 'sealed' }, { name: 'region', type: 'VARCHAR', c3r: 'cleartext' }],
      identityColumn: 'email',
      analysisRule: { type: 'list', joinColumns: ['email'], listColumns: ['spend', 'region'] },
      c3r: c3r(false),
    };
    const agreement = withTables(segmentsTable, spendTable);
    // The segment of b@example.com was empty: with preserveNulls C3R leaves an empty cell, which is NULL.
    expect(readFileSync(`${segments}.c3r`, 'utf8').split('\n').some((line) => line.endsWith(','))).toBe(true);
    const first = await prepareDataset(params(agreement, 'segments', `${segments}.c3r`, { c3rSecret: secret }));
    const second = await prepareDataset(params(agreement, 'spend', join(dir, 'spend.c3r.parquet'), { keys: keys.publisher, c3rSecret: secret }));
    expect(second.signed.manifest.source).toBe('c3r');
    const db = await openIngestDb();
    try {
      await load(db.connection, first, segmentsTable, keys.advertiser, 'a');
      await load(db.connection, second, spendTable, keys.publisher, 'b');
      const joined = (await db.connection.runAndReadAll('SELECT a.segment, b.spend, b.region FROM a JOIN b ON a.email = b.email ORDER BY b.spend')).getRows();
      // A sealed BIGINT (from Parquet) opens to its decimal text.
      expect(joined).toEqual([[null, '10', 'east'], ['s3', '20', 'west']]);
      const fingerprints = (await db.connection.runAndReadAll('SELECT email FROM a UNION ALL SELECT email FROM b')).getRows().flat();
      expect(fingerprints.every((f) => String(f).startsWith('02:hmac:'))).toBe(true);
    } finally {
      db.close();
    }
  });

  it('refuses a wrong C3R secret or collaboration id at prepare, and asks for a missing one', async () => {
    const table = sampleTable(keys.advertiser.identity.id, true);
    const agreement = withTables(table);
    const wrong = await prepareError(params(agreement, 'contacts', MARSHALLED, { c3rSecret: randomBytes(32) }));
    const message = "the C3R shared secret does not open the input's sealed cells (row 1, column Address): the secret or the table's c3r.collaborationId is not the one the file was encrypted with";
    expect({ code: wrong.code, exit: ERROR_CODES[wrong.code].exit, message: wrong.message }).toEqual({ code: 'invalid-input', exit: 2, message });
    const otherId = withTables({ ...table, c3r: { ...table.c3r!, collaborationId: '00000000-1111-2222-3333-444444444445' } });
    expect((await prepareError(params(otherId, 'contacts', MARSHALLED, { c3rSecret: SECRET }))).message).toBe(message);
    const missing = await prepareError(params(agreement, 'contacts', MARSHALLED));
    expect({ code: missing.code, message: missing.message }).toEqual({
      code: 'usage',
      message: "table contacts lets the enclave open its C3R sealed columns (c3r.decryptInEnclave): give the collaboration's C3R shared secret (C3R_SHARED_SECRET)",
    });
  });

  it('refuses an empty sealed cell when the collaboration does not preserve NULLs', async () => {
    const lines = readFileSync(MARSHALLED, 'utf8').split('\n');
    const cells = (lines[2] ?? '').split(',');
    cells[10] = '';
    lines[2] = cells.join(',');
    const input = join(dir, 'blanked.csv');
    writeFileSync(input, lines.join('\n'));
    const agreement = withTables(sampleTable(keys.advertiser.identity.id, false));
    expect((await prepareError(params(agreement, 'contacts', input))).describe()).toBe(
      'the input does not satisfy table contacts: 1 problem\nrow 2, column Notes: is empty, but the table\'s C3R settings do not preserve NULLs (C3R seals every NULL)',
    );
  });

  it('refuses at load a fingerprint identity that is empty or only white space, as prepare does, without counting the rows', async () => {
    const table = sampleTable(keys.advertiser.identity.id, false);
    const agreement = withTables(table);
    for (const identity of ['', '   ']) {
      const columns = table.columns.map((c) =>
        c.name === table.identityColumn ? `'${identity}' AS "${c.name}"` : c.type === 'INTEGER' ? `1 AS "${c.name}"` : `'x' AS "${c.name}"`,
      );
      const payload = await parquetOf(`SELECT ${columns.join(', ')} FROM range(2)`);
      const made = await writePreparedDataset(join(dir, `empty-identity-${identity.length}`), { agreement, table: 'contacts', keys: keys.advertiser, payload, rows: 2 });
      const db = await openIngestDb();
      try {
        const source = createReadStream(made.paths.ciphertext);
        await expect(loadDataset({ connection: db.connection, source, key: made.dataKey, manifest: made.manifest.manifest, table })).rejects.toThrow(
          'table contacts: the dataset breaks the agreement: rows have no PhoneNumber_Fingerprint',
        );
      } finally {
        db.close();
      }
    }
  });

  it('a sealed cell that does not open in the enclave is named by column and row, never shown', async () => {
    const lines = readFileSync(MARSHALLED, 'utf8').split('\n');
    const cells = (lines[3] ?? '').split(',');
    const notes = cells[10] ?? '';
    // Flip one base64 digit of the ciphertext (not the nonce the secret check reads first).
    const at = notes.length - 30;
    cells[10] = notes.slice(0, at) + (notes[at] === 'A' ? 'B' : 'A') + notes.slice(at + 1);
    lines[3] = cells.join(',');
    const input = join(dir, 'altered.csv');
    writeFileSync(input, lines.join('\n'));
    const table = sampleTable(keys.advertiser.identity.id, true);
    const prepared = await prepareDataset(params(withTables(table), 'contacts', input, { c3rSecret: SECRET }));
    const db = await openIngestDb();
    try {
      const error = await load(db.connection, prepared, table, keys.advertiser).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(MalusError);
      expect((error as MalusError).message).toBe(
        'table contacts, column Notes, row 3: the sealed value does not authenticate: the shared secret or the collaboration id is wrong, or the value was altered',
      );
      expect((await db.connection.runAndReadAll("SELECT table_name FROM duckdb_tables() WHERE table_name IN ('contacts') OR table_name LIKE 'malus_c3r%'")).getRows()).toEqual([]);
    } finally {
      db.close();
    }
  });
});
