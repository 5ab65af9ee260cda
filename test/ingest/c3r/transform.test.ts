import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MalusError } from '../../../src/errors/index.js';
import {
  c3rDecryptFile,
  c3rEncryptFile,
  deriveC3rKeys,
  fingerprintC3rCell,
  parseC3rSchema,
  unsealC3rCell,
  type C3rSchema,
  type C3rSettings,
} from '../../../src/ingest/c3r/index.js';

const V = '/work/shared/vectors/c3r';
const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const ID = '00000000-1111-2222-3333-444444444444';
const keys = deriveC3rKeys(SECRET, ID);
const sampleSchema = parseC3rSchema(readFileSync(`${V}/config_sample.json`, 'utf8'));
const SAMPLE_SETTINGS: Partial<C3rSettings> = { allowCleartext: true, allowDuplicates: true };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'malus-c3r-transform-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
const fresh = (suffix: string): string => join(dir, `f${++counter}${suffix}`);

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}

async function encrypt(input: string, schema: C3rSchema, settings: Partial<C3rSettings>, extra: Record<string, unknown> = {}): Promise<string> {
  const output = fresh(input.endsWith('.parquet') ? '.parquet' : '.csv');
  await c3rEncryptFile({ input, output, schema, settings, secret: SECRET, collaborationId: ID, ...extra });
  return output;
}

async function decrypt(input: string, extra: Record<string, unknown> = {}): Promise<string> {
  const output = fresh(input.endsWith('.parquet') ? '.parquet' : '.csv');
  await c3rDecryptFile({ input, output, secret: SECRET, collaborationId: ID, ...extra });
  return output;
}

async function failure(work: Promise<unknown>): Promise<MalusError> {
  try {
    await work;
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    return error as MalusError;
  }
  throw new Error('expected a failure');
}

