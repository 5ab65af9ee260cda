import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, type Agreement } from '../../src/agreement/index.js';
import {
  DATASET_FILES,
  deriveJoinKey,
  joinKeyCommitment,
  loadDataset,
  openDataset,
  openIngestDb,
  openOwnerDataKey,
  prepareDataset,
  pseudonym,
  sealedDataKeySchema,
  signedManifestSchema,
  verifyManifest,
  type CsvDialect,
  type DatasetManifest,
  type PayloadCompression,
  type PrepareParameters,
} from '../../src/ingest/index.js';
import { parquetOf } from '../engine/query-fixtures.js';
import { writePreparedDataset } from './make-dataset.js';
import { prepareError } from './prepare-helpers.js';
import { makeAgreement, makeKeys, mutable, type ExampleKeys } from '../agreement/helpers.js';

let dir: string;
let keys: ExampleKeys;
let agreement: Agreement;
const secret = randomBytes(32);

const CONVERSIONS = [
  'email_hash,campaign_id,order_date,order_value',
  ' A1B2 ,c-1,2026-01-02,10.50',
  'c3d4,c-2,2026-01-03,7.25',
  'A1B2,"c,3",2026-01-04,0',
].join('\n');

function write(name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function params(input: string, extra: Partial<PrepareParameters> = {}): PrepareParameters {
  return {
    agreement,
    agreementHash: agreementHash(agreement),
    table: 'conversions',
    input,
    keys: keys.advertiser,
    out: join(dir, `out-${randomBytes(4).toString('hex')}`),
    joinSecret: secret,
    ...extra,
  };
}


beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'malus-prepare-'));
  keys = makeKeys();
  const a = mutable(makeAgreement(keys));
  a.tables[0].columns[0].normalize = ['trim', 'lowercase'];
  agreement = a;
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

