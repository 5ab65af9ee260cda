import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus dataset prepare` and `malus dataset join-secret` through the real binary: a good input,
// and bad inputs that each exit 2 with their exact message and leave nothing behind.

let dir: string;
let secret: string;
const run = (args: string[], env: Record<string, string> = {}) => malus(args, { cwd: dir, env });
const prepare = (input: string, out: string, env: Record<string, string> = { MALUS_JOIN_SECRET: secret }, extra: string[] = []) =>
  run(['dataset', 'prepare', '--agreement', 'agreement.yaml', '--table', 'conversions', '--input', input, '--key', 'adv.json', '--out', out, ...extra], env);

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  for (const party of ['adv', 'pub', 'op']) expect((await run(['keygen', '--name', party, '--out', `${party}.json`])).code).toBe(0);
  expect((await run(['agreement', 'init', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json', '--out', 'agreement.yaml'])).code).toBe(0);
  const made = await run(['dataset', 'join-secret', '--collab', 'campaign-measurement']);
  expect(made.code).toBe(0);
  secret = /^secret: (\S+)$/m.exec(made.stdout)?.[1] ?? '';
  expect(made.stdout).toMatch(/^commitment: sha256:[0-9a-f]{64}$/m);
  writeFileSync(join(dir, 'good.csv'), 'email_hash,campaign_id,order_date,order_value\nAB12,c-1,2026-11-02,10.50\ncd34,c-2,2026-11-03,7\n');
});

afterAll(() => { removeDir(dir); });

describe.concurrent('malus dataset prepare', () => {
  it('prepares a table into ciphertext, manifest and sealed key', async () => {
    const result = await prepare('good.csv', 'out-good');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^prepared dataset conversions of table conversions: 2 rows, \d+ bytes of ciphertext in [\d.]+ s\n/);
    expect(readdirSync(join(dir, 'out-good')).sort()).toEqual(['data-key.json', 'dataset.mds', 'manifest.json']);
  });

  it('takes the Parquet codec from --compression, and refuses one it does not know with exit 2', async () => {
    const zstd = await prepare('good.csv', 'out-zstd', { MALUS_JOIN_SECRET: secret }, ['--compression', 'zstd']);
    expect(zstd.stderr).toBe('');
    expect(zstd.code).toBe(0);
    expect(readdirSync(join(dir, 'out-zstd')).sort()).toEqual(['data-key.json', 'dataset.mds', 'manifest.json']);
    const gzip = await prepare('good.csv', 'out-gzip', { MALUS_JOIN_SECRET: secret }, ['--compression', 'gzip']);
    expect(gzip.code).toBe(2);
    expect(gzip.stderr).toContain("'gzip' is invalid. Allowed choices are uncompressed, snappy, zstd.");
    expect(existsSync(join(dir, 'out-gzip'))).toBe(false);
  });

  it('checks the join secret against its commitment', async () => {
    const checked = await run(['dataset', 'join-secret', '--collab', 'campaign-measurement', '--check-env', 'S'], { S: secret });
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/^commitment: sha256:[0-9a-f]{64}\n$/);
    expect(checked.stdout).not.toContain(secret);
  });

  const bad: [string, string, string | Buffer, string][] = [
    ['too few columns', 'few.csv', 'email_hash,campaign_id,order_date,order_value\na,c,2026-11-01\n', 'error: the input has malformed rows: 1 problem\nline 2: too few columns (the table has 4)\n'],
    ['too many columns', 'many.csv', 'email_hash,campaign_id,order_date,order_value\na,c,2026-11-01,1,2\n', 'error: the input has malformed rows: 1 problem\nline 2: too many columns (the table has 4)\n'],
    ['non-UTF-8 bytes', 'latin.csv', Buffer.concat([Buffer.from('email_hash,campaign_id,order_date,order_value\na,caf'), Buffer.from([0xe9]), Buffer.from(',2026-11-01,1\n')]), 'error: the input has malformed rows: 1 problem\nline 2: is not valid UTF-8\n'],
    ['a wrong type', 'type.csv', 'email_hash,campaign_id,order_date,order_value\na,c,2026-11-01,ten\n', "error: the input does not satisfy table conversions: 1 problem\nrow 1, column order_value: 'ten' is not a valid DECIMAL(12,2)\n"],
    ['a null identity', 'null.csv', 'email_hash,campaign_id,order_date,order_value\n,c,2026-11-01,1\n', 'error: the input does not satisfy table conversions: 1 problem\nrow 1, column email_hash: is empty: the identity column must hold a value on every row\n'],
    ['an empty file', 'empty.csv', '', `error: the input empty.csv is empty\n`],
    ['a 50 MB single line', 'long.csv', `email_hash,campaign_id,order_date,order_value\na,${'x'.repeat(50 * 1024 * 1024)},2026-11-01,1\n`, 'error: the input has malformed rows: 1 problem\nline 2: is longer than 8388608 bytes\n'],
    ['a header that does not match', 'header.csv', 'mail,campaign_id,order_date,order_value\na,c,2026-11-01,1\n', 'error: the input header does not match the table: 2 problems\ncolumn email_hash: is in the agreement but not in the input\nheader field 1 is not a column of the agreement: remove that column (only agreed columns leave your machine)\n'],
  ];
  for (const [what, file, content, message] of bad) {
    it(`refuses ${what} with exit 2, writing nothing`, async () => {
      writeFileSync(join(dir, file), content);
      const out = `out-${file}`;
      const result = await prepare(file, out);
      expect(result.stderr).toBe(message);
      expect(result.code).toBe(2);
      expect(hasStackTrace(result.stderr)).toBe(false);
      expect(existsSync(join(dir, out))).toBe(false);
      expect(readdirSync(dir).filter((name) => name.startsWith(`.${out}.partial`))).toEqual([]);
    });
  }

  it('refuses an --out that is a file or lies under one, and removes the folders a failed run created', async () => {
    writeFileSync(join(dir, 'taken'), 'not a folder');
    const onFile = await prepare('good.csv', 'taken');
    expect(onFile.stderr).toBe('error: output folder taken exists and is not a folder\n');
    expect(onFile.code).toBe(2);
    const underFile = await prepare('good.csv', 'taken/out');
    expect(underFile.stderr).toBe('error: output folder taken/out: a path above it is a file, not a folder\n');
    expect(underFile.code).toBe(2);
    expect(readFileSync(join(dir, 'taken'), 'utf8')).toBe('not a folder');
    writeFileSync(join(dir, 'nested-bad.csv'), 'email_hash,campaign_id,order_date,order_value\na,c,2026-11-01,ten\n');
    const failed = await prepare('nested-bad.csv', 'new-parent/deeper/out');
    expect(failed.code).toBe(2);
    expect(existsSync(join(dir, 'new-parent'))).toBe(false);
    // A folder where none can be made fails at once (Node's recursive mkdir never returned here).
    const proc = await prepare('good.csv', '/proc/malus-no-such/out');
    expect([proc.code, proc.stderr]).toEqual([2, 'error: cannot write output folder /proc/malus-no-such/out: ENOENT\n']);
  });

  it('names the mistake, exit 2, for a folder given as input, a quote that is the delimiter, a linked --out, and CSV options on Parquet', async () => {
    mkdirSync(join(dir, 'folder.csv'), { recursive: true });
    const folder = await prepare('folder.csv', 'out-folder');
    expect([folder.code, folder.stderr]).toEqual([2, 'error: cannot read input folder.csv: it is a folder, not a file\n']);
    const same = await prepare('good.csv', 'out-same', { MALUS_JOIN_SECRET: secret }, ['--delimiter', ';', '--quote', ';']);
    expect([same.code, same.stderr]).toEqual([2, 'error: --quote and --delimiter must be different characters\n']);
    symlinkSync(join(dir, 'nowhere'), join(dir, 'linked'));
    const linked = await prepare('good.csv', 'linked');
    expect([linked.code, linked.stderr]).toEqual([2, 'error: output folder linked is a symbolic link: give the folder itself\n']);
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const instance = await DuckDBInstance.create(':memory:', { temp_directory: '' });
    const connection = await instance.connect();
    await connection.run(`COPY (SELECT * FROM read_csv('${join(dir, 'good.csv')}', all_varchar = true)) TO '${join(dir, 'good.parquet')}' (FORMAT parquet)`);
    connection.closeSync();
    instance.closeSync();
    const parquet = await prepare('good.parquet', 'out-parquet-flags', { MALUS_JOIN_SECRET: secret }, ['--delimiter', ';', '--no-header']);
    expect([parquet.code, parquet.stderr]).toEqual([2, 'error: --delimiter, --no-header are for CSV input; the input is Parquet\n']);
    const named = await prepare('good.csv', 'out-named', { OTHER_SECRET: '' }, ['--join-secret-env', 'OTHER_SECRET']);
    expect([named.code, named.stderr]).toEqual([2, "error: table conversions pseudonymizes email_hash: give the providers' shared join secret (OTHER_SECRET)\n"]);
    const badCollab = await run(['dataset', 'join-secret', '--collab', 'Bad ID!!']);
    expect(badCollab.code).toBe(2);
    expect(badCollab.stderr).toContain('error: --collab "Bad ID!!": expected a collaboration id');
    expect(badCollab.stdout).toBe('');
    for (const out of ['out-folder', 'out-same', 'out-parquet-flags', 'out-named']) expect(existsSync(join(dir, out))).toBe(false);
  });

  it('refuses a missing and a malformed join secret without echoing it', async () => {
    const missing = await prepare('good.csv', 'out-nosecret', {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("error: table conversions pseudonymizes email_hash: give the providers' shared join secret (MALUS_JOIN_SECRET)\n");
    const malformed = await prepare('good.csv', 'out-badsecret', { MALUS_JOIN_SECRET: 'c2hvcnQtc2VjcmV0' });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toBe('error: environment variable MALUS_JOIN_SECRET must hold the base64 of exactly 32 bytes\n');
    expect(malformed.stderr).not.toContain('c2hvcnQtc2VjcmV0');
  });

  it("refuses a table the key file's party does not own", async () => {
    const result = await run(['dataset', 'prepare', '--agreement', 'agreement.yaml', '--table', 'conversions', '--input', 'good.csv', '--key', 'pub.json', '--out', 'out-notmine'], { MALUS_JOIN_SECRET: secret });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: table conversions belongs to party [0-9a-f]{20}, not to [0-9a-f]{20} whose key file was given\n$/);
  });
});
