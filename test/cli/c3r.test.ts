import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus c3r encrypt|decrypt` through the real binary, against C3R's own sample files.

const V = '/work/shared/vectors/c3r';
const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64');
const WRONG_SECRET = Buffer.alloc(32, 0x5a).toString('base64');
const ID = '00000000-1111-2222-3333-444444444444';

let dir: string;
const run = (args: string[], env: Record<string, string> = { C3R_SHARED_SECRET: SECRET }) => malus(args, { cwd: dir, env });

const sortedLines = (path: string): string[] => readFileSync(join(dir, path), 'utf8').split('\n').filter((l) => l !== '').sort();

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir('malus-cli-c3r-');
  copyFileSync(`${V}/config_sample.json`, join(dir, 'schema.json'));
  copyFileSync(`${V}/data_sample_without_quotes.csv`, join(dir, 'data.csv'));
  copyFileSync(`${V}/marshalled_data_sample.csv`, join(dir, 'marshalled.csv'));
});

afterAll(() => {
  removeDir(dir);
});

describe.concurrent('malus c3r', () => {
  it('encrypts a CSV file and decrypts it again; the secret never appears', async () => {
    const encrypted = await run(['c3r', 'encrypt', 'data.csv', '--schema', 'schema.json', '--id', ID, '--output', 'enc.csv', '--allowCleartext', '--allowDuplicates']);
    expect(encrypted.stderr).toBe('');
    expect(encrypted.stdout).toBe('encrypted 7 rows, 11 columns (5 sealed, 2 fingerprint, 4 cleartext) to enc.csv\n');
    expect(encrypted.code).toBe(0);
    const decrypted = await run(['c3r', 'decrypt', 'enc.csv', '--id', ID, '--output', 'dec.csv']);
    expect(decrypted.stdout).toBe('decrypted 7 rows, 11 columns (35 sealed values in 5 columns; 2 fingerprint columns copied unchanged) to dec.csv\n');
    expect(decrypted.code).toBe(0);
    const fromC3r = await run(['c3r', 'decrypt', 'marshalled.csv', '--id', ID, '--output', 'dec-c3r.csv']);
    expect(fromC3r.code).toBe(0);
    expect(sortedLines('dec.csv')).toEqual(sortedLines('dec-c3r.csv'));
    for (const text of [encrypted.stdout, decrypted.stdout, fromC3r.stdout]) expect(text).not.toContain(SECRET);
  });

  it("writes C3R's default output, the input's name with .out before its extension in the current folder, and Parquet for Parquet", async () => {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const instance = await DuckDBInstance.create(':memory:', { temp_directory: '' });
    const connection = await instance.connect();
    await connection.run(`COPY (SELECT * FROM read_csv('${V}/data_sample_without_quotes.csv', all_varchar = true)) TO '${join(dir, 'data.parquet')}' (FORMAT parquet)`);
    connection.closeSync();
    instance.closeSync();
    const encrypted = await run(['c3r', 'encrypt', 'data.parquet', '--schema', 'schema.json', '--id', ID, '--allowCleartext', '--allowDuplicates']);
    expect(encrypted.stdout).toBe('encrypted 7 rows, 11 columns (5 sealed, 2 fingerprint, 4 cleartext) to data.out.parquet\n');
    const decrypted = await run(['c3r', 'decrypt', 'data.out.parquet', '--id', ID, '--output', 'back.parquet']);
    expect(decrypted.code).toBe(0);
    expect(decrypted.stdout).toBe('decrypted 7 rows, 11 columns (35 sealed values in 5 columns; 2 fingerprint columns copied unchanged) to back.parquet\n');
    mkdirSync(join(dir, 'in'), { recursive: true });
    copyFileSync(join(dir, 'data.out.parquet'), join(dir, 'in', 'sealed'));
    const noExtension = await run(['c3r', 'decrypt', 'in/sealed', '--fileFormat', 'parquet', '--id', ID]);
    expect(noExtension.stdout).toMatch(/ to sealed\.out\n$/);
    expect(existsSync(join(dir, 'sealed.out'))).toBe(true);
  });

  it('refuses the wrong secret or collaboration id, naming the row and column, and writes nothing', async () => {
    const wrongId = ID.replace(/^./, ID.startsWith('0') ? '1' : '0');
    for (const [output, id, env] of [
      ['wrong.csv', ID, { C3R_SHARED_SECRET: WRONG_SECRET }],
      ['wrong-id.csv', wrongId, { C3R_SHARED_SECRET: SECRET }],
    ] as const) {
      const result = await run(['c3r', 'decrypt', 'marshalled.csv', '--id', id, '--output', output], env);
      expect(result.code, output).toBe(2);
      expect(result.stderr, output).toBe(
        'error: marshalled.csv line 2, column `address`: the sealed value does not authenticate: the shared secret or the collaboration id is wrong, or the value was altered\n',
      );
      expect(result.stderr).not.toContain(WRONG_SECRET);
      expect(hasStackTrace(result.stderr)).toBe(false);
      expect(existsSync(join(dir, output))).toBe(false);
      // Only this test's own temporary file: the tests run concurrently, and others may be mid-write.
      expect(readdirSync(dir).filter((f) => f.startsWith(`.${output}.`) && f.endsWith('.tmp'))).toEqual([]);
    }
  });

  it('needs the shared secret in C3R_SHARED_SECRET, as base64 of 32 bytes or more', async () => {
    const missing = await run(['c3r', 'decrypt', 'marshalled.csv', '--id', ID, '--output', 'x.csv'], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('error: $C3R_SHARED_SECRET is not set (base64 of at least 32 random bytes)\n');
    const short = Buffer.alloc(31, 1).toString('base64');
    const tooShort = await run(['c3r', 'decrypt', 'marshalled.csv', '--id', ID, '--output', 'x.csv'], { C3R_SHARED_SECRET: short });
    expect(tooShort.stderr).toBe('error: $C3R_SHARED_SECRET decodes to 31 bytes; C3R needs at least 32\n');
    expect(tooShort.stderr).not.toContain(short);
  });

  it('applies the collaboration settings (all off unless given)', async () => {
    const cleartext = await run(['c3r', 'encrypt', 'data.csv', '--schema', 'schema.json', '--id', ID, '--output', 'no.csv']);
    expect(cleartext.code).toBe(2);
    expect(cleartext.stderr).toBe(
      'error: the schema has cleartext columns (`firstname`, `lastname`, `phonenumber_cleartext`, `level`) but the collaboration does not allow cleartext (pass --allowCleartext if it does)\n',
    );
    expect(existsSync(join(dir, 'no.csv'))).toBe(false);
  });

  it('never replaces an output without --overwrite; --dryRun writes nothing', async () => {
    writeFileSync(join(dir, 'taken.csv'), 'keep\n');
    const refused = await run(['c3r', 'decrypt', 'marshalled.csv', '--id', ID, '--output', 'taken.csv']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('error: taken.csv already exists; pass --overwrite to replace it\n');
    expect(readFileSync(join(dir, 'taken.csv'), 'utf8')).toBe('keep\n');
    const dry = await run(['c3r', 'encrypt', 'data.csv', '--schema', 'schema.json', '--id', ID, '--output', 'dry.csv', '--dryRun', '--allowCleartext']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe('dry run: data.csv would be encrypted to dry.csv with 11 columns (5 sealed, 2 fingerprint, 4 cleartext); no data was read or written\n');
    expect(existsSync(join(dir, 'dry.csv'))).toBe(false);
  });

  it('explains a bad schema field by field', async () => {
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ headerRow: true, columns: [{ sourceHeader: 'City', type: 'sealed', pad: { type: 'fixed', length: -1 } }, { sourceHeader: 'State', type: 'hmac' }] }),
    );
    const result = await run(['c3r', 'encrypt', 'data.csv', '--schema', 'bad.json', '--id', ID]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'error: schema bad.json is not a valid C3R schema\n' +
        'columns[0].pad.length: a fixed pad needs a length: an integer from 0 to 10000 (bytes)\n' +
        'columns[1].type: must be one of cleartext, sealed, fingerprint\n',
    );
  });

  it("reports C3R's malformed sample files by line (all three: see test/ingest/c3r)", async () => {
    const file = `${V}/one_row_too_many_columns.csv`;
    const result = await run(['c3r', 'encrypt', file, '--schema', 'schema.json', '--id', ID, '--output', 'm.csv', '--allowCleartext', '--allowDuplicates']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`error: ${file} line 2: expected 9 columns (as in the header row) but found 15\n`);
    expect(existsSync(join(dir, 'm.csv'))).toBe(false);
  });

  it('needs a format it can tell (--fileFormat otherwise)', async () => {
    copyFileSync(`${V}/marshalled_data_sample.csv`, join(dir, 'results.txt'));
    const unknown = await run(['c3r', 'decrypt', 'results.txt', '--id', ID]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('error: cannot tell whether results.txt is CSV or Parquet from its name; pass --fileFormat csv or --fileFormat parquet\n');
  });
});