describe('dataset prepare and load', () => {
  it('writes ciphertext, a signed manifest and the sealed key; the enclave loads exactly the normalized, pseudonymized rows', async () => {
    const prepared = await prepareDataset(params(write('conversions.csv', CONVERSIONS)));
    const signed = signedManifestSchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.manifest), 'utf8')));
    expect(signed.manifest.rows).toBe(3);
    expect(verifyManifest(signed, { agreement, lineage: [agreementHash(agreement)] })).toMatchObject({ ok: true });
    const ciphertext = readFileSync(join(prepared.dir, DATASET_FILES.ciphertext));
    expect(ciphertext.includes(Buffer.from('c-1'))).toBe(false);
    expect(ciphertext.includes(Buffer.from('PAR1'))).toBe(false);
    expect(statSync(join(prepared.dir, DATASET_FILES.dataKey)).mode & 0o777).toBe(0o600);

    const sealed = sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8')));
    const key = await openOwnerDataKey(sealed, keys.advertiser);
    const db = await openIngestDb();
    try {
      const table = agreement.tables[0]!;
      const loaded = await loadDataset({ connection: db.connection, source: createReadStream(join(prepared.dir, DATASET_FILES.ciphertext)), key, manifest: signed.manifest, table });
      expect(loaded.rows).toBe(3);
      const rows = (await db.connection.runAndReadAll('SELECT email_hash, campaign_id, CAST(order_date AS VARCHAR) d, CAST(order_value AS VARCHAR) v FROM conversions ORDER BY d')).getRows();
      const joinKey = deriveJoinKey(secret, agreement.id);
      expect(rows).toEqual([
        [pseudonym(joinKey, 'a1b2'), 'c-1', '2026-01-02', '10.50'],
        [pseudonym(joinKey, 'c3d4'), 'c-2', '2026-01-03', '7.25'],
        [pseudonym(joinKey, 'a1b2'), 'c,3', '2026-01-04', '0.00'],
      ]);
    } finally {
      db.close();
    }
  });

  it("re-checks the agreement's identity rules inside the enclave: a client that skipped them is caught at load", async () => {
    // A provider whose own tool skipped the duplicates check: the rows repeat an identity.
    const prepared = await prepareDataset(params(write('repeats.csv', CONVERSIONS)));
    const sealed = sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8')));
    const key = await openOwnerDataKey(sealed, keys.advertiser);
    const strict = { ...agreement.tables[0]!, duplicates: 'reject' as const };
    const db = await openIngestDb();
    try {
      const source = createReadStream(join(prepared.dir, DATASET_FILES.ciphertext));
      await expect(loadDataset({ connection: db.connection, source, key, manifest: prepared.signed.manifest, table: strict })).rejects.toThrow(
        "table conversions: the dataset breaks the agreement: rows repeat an identity, and the table's duplicates policy is reject",
      );
      // Nothing of it stays loaded.
      expect((await db.connection.runAndReadAll("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'conversions'")).getRows()).toEqual([[0n]]);
    } finally {
      db.close();
    }
  });

  it('refuses at load a dataset whose pseudonymized column holds anything but pseudonyms, counting distinct values', async () => {
    // A provider whose tool skipped pseudonymization: an e-mail address (twice), an upper-case and
    // a short hex string, next to one real pseudonym.
    const good = pseudonym(deriveJoinKey(secret, agreement.id), 'a1b2');
    const values = ['alice@example.com', 'alice@example.com', good.toUpperCase(), good.slice(1), good];
    const payload = await parquetOf(
      values.map((v, i) => `SELECT '${v}' AS email_hash, 'c-${i}' AS campaign_id, DATE '2026-01-02' AS order_date, CAST(1 AS DECIMAL(12,2)) AS order_value`).join(' UNION ALL '),
    );
    const made = await writePreparedDataset(join(dir, 'raw-identities'), { agreement, table: 'conversions', keys: keys.advertiser, payload, rows: values.length });
    const db = await openIngestDb();
    try {
      const source = createReadStream(made.paths.ciphertext);
      await expect(loadDataset({ connection: db.connection, source, key: made.dataKey, manifest: made.manifest.manifest, table: agreement.tables[0]! })).rejects.toThrow(
        'table conversions: the dataset breaks the agreement: values of email_hash are not pseudonyms (64 lower-case hex characters)',
      );
      expect((await db.connection.runAndReadAll("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'conversions'")).getRows()).toEqual([[0n]]);
    } finally {
      db.close();
    }
  });

  it('refuses at load a dataset whose columns only look like the agreement\'s when listed together', async () => {
    // One Parquet column named so that "name type" pairs joined by commas read as three columns.
    const id = pseudonym(deriveJoinKey(secret, agreement.id), 'a1b2');
    const payload = await parquetOf(`SELECT '${id}' AS email_hash, CAST(1 AS DECIMAL(12,2)) AS "campaign_id VARCHAR,order_date DATE,order_value"`);
    const made = await writePreparedDataset(join(dir, 'one-odd-column'), { agreement, table: 'conversions', keys: keys.advertiser, payload, rows: 1 });
    const db = await openIngestDb();
    try {
      const source = createReadStream(made.paths.ciphertext);
      await expect(loadDataset({ connection: db.connection, source, key: made.dataKey, manifest: made.manifest.manifest, table: agreement.tables[0]! })).rejects.toThrow(
        "table conversions: the dataset's columns (email_hash VARCHAR, campaign_id VARCHAR,order_date DATE,order_value DECIMAL(12,2)) are not the agreement's",
      );
      expect((await db.connection.runAndReadAll("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'conversions'")).getRows()).toEqual([[0n]]);
    } finally {
      db.close();
    }
  });

  it('streams through a named pipe where there is no tmpfs, with the same result', async () => {
    const prepared = await prepareDataset(params(write('piped.csv', CONVERSIONS), { memoryDir: join(dir, 'not-a-tmpfs') }));
    const key = await openOwnerDataKey(sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8'))), keys.advertiser);
    const db = await openIngestDb();
    try {
      const source = createReadStream(join(prepared.dir, DATASET_FILES.ciphertext));
      expect((await loadDataset({ connection: db.connection, source, key, manifest: prepared.signed.manifest, table: agreement.tables[0]! })).rows).toBe(3);
    } finally {
      db.close();
    }
  });

  it('writes the Parquet payload with the codec asked for, uncompressed unless told, through tmpfs and through a pipe', async () => {
    const input = write('codecs.csv', CONVERSIONS);
    const cases: { compression?: PayloadCompression; memoryDir?: string; expected: string }[] = [
      { expected: 'UNCOMPRESSED' },
      { compression: 'snappy', expected: 'SNAPPY' },
      { compression: 'zstd', expected: 'ZSTD' },
      { compression: 'zstd', memoryDir: join(dir, 'not-a-tmpfs'), expected: 'ZSTD' },
    ];
    for (const { compression, memoryDir, expected } of cases) {
      const prepared = await prepareDataset(params(input, { ...(compression === undefined ? {} : { compression }), ...(memoryDir === undefined ? {} : { memoryDir }) }));
      const key = await openOwnerDataKey(sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8'))), keys.advertiser);
      const pieces: Buffer[] = [];
      for await (const piece of openDataset(createReadStream(join(prepared.dir, DATASET_FILES.ciphertext)), key)) pieces.push(piece);
      const plain = join('/dev/shm', `malus-test-${randomBytes(4).toString('hex')}.parquet`);
      writeFileSync(plain, Buffer.concat(pieces), { mode: 0o600 });
      const db = await openIngestDb();
      try {
        const codecs = (await db.connection.runAndReadAll(`SELECT DISTINCT compression FROM parquet_metadata('${plain}')`)).getRows().map((row) => String(row[0]));
        expect(codecs).toEqual([expected]);
        const loaded = await loadDataset({ connection: db.connection, source: createReadStream(join(prepared.dir, DATASET_FILES.ciphertext)), key, manifest: prepared.signed.manifest, table: agreement.tables[0]! });
        expect(loaded.rows).toBe(3);
      } finally {
        db.close();
        rmSync(plain, { force: true });
      }
    }
    const refused = await prepareError(params(input, { compression: 'gzip); DROP TABLE x; --' as PayloadCompression }));
    expect(refused.code).toBe('usage');
    expect(refused.message).toBe('compression gzip); DROP TABLE x; --: expected one of uncompressed, snappy, zstd');
  });

  it('prepares a table whose columns are named like the internal ones (v, p)', async () => {
    const odd = mutable(agreement);
    odd.tables[0].columns[1].name = 'p';
    odd.tables[0].columns[2].name = 'v';
    odd.tables[0].analysisRule.dimensionColumns = ['p', 'v'];
    const input = write('vp.csv', CONVERSIONS.replace('campaign_id,order_date', 'p,v'));
    const prepared = await prepareDataset(params(input, { agreement: odd, agreementHash: agreementHash(odd) }));
    expect(prepared.signed.manifest.rows).toBe(3);
  });

  it('reports every bad value with its row and column, values of identity columns never quoted', async () => {
    const lines = ['email_hash,campaign_id,order_date,order_value', ',c-1,2026-01-02,1', 'x,c-2,yesterday,1', 'y,c-3,2026-01-02,abc'];
    const error = await prepareError(params(write('bad-values.csv', lines.join('\n'))));
    expect(error.describe()).toBe(
      [
        'the input does not satisfy table conversions: 3 problems',
        'row 1, column email_hash: is empty: the identity column must hold a value on every row',
        "row 2, column order_date: 'yesterday' is not a valid DATE",
        "row 3, column order_value: 'abc' is not a valid DECIMAL(12,2)",
      ].join('\n'),
    );
  });

  it('quotes the raw text of a normalized column that fails, though only its normalized value is staged', async () => {
    const normalized = mutable(agreement);
    normalized.tables[0].columns[1].normalize = ['trim', 'email'];
    const lines = ['email_hash,campaign_id,order_date,order_value', 'x, Ann@Example.com ,2026-01-02,1', 'y, not an address ,2026-01-02,1'];
    const error = await prepareError(params(write('bad-normalized.csv', lines.join('\n')), { agreement: normalized, agreementHash: agreementHash(normalized) }));
    expect(error.describe()).toBe(
      ['the input does not satisfy table conversions: 1 problem', "row 2, column campaign_id: ' not an address ' cannot be normalized with trim, email"].join('\n'),
    );
  });

  it('refuses a value the type cast would round or truncate, instead of storing another value', async () => {
    const lines = ['email_hash,campaign_id,order_date,order_value', 'x,c-1,2026-01-02,1.999', 'y,c-2,2026-01-02 23:59:00,1', 'z,c-3,2026-01-02 00:00:00,1e2', 'w,c-4,2026-01-02,10.5'];
    const error = await prepareError(params(write('lossy.csv', lines.join('\n'))));
    expect(error.describe()).toBe(
      [
        'the input does not satisfy table conversions: 2 problems',
        "row 1, column order_value: '1.999' has more digits after the point than DECIMAL(12,2) keeps (it would be rounded)",
        "row 2, column order_date: '2026-01-02 23:59:00' has a time of day, which a DATE would drop",
      ].join('\n'),
    );
    const integers = mutable(agreement);
    integers.tables[0].columns[3].type = 'INTEGER';
    const counted = ['email_hash,campaign_id,order_date,order_value', 'x,c-1,2026-01-02,7', 'y,c-2,2026-01-02,1.5'];
    const rounded = await prepareError(params(write('lossy-int.csv', counted.join('\n')), { agreement: integers, agreementHash: agreementHash(integers) }));
    expect(rounded.describe()).toBe(
      ['the input does not satisfy table conversions: 1 problem', "row 2, column order_value: '1.5' has more digits after the point than INTEGER keeps (it would be rounded)"].join('\n'),
    );
  });

  it('refuses digits a wider cast would round away too, at any precision, and takes trailing zeros', async () => {
    const cases: [string, string[], string[]][] = [
      ['INTEGER', ['1.9999999999999999999', '7.000', ' 8 '], ['1.9999999999999999999']],
      ['BIGINT', ['9223372036854775807.0000000000000000001', '-5.0'], ['9223372036854775807.0000000000000000001']],
      ['DECIMAL(38,2)', ['1.999', '1.990', '12.5'], ['1.999']],
      ['DECIMAL(36,2)', ['1.99999', '+3.10'], ['1.99999']],
      ['DECIMAL(12,2)', ['0.99999999999999999999999999999', '.25'], ['0.99999999999999999999999999999']],
    ];
    for (const [type, values, refused] of cases) {
      const typed = mutable(agreement);
      typed.tables[0].columns[3].type = type;
      const lines = ['email_hash,campaign_id,order_date,order_value', ...values.map((v, i) => `e${i},c,2026-01-02,${v}`)];
      const error = await prepareError(params(write(`digits-${type.replace(/\W/g, '')}.csv`, lines.join('\n')), { agreement: typed, agreementHash: agreementHash(typed) }));
      const rows = refused.map((v) => values.indexOf(v) + 1);
      expect(error.issues.map((issue) => issue.path), type).toEqual(rows.map((row) => `row ${row}, column order_value`));
      expect(error.issues[0]?.message, type).toContain(`has more digits after the point than ${type} keeps`);
    }
  });

  it('shows the first 20 problems and counts the rest', async () => {
    const lines = ['email_hash,campaign_id,order_date,order_value'];
    for (let i = 0; i < 25; i += 1) lines.push(`e${i},c,2026-01-01,bad`);
    const error = await prepareError(params(write('many.csv', lines.join('\n'))));
    expect(error.issues).toHaveLength(21);
    expect(error.message).toBe('the input does not satisfy table conversions: 25 problems');
    expect(error.issues[20]?.message).toBe('… and 5 more problems');
  });

  it('refuses a header that does not match the table', async () => {
    const error = await prepareError(params(write('header.csv', 'email,campaign_id,order_date,order_value,secret\nx,c,2026-01-01,1,s\n')));
    expect(error.describe()).toBe(
      [
        'the input header does not match the table: 3 problems',
        'column email_hash: is in the agreement but not in the input',
        'header field 1 is not a column of the agreement: remove that column (only agreed columns leave your machine)',
        'header field 5 is not a column of the agreement: remove that column (only agreed columns leave your machine)',
      ].join('\n'),
    );
  });

  it('never prints the first line of a file without a header read as one: its fields are named by position', async () => {
    const error = await prepareError(params(write('no-header.csv', 'alice@example.com,c-1,2026-01-02,10.50\nbob@example.com,c-2,2026-01-03,3.00\n')));
    const described = error.describe();
    expect(described).not.toContain('alice');
    expect(described).not.toContain('c-1');
    expect(described).not.toContain('10.50');
    expect(described.split('\n')[0]).toBe('the input header does not match the table (no field of the first line names a column: if the file has no header, give --no-header): 8 problems');
    expect(described).toContain('header field 1 is not a column of the agreement');
    const twice = await prepareError(params(write('no-header-twice.csv', 'x,c,c,1\n')));
    expect(twice.describe()).toBe('the input header does not match the table: 1 problem\nheader fields 2 and 3 have the same name');
  });

  it('refuses a header naming a column twice, and a path DuckDB would read as a glob', async () => {
    const twice = await prepareError(params(write('twice.csv', 'email_hash,campaign_id,order_date,order_value,Campaign_ID\nx,c,2026-01-01,1,d\n')));
    expect(twice.describe()).toBe('the input header does not match the table: 1 problem\nheader fields 2 and 5 have the same name');
    const glob = await prepareError(params(write('q[12].csv', CONVERSIONS)));
    expect(glob.message).toMatch(/contains a glob character/);
  });

  it('refuses a dataset id the server would not take, before reading anything', async () => {
    const error = await prepareError(params(write('id.csv', CONVERSIONS), { dataset: 'My_Data' }));
    expect(error.message).toBe('dataset id My_Data: expected 3 to 64 characters: a-z, 0-9, ".", "_", "-", starting with a letter or digit');
  });

  it('refuses an empty file and a header without rows', async () => {
    expect((await prepareError(params(write('empty.csv', '')))).message).toMatch(/^the input .*empty\.csv is empty$/);
    expect((await prepareError(params(write('header-only.csv', 'email_hash,campaign_id,order_date,order_value\n')))).message).toBe('the input has no data rows');
    // Without its line end, the header is still the whole first line, not an over-long one.
    expect((await prepareError(params(write('header-no-newline.csv', 'email_hash,campaign_id,order_date,order_value')))).message).toBe('the input has no data rows');
  });

  it('reads a header longer than the first 64 KiB it probes', async () => {
    // Names match ignoring surrounding blanks: the last one carries 100,000 of them.
    const text = CONVERSIONS.replace('order_value', `order_value${' '.repeat(100_000)}`);
    const prepared = await prepareDataset(params(write('long-header.csv', text)));
    expect(prepared.signed.manifest.rows).toBe(3);
  });

  it('refuses rows with too few or too many columns, naming the line', async () => {
    const text = 'email_hash,campaign_id,order_date,order_value\na,c,2026-01-01,1\nb,c\nc,c,2026-01-01,1,9\n';
    expect((await prepareError(params(write('columns.csv', text)))).describe()).toBe(
      ['the input has malformed rows: 2 problems', 'line 3: too few columns (the table has 4)', 'line 4: too many columns (the table has 4)'].join('\n'),
    );
  });

  it('refuses input that is not UTF-8, and a 50 MB single line', async () => {
    const latin = Buffer.concat([Buffer.from('email_hash,campaign_id,order_date,order_value\na,caf'), Buffer.from([0xe9]), Buffer.from(',2026-01-01,1\n')]);
    expect((await prepareError(params(write('latin1.csv', latin)))).describe()).toBe('the input has malformed rows: 1 problem\nline 2: is not valid UTF-8');
    const long = `email_hash,campaign_id,order_date,order_value\na,${'x'.repeat(50 * 1024 * 1024)},2026-01-01,1\n`;
    expect((await prepareError(params(write('long.csv', long)))).describe()).toBe('the input has malformed rows: 1 problem\nline 2: is longer than 8388608 bytes');
  });

  /** The rows a prepared dataset decrypts to, in input order. */
  async function rowsOf(prepared: { dir: string; signed: { manifest: DatasetManifest } }): Promise<unknown[][]> {
    const key = await openOwnerDataKey(sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8'))), keys.advertiser);
    const db = await openIngestDb();
    try {
      const source = createReadStream(join(prepared.dir, DATASET_FILES.ciphertext));
      await loadDataset({ connection: db.connection, source, key, manifest: prepared.signed.manifest, table: agreement.tables[0]!, as: 'loaded' });
      return (await db.connection.runAndReadAll('SELECT * FROM loaded ORDER BY rowid')).getRowsJson();
    } finally {
      db.close();
    }
  }

  it('reads every CSV dialect option to the same rows: no header, a null string, an escape character, Latin-1 and UTF-16', async () => {
    const lines = ['email_hash,campaign_id,order_date,order_value', ' A1B2 ,café,2026-01-02,', 'c3d4,"say ""hi""",2026-01-03,7.25'];
    const canonical = lines.join('\n');
    const expected = await rowsOf(await prepareDataset(params(write('dialect-canonical.csv', canonical))));
    expect(expected.map((row) => row.slice(1))).toEqual([
      ['café', '2026-01-02', null],
      ['say "hi"', '2026-01-03', '7.25'],
    ]);
    const variants: [string, string | Buffer, CsvDialect][] = [
      ['no header', lines.slice(1).join('\n'), { header: false }],
      ['a null string', canonical.replace('2026-01-02,', '2026-01-02,NA'), { nullString: 'NA' }],
      ['an escape character', canonical.replace('"say ""hi"""', String.raw`"say \"hi\""`), { escape: '\\' }],
      ['Latin-1', Buffer.from(canonical, 'latin1'), { encoding: 'latin-1' }],
      ['UTF-16', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(canonical, 'utf16le')]), { encoding: 'utf-16' }],
    ];
    for (const [name, text, dialect] of variants) {
      const prepared = await prepareDataset(params(write(`dialect-${name.replaceAll(' ', '-')}.csv`, text), { dialect }));
      expect(await rowsOf(prepared), name).toEqual(expected);
    }
  });

  it("reads a TIMESTAMP with an offset or a zone as the UTC instant it names, whatever the machine's zone", async () => {
    const stamped = mutable(agreement);
    stamped.tables[0].columns[2].type = 'TIMESTAMP';
    const values = [
      ['2026-01-02 10:00:00', '2026-01-02 10:00:00'],
      ['2026-01-02T10:00:00+02:00', '2026-01-02 08:00:00'],
      ['2026-01-02 10:00:00-0530', '2026-01-02 15:30:00'],
      ['2026-01-02T10:00:00+02', '2026-01-02 08:00:00'],
      ['2026-1-2 1:00:00-05', '2026-01-02 06:00:00'],
      ['2026-01-02 10:00:00Z', '2026-01-02 10:00:00'],
      ['2026-01-02 10:00:00.25', '2026-01-02 10:00:00.25'],
      ['2026-01-02 10:00:00 Europe/Paris', '2026-01-02 09:00:00'],
      ['2026-07-02 10:00:00 Europe/Paris', '2026-07-02 08:00:00'],
      ['2026-01-02', '2026-01-02 00:00:00'],
    ];
    const csv = ['email_hash,campaign_id,order_date,order_value', ...values.map(([text], i) => `p${i},c-1,${text},1`)].join('\n');
    const zone = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata';
    try {
      const prepared = await prepareDataset({ ...params(write('stamped.csv', csv)), agreement: stamped, agreementHash: agreementHash(stamped) });
      const key = await openOwnerDataKey(sealedDataKeySchema.parse(JSON.parse(readFileSync(join(prepared.dir, DATASET_FILES.dataKey), 'utf8'))), keys.advertiser);
      const db = await openIngestDb();
      try {
        const source = createReadStream(join(prepared.dir, DATASET_FILES.ciphertext));
        await loadDataset({ connection: db.connection, source, key, manifest: prepared.signed.manifest, table: stamped.tables[0], as: 'stamped' });
        const loaded = (await db.connection.runAndReadAll('SELECT CAST(order_date AS VARCHAR) FROM stamped ORDER BY rowid')).getRows().map((row) => row[0]);
        expect(loaded).toEqual(values.map(([, utc]) => utc));
      } finally {
        db.close();
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
    const bad = await prepareError({ ...params(write('stamped-bad.csv', 'email_hash,campaign_id,order_date,order_value\np,c-1,2026-01-02 10:00:00 Mars/Olympus,1')), agreement: stamped, agreementHash: agreementHash(stamped) });
    expect(bad.describe()).toBe("the input does not satisfy table conversions: 1 problem\nrow 1, column order_date: '2026-01-02 10:00:00 Mars/Olympus' is not a valid TIMESTAMP");
    const fine = await prepareError({ ...params(write('stamped-ns.csv', 'email_hash,campaign_id,order_date,order_value\np,c-1,2026-01-02 10:00:00.1234567+02:00,1\nq,c-1,2026-01-02 10:00:00.123456+02:00,1')), agreement: stamped, agreementHash: agreementHash(stamped) });
    expect(fine.describe()).toBe("the input does not satisfy table conversions: 1 problem\nrow 1, column order_date: '2026-01-02 10:00:00.1234567+02:00' has digits beyond the microsecond, which TIMESTAMP would drop");
  });

  it('refuses a quote that is never closed, by line', async () => {
    const error = await prepareError(params(write('unclosed.csv', 'email_hash,campaign_id,order_date,order_value\nx,"c-1,2026-01-02,1\ny,c-2,2026-01-02,1\n')));
    expect(error.describe()).toBe('the input has malformed rows: 1 problem\nline 2: a quote is never closed, or a quoted field is followed by other characters');
  });

  it('names the first line of a JSON-lines input that is not a JSON object', async () => {
    const row = (n: number) => JSON.stringify({ email_hash: `e${n}`, campaign_id: 'c', order_date: '2026-01-01', order_value: '1' });
    const broken = [row(1), '', row(2), '{"email_hash": oops}', row(3)].join('\n');
    const error = await prepareError(params(write('broken.jsonl', broken)));
    expect(error.message).toBe('line 4 is not a JSON object (the input must hold one per line)');
    expect(error.code).toBe('invalid-input');
  });

  it('refuses a JSON object that lacks one of the table\'s keys, by row and column, and keeps an explicit null', async () => {
    const full = { email_hash: 'e1', campaign_id: 'c', order_date: '2026-01-01', order_value: '1' };
    const without = (...keys: string[]) => Object.fromEntries(Object.entries(full).filter(([key]) => !keys.includes(key)));
    const withoutValue = without('order_value');
    const withoutCampaign = without('order_value', 'campaign_id');
    const lines = [full, withoutValue, { ...full, email_hash: 'e3', order_value: null }, withoutCampaign].map((o) => JSON.stringify(o));
    const error = await prepareError(params(write('missing-key.jsonl', lines.join('\n'))));
    expect(error.describe()).toBe(
      'the input has malformed rows: 3 problems\n' +
        'row 2, column order_value: is missing from the JSON object (write null for an empty value)\n' +
        'row 4, column campaign_id: is missing from the JSON object (write null for an empty value)\n' +
        'row 4, column order_value: is missing from the JSON object (write null for an empty value)',
    );
    const explicitNull = [full, { ...full, email_hash: 'e2', order_value: null }].map((o) => JSON.stringify(o));
    expect((await prepareDataset(params(write('explicit-null.jsonl', explicitNull.join('\n'))))).signed.manifest.rows).toBe(2);
  });

  it("checks every JSON object, not only DuckDB's sample: a key the table lacks and a value of another type, by row and column", async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ email_hash: `e${i}`, campaign_id: 'c', order_date: '2026-01-01', order_value: i % 100 }));
    const late = [...many(25_000), JSON.stringify({ email_hash: 'x', campaign_id: 'c', order_date: '2026-01-01', order_value: 1, coupon: 'SAVE10' })];
    expect((await prepareError(params(write('late-key.jsonl', late.join('\n'))))).describe()).toBe(
      'the input has malformed rows: 1 problem\nrow 25001, column coupon: is in the input but not in the agreement: remove it (only agreed columns leave your machine)',
    );
    // A key in DuckDB's sample is named too (a JSON key is a name, never data).
    const early = [JSON.stringify({ email_hash: 'x', campaign_id: 'c', order_date: '2026-01-01', order_value: 1, coupon: 'SAVE10' }), ...many(3)];
    expect((await prepareError(params(write('early-key.jsonl', early.join('\n'))))).describe()).toBe(
      'the input header does not match the table: 1 problem\ncolumn coupon: is in the input but not in the agreement: remove it (only agreed columns leave your machine)',
    );
    const typed = [...many(25_000), JSON.stringify({ email_hash: 'x', campaign_id: 'c', order_date: '2026-01-01', order_value: 'two' })];
    expect((await prepareError(params(write('late-type.jsonl', typed.join('\n'))))).describe()).toBe(
      "the input does not satisfy table conversions: 1 problem\nrow 25001, column order_value: 'two' is not a valid DECIMAL(12,2)",
    );
  });

  it('reads another dialect, Parquet and JSON lines', async () => {
    const semicolon = CONVERSIONS.replaceAll(',', ';').replace('"c;3"', "'c,3'");
    const fromCsv = await prepareDataset(params(write('semi.csv', semicolon), { dialect: { delimiter: ';', quote: "'" } }));
    expect(fromCsv.signed.manifest.rows).toBe(3);
    const db = await openIngestDb();
    const parquet = join(dir, 'conv.parquet');
    const jsonl = join(dir, 'conv.jsonl');
    await db.connection.run(`COPY (SELECT * FROM read_csv('${write('c.csv', CONVERSIONS)}', all_varchar=true)) TO '${parquet}' (FORMAT parquet)`);
    await db.connection.run(`COPY (SELECT * FROM read_csv('${join(dir, 'c.csv')}', all_varchar=true)) TO '${jsonl}' (FORMAT json)`);
    db.close();
    expect((await prepareDataset(params(parquet))).signed.manifest.source).toBe('parquet');
    expect((await prepareDataset(params(jsonl))).signed.manifest.rows).toBe(3);
  });

  it('refuses a table of another owner, a missing join secret and a secret the agreement does not commit to', async () => {
    const input = write('c2.csv', CONVERSIONS);
    expect((await prepareError(params(input, { keys: keys.publisher }))).code).toBe('forbidden');
    expect((await prepareError(params(input, { joinSecret: undefined }))).message).toMatch(/pseudonymizes email_hash/);
    const committed = mutable(agreement);
    committed.joinKey = { commitment: joinKeyCommitment(deriveJoinKey(secret, agreement.id), agreement.id) };
    await expect(prepareDataset(params(input, { agreement: committed, agreementHash: agreementHash(committed) }))).resolves.toBeDefined();
    const wrong = await prepareError(params(input, { agreement: committed, agreementHash: agreementHash(committed), joinSecret: randomBytes(32) }));
    expect(wrong.message).toMatch(/not the one the agreement commits to/);
  });

  it('rejects duplicate identities when the table says so, and enforces row limits', async () => {
    const strict = mutable(agreement);
    strict.tables[0].duplicates = 'reject';
    strict.tables[0].rows = { max: 2 };
    const error = await prepareError(params(write('dups.csv', CONVERSIONS), { agreement: strict, agreementHash: agreementHash(strict) }));
    expect(error.describe()).toBe(
      [
        'the input does not satisfy table conversions: 2 problems',
        'row 1, column email_hash: repeats the identity of row 3 (the table\'s duplicates policy is reject)',
        'the input has 3 rows; the agreement allows at most 2',
      ].join('\n'),
    );
  });
});