async function query(sql: string): Promise<{ names: string[]; types: string[]; rows: unknown[][] }> {
  const instance = await DuckDBInstance.create(':memory:', { temp_directory: '' });
  const connection = await instance.connect();
  try {
    const result = await connection.runAndReadAll(sql);
    return { names: result.columnNames(), types: result.columnTypes().map((t) => t.toString()), rows: result.getRowsJS() };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const NULL_SCHEMA = parseC3rSchema({
  headerRow: true,
  columns: [
    { sourceHeader: 'cleartext', type: 'cleartext' },
    { sourceHeader: 'sealed_none', targetHeader: 'sealed_none', type: 'sealed', pad: { type: 'none' } },
    { sourceHeader: 'sealed_max', targetHeader: 'sealed_max', type: 'sealed', pad: { type: 'max', length: 4 } },
    { sourceHeader: 'sealed_fixed', targetHeader: 'sealed_fixed', type: 'sealed', pad: { type: 'fixed', length: 8 } },
    { sourceHeader: 'fingerprint_1', targetHeader: 'fingerprint_1', type: 'fingerprint' },
    { sourceHeader: 'fingerprint_2', targetHeader: 'fingerprint_2', type: 'fingerprint' },
  ],
});

describe('encrypting CSV', () => {
  it('round-trips the sample, and writes the fingerprints C3R wrote', async () => {
    const input = `${V}/data_sample_without_quotes.csv`;
    const output = fresh('.csv');
    const summary = await c3rEncryptFile({ input, output, schema: sampleSchema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID });
    expect(summary).toEqual({ format: 'csv', output, dryRun: false, rows: 7, columns: 11, sealedColumns: 5, fingerprintColumns: 2, cleartextColumns: 4 });
    const encrypted = lines(output);
    const c3r = lines(`${V}/marshalled_data_sample.csv`);
    expect(encrypted[0]).toBe(c3r[0]);
    for (const row of encrypted.slice(1)) {
      const cells = row.split(',');
      const theirs = c3r.find((l) => l.startsWith(`${cells[0] ?? ''},${cells[1] ?? ''},`))?.split(',') ?? [];
      // Same cleartext and fingerprint columns as C3R's file; sealed cells differ (random nonces).
      for (const i of [0, 1, 4, 5, 7, 9]) expect(cells[i]).toBe(theirs[i]);
      for (const i of [2, 3, 6, 8, 10]) {
        expect(cells[i]?.startsWith('02:enc:')).toBe(true);
        expect(cells[i]).not.toBe(theirs[i]);
        // A sealed cell is as long as C3R's: the padding hides the value's length the same way.
        expect(cells[i]?.length).toBe(theirs[i]?.length);
      }
    }
    const decrypted = lines(await decrypt(output));
    const original = lines(await decrypt(`${V}/marshalled_data_sample.csv`));
    expect(decrypted[0]).toBe(original[0]);
    expect(decrypted.slice(1).sort()).toEqual(original.slice(1).sort());
  });

  it('reads quoted and unquoted cleartext alike', async () => {
    const a = lines(await decrypt(await encrypt(`${V}/data_sample_with_quotes.csv`, sampleSchema, SAMPLE_SETTINGS)));
    const b = lines(await decrypt(await encrypt(`${V}/data_sample_without_quotes.csv`, sampleSchema, SAMPLE_SETTINGS)));
    expect(a.sort()).toEqual(b.sort());
  });

  it('shuffles the rows', async () => {
    const input = fresh('.csv');
    writeFileSync(input, `n\n${Array.from({ length: 200 }, (_, i) => String(i)).join('\n')}\n`);
    const schema = parseC3rSchema({ headerRow: true, columns: [{ sourceHeader: 'n', targetHeader: 'n', type: 'cleartext' }] });
    const out = lines(await encrypt(input, schema, { allowCleartext: true }));
    expect(out.slice(1)).not.toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
    expect(out.slice(1).sort()).toEqual(Array.from({ length: 200 }, (_, i) => String(i)).sort());
  });

  it('refuses repeated fingerprint values unless allowDuplicates, naming the lines', async () => {
    const error = await failure(encrypt(`${V}/data_sample_without_quotes.csv`, sampleSchema, { allowCleartext: true }));
    expect(error.message).toBe(
      'fingerprint column `state` would hold the same value twice (line 5 and line 6) but the collaboration does not allow duplicates (pass --allowDuplicates if it does)',
    );
  });

  it('refuses a value with no room in its fixed pad, naming the first such line, and writes nothing', async () => {
    const schema = parseC3rSchema({
      headerRow: true,
      columns: [{ sourceHeader: 'Title', type: 'sealed', pad: { type: 'fixed', length: 4 } }],
    });
    const output = fresh('.csv');
    const error = await failure(
      c3rEncryptFile({ input: `${V}/data_sample_without_quotes.csv`, output, schema, secret: SECRET, collaborationId: ID }),
    );
    expect(error.message).toBe(
      `${V}/data_sample_without_quotes.csv line 6, column \`title_sealed\`: the value is 5 bytes, longer than the 4 bytes the column's pad fills to (no room for padding)`,
    );
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses an existing output unless --overwrite, and the output being the input', async () => {
    const output = fresh('.csv');
    writeFileSync(output, 'keep me\n');
    const run = (overwrite: boolean) =>
      c3rEncryptFile({ input: `${V}/data_sample_without_quotes.csv`, output, schema: sampleSchema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID, overwrite });
    expect((await failure(run(false))).message).toBe(`${output} already exists; pass --overwrite to replace it`);
    expect(readFileSync(output, 'utf8')).toBe('keep me\n');
    await run(true);
    expect(lines(output)).toHaveLength(8);
    const input = fresh('.csv');
    copyFileSync(`${V}/data_sample_without_quotes.csv`, input);
    expect(
      (await failure(c3rEncryptFile({ input, output: input, schema: sampleSchema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID, overwrite: true })))
        .message,
    ).toBe(`the output ${input} is the input file; choose another --output`);
  });

  it('checks everything but reads and writes nothing on a dry run', async () => {
    const output = fresh('.csv');
    const summary = await c3rEncryptFile({
      input: `${V}/data_sample_without_quotes.csv`, output, schema: sampleSchema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID, dryRun: true,
    });
    expect(summary).toMatchObject({ dryRun: true, rows: 0, columns: 11 });
    expect(existsSync(output)).toBe(false);
    const refused = await failure(
      c3rEncryptFile({ input: `${V}/data_sample_without_quotes.csv`, output, schema: sampleSchema, secret: SECRET, collaborationId: ID, dryRun: true }),
    );
    expect(refused.message).toMatch(/^the schema has cleartext columns/);
  });

  it("takes the schema file's JSON as well as a parsed schema", async () => {
    const text = readFileSync(`${V}/config_sample.json`, 'utf8');
    for (const schema of [text, JSON.parse(text) as unknown]) {
      const output = fresh('.csv');
      await c3rEncryptFile({ input: `${V}/data_sample_without_quotes.csv`, output, schema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID });
      expect(lines(output)[0]).toBe(lines(`${V}/marshalled_data_sample.csv`)[0]);
    }
    const error = await failure(
      c3rEncryptFile({ input: `${V}/data_sample_without_quotes.csv`, output: fresh('.csv'), schema: { headerRow: 'yes' }, secret: SECRET, collaborationId: ID }),
    );
    expect(error.message).toBe('the schema is not a valid C3R schema');
    expect(error.issues.map((i) => i.path)).toEqual(['headerRow', 'columns']);
  });

  it('names source columns missing from the input', async () => {
    const schema = parseC3rSchema({ headerRow: true, columns: [{ sourceHeader: 'Email', type: 'fingerprint' }, { sourceHeader: 'zip', type: 'fingerprint' }] });
    expect((await failure(encrypt(`${V}/data_sample_without_quotes.csv`, schema, {}))).message).toBe(
      `the schema's source column(s) \`email\`, \`zip\` are not in ${V}/data_sample_without_quotes.csv's header row`,
    );
  });

  it('encrypts a file without a header row under a positional schema', async () => {
    const input = fresh('.csv');
    writeFileSync(input, 'alice,VA\nbob,MD\n');
    const schema = parseC3rSchema({
      headerRow: false,
      columns: [[{ targetHeader: 'name', type: 'sealed', pad: { type: 'none' } }], [{ targetHeader: 'state', type: 'fingerprint' }]],
    });
    const encrypted = await encrypt(input, schema, {});
    const out = lines(encrypted);
    expect(out[0]).toBe('name,state');
    const va = fingerprintC3rCell('VA', { keys, columnLabel: 'state' }) ?? '';
    const md = fingerprintC3rCell('MD', { keys, columnLabel: 'state' }) ?? '';
    expect(out.slice(1).map((l) => l.split(',')[1]).sort()).toEqual([va, md].sort());
    expect(lines(await decrypt(encrypted)).sort()).toEqual([`alice,${va}`, `bob,${md}`, 'name,state']);
    const wide = fresh('.csv');
    writeFileSync(wide, 'alice,VA,1\n');
    expect((await failure(encrypt(wide, schema, {}))).message).toBe(`the positional schema describes 2 input columns but ${wide} has 3`);
  });
});

describe('malformed CSV input gives a clear error naming the line', () => {
  const cases = [
    ['one_row_too_few_columns.csv', 'line 2: expected 9 columns (as in the header row) but found 6'],
    ['one_row_too_many_columns.csv', 'line 2: expected 9 columns (as in the header row) but found 15'],
    ['nonUtf8Encoding.csv', 'line 2: not valid UTF-8 (C3R reads CSV files as UTF-8)'],
  ] as const;
  for (const [file, message] of cases) {
    it(file, async () => {
      const output = fresh('.csv');
      const encrypting = await failure(
        c3rEncryptFile({ input: `${V}/${file}`, output, schema: sampleSchema, settings: SAMPLE_SETTINGS, secret: SECRET, collaborationId: ID }),
      );
      expect(encrypting.code).toBe('invalid-input');
      expect(encrypting.message).toBe(`${V}/${file} ${message}`);
      const decrypting = await failure(c3rDecryptFile({ input: `${V}/${file}`, output, secret: SECRET, collaborationId: ID }));
      expect(decrypting.message).toBe(`${V}/${file} ${message}`);
      expect(existsSync(output)).toBe(false);
    });
  }

  it('an unclosed quote, and a row that is too long further down', async () => {
    const unclosed = fresh('.csv');
    writeFileSync(unclosed, 'a,b\n1,2\n"3,4\n5,6\n');
    expect((await failure(decrypt(unclosed))).message).toBe(`${unclosed} line 3: a quoted value is never closed`);
    const long = fresh('.csv');
    writeFileSync(long, 'a,b\n"x\ny",2\n3,4,5\n');
    expect((await failure(decrypt(long))).message).toBe(`${long} line 4: expected 2 columns (as in the header row) but found 3`);
  });
});

describe('NULLs, as C3R treats them (null5by6.csv and empty5by6.csv)', () => {
  for (const file of ['null5by6.csv', 'empty5by6.csv']) {
    it(`${file}: several NULLs in a fingerprint column are duplicates unless preserveNulls or allowDuplicates`, async () => {
      const error = await failure(encrypt(`${V}/${file}`, NULL_SCHEMA, { allowCleartext: true }));
      expect(error.message).toBe(
        'fingerprint column `fingerprint_1` has more than one NULL (line 2 and line 3); unless NULLs are preserved each is a value, and the collaboration does not allow duplicates (pass --allowDuplicates or --preserveNulls if it does)',
      );
    });

    it(`${file}: with preserveNulls every output cell is NULL`, async () => {
      const output = await encrypt(`${V}/${file}`, NULL_SCHEMA, { allowCleartext: true, preserveNulls: true });
      expect(readFileSync(output, 'utf8')).toBe(`cleartext,sealed_none,sealed_max,sealed_fixed,fingerprint_1,fingerprint_2\n${',,,,,\n'.repeat(5)}`);
      expect(readFileSync(await decrypt(output), 'utf8')).toBe(readFileSync(output, 'utf8'));
    });

    it(`${file}: without preserveNulls, NULLs are sealed (padded) and fingerprinted at random`, async () => {
      const output = await encrypt(`${V}/${file}`, NULL_SCHEMA, { allowCleartext: true, allowDuplicates: true });
      const rows = lines(output).slice(1).map((l) => l.split(','));
      expect(rows).toHaveLength(5);
      for (const row of rows) {
        expect(row[0]).toBe('');
        for (const i of [1, 2, 3]) expect(unsealC3rCell(row[i] ?? '', keys)).toBeNull();
        // 44 bytes of nonce and IV, the NULL descriptor, the pad, 2 length bytes and the 16-byte tag.
        expect(Buffer.from((row[1] ?? '').slice(7), 'base64')).toHaveLength(44 + 1 + 0 + 2 + 16);
        expect(Buffer.from((row[2] ?? '').slice(7), 'base64')).toHaveLength(44 + 1 + 4 + 2 + 16);
        expect(Buffer.from((row[3] ?? '').slice(7), 'base64')).toHaveLength(44 + 1 + 8 + 2 + 16);
      }
      expect(new Set(rows.flatMap((r) => [r[4], r[5]])).size).toBe(10);
      expect(readFileSync(await decrypt(output), 'utf8')).toBe(
        `cleartext,sealed_none,sealed_max,sealed_fixed,fingerprint_1,fingerprint_2\n${rows.map((r) => `,,,,${r[4] ?? ''},${r[5] ?? ''}\n`).join('')}`,
      );
    });
  }

  it('--csvInputNULLValue `""` makes blanks empty strings, and a blank one makes "" one', async () => {
    for (const [file, nullValue] of [['null5by6.csv', '""'], ['empty5by6.csv', ' ']] as const) {
      const error = await failure(encrypt(`${V}/${file}`, NULL_SCHEMA, { allowCleartext: true }, { csvInputNullValue: nullValue }));
      expect(error.message).toBe(
        'fingerprint column `fingerprint_1` would hold the same value twice (line 2 and line 3) but the collaboration does not allow duplicates (pass --allowDuplicates if it does)',
      );
      const output = await encrypt(`${V}/${file}`, NULL_SCHEMA, { allowCleartext: true, allowDuplicates: true }, { csvInputNullValue: nullValue });
      const rows = lines(output).slice(1).map((l) => l.split(','));
      for (const row of rows) {
        expect(row[0]).toBe('""');
        expect(unsealC3rCell(row[1] ?? '', keys)).toEqual({ type: 'string', value: '' });
        expect(row[4]).toBe(fingerprintC3rCell('', { keys, columnLabel: 'fingerprint_1' }));
      }
      // Decrypting reads the cleartext `""` back as NULL (C3R's default input NULL), written as nothing.
      expect(lines(await decrypt(output)).slice(1)).toEqual(rows.map((r) => `,"","","",${r[4] ?? ''},${r[5] ?? ''}`));
    }
  });

  it('a custom --csvInputNULLValue is NULL quoted or not; unquoted values are trimmed, quoted ones are not', async () => {
    const input = fresh('.csv');
    writeFileSync(input, 'a,b\nNA,"NA"\n x ," y "\n,""\n');
    const schema = parseC3rSchema({
      headerRow: true,
      columns: [{ sourceHeader: 'a', targetHeader: 'a', type: 'sealed', pad: { type: 'none' } }, { sourceHeader: 'b', targetHeader: 'b', type: 'sealed', pad: { type: 'none' } }],
    });
    const opened = async (options: Record<string, unknown>): Promise<string[]> =>
      lines(await encrypt(input, schema, {}, options))
        .slice(1)
        .map((l) => l.split(',').map((cell) => {
          const value = unsealC3rCell(cell, keys);
          return value === null ? null : String(value.value);
        }))
        .map((row) => JSON.stringify(row))
        .sort();
    const expected = (rows: (string | null)[][]): string[] => rows.map((row) => JSON.stringify(row)).sort();
    expect(await opened({ csvInputNullValue: 'NA' })).toEqual(expected([['', ''], ['x', ' y '], [null, null]]));
    expect(await opened({})).toEqual(expected([['NA', 'NA'], ['x', ' y '], [null, null]]));
  });

  it('quotes cleartext that starts or ends with a control character, so that it reads back whole', async () => {
    const input = fresh('.csv');
    writeFileSync(input, 'a,b\n"\u000bx","y\u0001"\n"\u0000","z"\n');
    const schema = parseC3rSchema({
      headerRow: true,
      columns: [{ sourceHeader: 'a', type: 'cleartext' }, { sourceHeader: 'b', targetHeader: 'b', type: 'sealed', pad: { type: 'none' } }],
    });
    const output = await encrypt(input, schema, { allowCleartext: true });
    const encrypted = lines(output).slice(1).map((l) => l.split(',')[0]).sort();
    expect(encrypted).toEqual(['"\u0000"', '"\u000bx"']);
    const back = lines(await decrypt(output)).slice(1).sort();
    expect(back).toEqual(['"\u0000",z', '"\u000bx","y\u0001"']);
  });

  it('--csvOutputNULLValue says how NULL is written', async () => {
    const output = await encrypt(`${V}/null5by6.csv`, NULL_SCHEMA, { allowCleartext: true, preserveNulls: true }, { csvOutputNullValue: 'NULL' });
    expect(lines(output)[1]).toBe('NULL,NULL,NULL,NULL,NULL,NULL');
    expect(lines(await decrypt(output, { csvInputNullValue: 'NULL', csvOutputNullValue: '\\N' }))[1]).toBe('\\N,\\N,\\N,\\N,\\N,\\N');
    // A replacement already in quotes is written as it is, as C3R's writer does, and reads back as NULL.
    const quoted = await encrypt(`${V}/null5by6.csv`, NULL_SCHEMA, { allowCleartext: true, preserveNulls: true }, { csvOutputNullValue: '""' });
    expect(lines(quoted)[1]).toBe('"","","","","",""');
    expect(lines(await decrypt(quoted, { csvInputNullValue: '""', csvOutputNullValue: 'NULL' }))[1]).toBe('NULL,NULL,NULL,NULL,NULL,NULL');
  });

  it('refuses a line of only white space by name (C3R skips it; DuckDB would read it as a row)', async () => {
    const input = fresh('.csv');
    writeFileSync(input, 'a,b\nx,1\n  \t \ny,2\n');
    const schema = parseC3rSchema({ headerRow: true, columns: [{ sourceHeader: 'a', type: 'cleartext' }, { sourceHeader: 'b', type: 'cleartext' }] });
    expect((await failure(encrypt(input, schema, { allowCleartext: true }))).message).toBe(`${input} line 3: the line holds only white space; remove it (C3R would skip it)`);
  });
});

describe('decrypting refuses what it cannot open, and writes nothing', () => {
  const AUTH = 'the sealed value does not authenticate: the shared secret or the collaboration id is wrong, or the value was altered';

  it('the wrong secret or the wrong collaboration id', async () => {
    for (const [secret, collaborationId] of [[Buffer.alloc(32, 1), ID], [SECRET, '00000000-1111-2222-3333-444444444445']] as const) {
      const output = fresh('.csv');
      const error = await failure(c3rDecryptFile({ input: `${V}/marshalled_data_sample.csv`, output, secret, collaborationId }));
      expect(error.message).toBe(`${V}/marshalled_data_sample.csv line 2, column \`address\`: ${AUTH}`);
      expect(existsSync(output)).toBe(false);
    }
  });

  it('a tampered cell, a truncated one, and one of another format version', async () => {
    const original = readFileSync(`${V}/marshalled_data_sample.csv`, 'utf8').split('\n');
    const edit = (line: number, change: (cells: string[]) => void): string => {
      const copy = [...original];
      const cells = (copy[line - 1] ?? '').split(',');
      change(cells);
      copy[line - 1] = cells.join(',');
      const path = fresh('.csv');
      writeFileSync(path, copy.join('\n'));
      return path;
    };
    const flipped = edit(4, (cells) => {
      const body = Buffer.from((cells[3] ?? '').slice(7), 'base64');
      body[60] = (body[60] ?? 0) ^ 0x80;
      cells[3] = `02:enc:${body.toString('base64')}`;
    });
    expect((await failure(decrypt(flipped))).message).toBe(`${flipped} line 4, column \`city\`: ${AUTH}`);
    const truncated = edit(3, (cells) => {
      cells[6] = (cells[6] ?? '').slice(0, 7 + 52);
    });
    expect((await failure(decrypt(truncated))).message).toBe(
      `${truncated} line 3, column \`phonenumber_sealed\`: the sealed value is truncated: 39 bytes after base64, at least 63 expected`,
    );
    const version = edit(8, (cells) => {
      cells[10] = `01${(cells[10] ?? '').slice(2)}`;
    });
    expect((await failure(decrypt(version))).message).toBe(`${version} line 8, column \`notes\`: the value is sealed with C3R format version \`01\`; Malus opens version 02 only`);
  });

  it('fingerprint columns with --failOnFingerprintColumns', async () => {
    expect((await failure(decrypt(`${V}/marshalled_data_sample.csv`, { failOnFingerprintColumns: true }))).message).toBe(
      `${V}/marshalled_data_sample.csv line 2, column \`state\` holds a fingerprint, which cannot be decrypted (and --failOnFingerprintColumns is set)`,
    );
  });
});

describe('Parquet', () => {
  let input: string;
  beforeAll(async () => {
    input = join(dir, 'typed.parquet');
    await query(`COPY (SELECT * FROM (VALUES
        ('Ann', 41::INTEGER, 9000000000::BIGINT, 7::SMALLINT, true, DATE '2024-02-29', 1.5::DOUBLE, 'x', 12.34::DECIMAL(10,2)),
        ('Bob', 35::INTEGER, -1::BIGINT, 8::SMALLINT, false, DATE '1969-12-31', -0.25::DOUBLE, NULL, 0.01::DECIMAL(10,2)),
        ('Cy', NULL, 42::BIGINT, NULL, NULL, NULL, NULL, 'a longer note', NULL)
      ) AS t(Name, Age, Big, Small, Flag, Day, Score, Note, Amount)) TO '${input}' (FORMAT parquet)`);
  });

  const schema = parseC3rSchema({
    headerRow: true,
    columns: [
      { sourceHeader: 'Name', targetHeader: 'name', type: 'fingerprint' },
      { sourceHeader: 'Name', targetHeader: 'name_sealed', type: 'sealed', pad: { type: 'max', length: 2 } },
      { sourceHeader: 'Age', targetHeader: 'age', type: 'sealed', pad: { type: 'none' } },
      { sourceHeader: 'Age', targetHeader: 'age_fp', type: 'fingerprint' },
      { sourceHeader: 'Big', targetHeader: 'big', type: 'sealed', pad: { type: 'fixed', length: 8 } },
      { sourceHeader: 'Small', targetHeader: 'small', type: 'sealed', pad: { type: 'none' } },
      { sourceHeader: 'Flag', targetHeader: 'flag', type: 'sealed', pad: { type: 'none' } },
      { sourceHeader: 'Day', targetHeader: 'day', type: 'sealed', pad: { type: 'none' } },
      { sourceHeader: 'Score', targetHeader: 'score', type: 'sealed', pad: { type: 'max', length: 0 } },
      { sourceHeader: 'Note', targetHeader: 'note', type: 'sealed', pad: { type: 'none' } },
      { sourceHeader: 'Amount', targetHeader: 'amount', type: 'cleartext' },
    ],
  });

  it('round-trips typed columns: sealed columns come back with their types, cleartext keeps its type', async () => {
    const encrypted = await encrypt(input, schema, { allowCleartext: true, preserveNulls: true });
    const sealed = await query(`SELECT * FROM read_parquet('${encrypted}')`);
    expect(sealed.names).toEqual(schema.columns.map((c) => c.targetHeader));
    expect(sealed.types).toEqual(['VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'VARCHAR', 'DECIMAL(10,2)']);
    // An INTEGER is fingerprinted as a BIGINT.
    const annAge = sealed.rows.find((r) => r[0] === fingerprintC3rCell('Ann', { keys, columnLabel: 'name' }))?.[3];
    expect(annAge).toBe(fingerprintC3rCell({ type: 'bigint', value: 41n }, { keys, columnLabel: 'age_fp' }));

    const decrypted = await decrypt(encrypted);
    const back = await query(`SELECT name_sealed, age, big, small, flag, day::VARCHAR AS day, score, note, amount::VARCHAR AS amount FROM read_parquet('${decrypted}') ORDER BY name_sealed`);
    const types = await query(`SELECT * FROM read_parquet('${decrypted}')`);
    expect(types.types).toEqual(['VARCHAR', 'VARCHAR', 'INTEGER', 'VARCHAR', 'BIGINT', 'SMALLINT', 'BOOLEAN', 'DATE', 'DOUBLE', 'VARCHAR', 'DECIMAL(10,2)']);
    expect(back.rows).toEqual([
      ['Ann', 41, 9000000000n, 7, true, '2024-02-29', 1.5, 'x', '12.34'],
      ['Bob', 35, -1n, 8, false, '1969-12-31', -0.25, null, '0.01'],
      ['Cy', null, 42n, null, null, null, null, 'a longer note', null],
    ]);
  });

  it('refuses fingerprinting a DOUBLE column and sealing an unsupported type', async () => {
    const fp = parseC3rSchema({ headerRow: true, columns: [{ sourceHeader: 'Score', type: 'fingerprint' }] });
    expect((await failure(encrypt(input, fp, {}))).message).toBe(
      'column `score_fingerprint`: C3R does not fingerprint DOUBLE values (only strings, integers, booleans and dates)',
    );
    const decimal = parseC3rSchema({ headerRow: true, columns: [{ sourceHeader: 'Amount', type: 'sealed', pad: { type: 'none' } }] });
    expect((await failure(encrypt(input, decimal, {}))).message).toBe(
      'column `amount_sealed`: input column `amount` is DECIMAL(10,2); Malus seals and fingerprints only VARCHAR, BIGINT, INTEGER, SMALLINT, BOOLEAN, DATE, DOUBLE and FLOAT columns',
    );
  });
});
