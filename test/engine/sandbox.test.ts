import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { lockConnection, openSandbox, type Sandbox } from '../../src/engine/index.js';
import { openIngestDb, type IngestDb } from '../../src/ingest/index.js';
import type { BoundParameter } from '../../src/rules/index.js';
import { makeAgreement, makeKeys, type ExampleKeys } from '../agreement/helpers.js';
import { datasetOf, impressionsSql, parquetOf, piecesOf } from './query-fixtures.js';
import { failure } from './failure.js';

// The sandbox a governed query runs in: datasets decrypted into malus_data, then locked; one
// SELECT with bound parameters; a timeout, row and byte caps; DuckDB's messages never let out.

describe('lockConnection', () => {
  let db: IngestDb;
  const dir = mkdtempSync(join(tmpdir(), 'malus-lock-'));

  beforeAll(async () => {
    db = await openIngestDb({ threads: 1 });
    await lockConnection(db.connection);
  });

  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no way to files, extensions or the settings, whatever the statement', async () => {
    const target = join(dir, 'out.csv');
    const escapes = [
      `SELECT * FROM read_csv('/etc/passwd')`,
      `SELECT * FROM read_text('/etc/passwd')`,
      `SELECT * FROM read_parquet('${join(dir, 'x.parquet')}')`,
      `SELECT * FROM glob('/etc/*')`,
      `SELECT * FROM '${join(dir, 'x.csv')}'`,
      `COPY (SELECT 1) TO '${target}'`,
      `EXPORT DATABASE '${dir}'`,
      `ATTACH '${join(dir, 'x.db')}' AS x`,
      'INSTALL httpfs',
      'LOAD httpfs',
      'SET threads = 8',
      `SET memory_limit = '64GB'`,
      'PRAGMA threads = 8',
      `PRAGMA memory_limit = '64GB'`,
      'SET enable_external_access = true',
      'SET lock_configuration = false',
      'RESET lock_configuration',
      `SET GLOBAL temp_directory = '${dir}'`,
    ];
    for (const sql of escapes) {
      await expect(db.connection.run(sql), sql).rejects.toThrow(/Permission Error|configuration has been locked|disabled/);
    }
    expect(existsSync(target)).toBe(false);
    const settings = await db.connection.runAndReadAll(
      `SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), current_setting('threads')`,
    );
    expect(settings.getRows()[0]).toEqual([false, true, 1n]);
  });
});

describe('openSandbox', () => {
  const keys: ExampleKeys = makeKeys();
  const agreement: Agreement = makeAgreement(keys);
  const dir = mkdtempSync(join(tmpdir(), 'malus-sandbox-'));
  let sandbox: Sandbox;

  const load = async (box: Sandbox, options: { placement?: string } = {}): Promise<void> => {
    const { sql, rows } = impressionsSql(options);
    const prepared = await datasetOf(dir, { agreement, table: 'impressions', keys: keys.publisher, sql, rows });
    const table = agreement.tables.find((t) => t.name === 'impressions');
    if (table === undefined) throw new Error('no impressions table');
    await box.load({ source: piecesOf(prepared.ciphertext), key: prepared.dataKey, manifest: prepared.manifest.manifest, table });
  };

  beforeAll(async () => {
    sandbox = await openSandbox({ threads: 2, memoryLimit: '1GB' });
    await load(sandbox);
    await sandbox.lock();
  });

  afterAll(() => {
    sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads a dataset as malus_data."<table>", nothing in main, and runs a SELECT on it', async () => {
    const run = await sandbox.run(
      `SELECT campaign_id, count(*) AS n, count(DISTINCT email_hash) AS people FROM malus_data."impressions" GROUP BY campaign_id ORDER BY campaign_id`,
      [],
    );
    expect(run.columns).toEqual([
      { name: 'campaign_id', type: 'VARCHAR' },
      { name: 'n', type: 'BIGINT' },
      { name: 'people', type: 'BIGINT' },
    ]);
    expect(run.rows).toEqual([
      ['cmp-0', '60', '60'],
      ['cmp-1', '40', '10'],
    ]);
    expect(run).not.toHaveProperty('suppressed');
    const main = await sandbox.run(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema <> 'malus_data'`, []);
    expect(main.rows).toEqual([['0']]);
  });

  it('drops the release column when it is true on every row, as the HAVING of the rewrite makes it', async () => {
    const run = await sandbox.run(
      `SELECT campaign_id, count(DISTINCT email_hash) AS people, count(DISTINCT email_hash) >= 50 AS malus_released
       FROM malus_data."impressions" GROUP BY campaign_id HAVING count(DISTINCT email_hash) >= 50 ORDER BY campaign_id`,
      [],
      { releaseColumn: 'malus_released' },
    );
    expect(run.columns.map((c) => c.name)).toEqual(['campaign_id', 'people']);
    expect(run.rows).toEqual([['cmp-0', '60']]);
    expect(Object.keys(run).sort()).toEqual(['bytes', 'columns', 'rows']);
  });

  it('fails closed on any row the release column withholds (query-failed), with one message and no count', async () => {
    const withheld = [
      // cmp-1 (10 people) reaches the enclave: the rewrite and the engine disagree.
      `SELECT campaign_id, count(DISTINCT email_hash) >= 50 AS malus_released FROM malus_data."impressions" GROUP BY campaign_id ORDER BY campaign_id`,
      // NULL withholds too: only true releases.
      `SELECT 2 AS x, true AS malus_released UNION ALL SELECT 1, CAST(NULL AS BOOLEAN)`,
      // However many there are.
      'SELECT range AS n, range < 10 AS malus_released FROM range(100000)',
      'SELECT range AS n, range = 0 AS malus_released FROM range(2)',
    ];
    const messages = new Set<string>();
    for (const sql of withheld) {
      const error = await failure(sandbox.run(sql, [], { releaseColumn: 'malus_released' }));
      expect(error.code, sql).toBe('query-failed');
      expect(`${error.message} ${JSON.stringify(error)}`, sql).not.toMatch(/\d|cmp-/);
      messages.add(error.message);
    }
    expect(messages.size).toBe(1);
  });

  it('refuses a query whose last column is not the BOOLEAN release column (query-failed)', async () => {
    for (const sql of ['SELECT 1 AS x', 'SELECT true AS malus_released, 1 AS x', `SELECT 1 AS x, 'yes' AS malus_released`]) {
      expect((await failure(sandbox.run(sql, [], { releaseColumn: 'malus_released' }))).code, sql).toBe('query-failed');
    }
  });

  it('lets no SELECT reach a file, and runs nothing but a single SELECT (query-failed)', async () => {
    const target = join(dir, 'leak.csv');
    const refused = [
      `SELECT * FROM read_csv('/etc/passwd')`,
      `SELECT * FROM read_text('/etc/passwd')`,
      `SELECT * FROM read_parquet('${join(dir, 'x.parquet')}')`,
      `SELECT * FROM glob('${dir}/*')`,
      `COPY (SELECT * FROM malus_data."impressions") TO '${target}'`,
      `ATTACH '${join(dir, 'x.db')}' AS x`,
      'INSTALL httpfs',
      'LOAD httpfs',
      'SET threads = 8',
      'PRAGMA enable_profiling',
      `CREATE TABLE malus_data.copy AS SELECT * FROM malus_data."impressions"`,
      `DELETE FROM malus_data."impressions"`,
      'SELECT 1; SELECT 2',
      'SELECT * FROM no_such_table',
    ];
    for (const sql of refused) {
      expect((await failure(sandbox.run(sql, []))).code, sql).toBe('query-failed');
    }
    expect(existsSync(target)).toBe(false);
    expect((await sandbox.run(`SELECT count(*) AS n FROM malus_data."impressions"`, [])).rows).toEqual([['100']]);
  });

  it('binds parameters by name with their declared types', async () => {
    const parameters: BoundParameter[] = [
      { name: 'since', type: 'DATE', value: '2026-11-03' },
      { name: 'at', type: 'TIMESTAMP', value: '2026-11-05 12:30:00.25' },
      { name: 'campaign', type: 'VARCHAR', value: 'cmp-0' },
      { name: 'n', type: 'BIGINT', value: 9007199254740993n },
      { name: 'x', type: 'DOUBLE', value: 1.5 },
      { name: 'flag', type: 'BOOLEAN', value: true },
    ];
    const run = await sandbox.run(
      `SELECT $since AS since, $at AS at, $n AS n, $x AS x, $flag AS flag,
              (SELECT count(*) FROM malus_data."impressions" WHERE campaign_id = $campaign AND shown_at >= $since) AS seen`,
      parameters,
    );
    expect(run.columns.map((c) => c.type)).toEqual(['DATE', 'TIMESTAMP', 'BIGINT', 'DOUBLE', 'BOOLEAN', 'BIGINT']);
    // cmp-0 shows on 2026-11-01 + (i % 9) days: 7 of every 9 days are on or after the 3rd.
    expect(run.rows).toEqual([['2026-11-03', '2026-11-05T12:30:00.25', '9007199254740993', 1.5, true, '46']]);
    // A parameter used twice is one placeholder; a date-only timestamp is midnight.
    const twice = await sandbox.run('SELECT $at AS a, $at = $at AS same', [{ name: 'at', type: 'TIMESTAMP', value: '2026-01-02' }]);
    expect(twice.rows).toEqual([['2026-01-02T00:00:00', true]]);
  });

  it('refuses parameters that are not the placeholders (query-failed) or not of their type (invalid-input)', async () => {
    const one: BoundParameter = { name: 'a', type: 'VARCHAR', value: 'x' };
    expect((await failure(sandbox.run('SELECT $a AS a, $b AS b', [one]))).code).toBe('query-failed');
    expect((await failure(sandbox.run('SELECT 1 AS a', [one]))).code).toBe('query-failed');
    expect((await failure(sandbox.run('SELECT $a AS a', [{ ...one, name: 'b' }]))).code).toBe('query-failed');
    expect((await failure(sandbox.run('SELECT $a AS a', [one, one]))).code).toBe('query-failed');
    const wrong: BoundParameter[] = [
      { name: 'a', type: 'DATE', value: '2026-02-30' },
      { name: 'a', type: 'DATE', value: '2026-1-1' },
      { name: 'a', type: 'TIMESTAMP', value: '2026-01-01 25:00:00' },
      { name: 'a', type: 'TIMESTAMP', value: '2026-01-01T10:00:00Z' },
      { name: 'a', type: 'BIGINT', value: 1.5 },
      { name: 'a', type: 'BIGINT', value: 2n ** 63n },
      { name: 'a', type: 'DOUBLE', value: Number.NaN },
      { name: 'a', type: 'BOOLEAN', value: 'true' },
      { name: 'a', type: 'VARCHAR', value: 1 },
    ];
    for (const parameter of wrong) {
      expect((await failure(sandbox.run('SELECT $a AS a', [parameter]))).code, JSON.stringify(parameter, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toBe(
        'invalid-input',
      );
    }
  });

  it('never lets DuckDB’s message out: a failed cast of a secret value says only query-failed', async () => {
    const box = await openSandbox({ threads: 1, memoryLimit: '512MB' });
    try {
      await load(box, { placement: 'SECRET-123' });
      await box.lock();
      const error = await failure(box.run(`SELECT CAST(placement AS INTEGER) AS n, true AS malus_released FROM malus_data."impressions"`, []));
      expect(error.code).toBe('query-failed');
      const everything = [error.message, error.describe(), String(error.stack), JSON.stringify(error), String(error.cause)].join('\n');
      expect(everything).not.toContain('SECRET-123');
      expect(error.cause).toBeUndefined();
    } finally {
      box.close();
    }
  });

  it('interrupts a query over its time (query-timeout), and runs the next one', async () => {
    const started = Date.now();
    const error = await failure(sandbox.run('SELECT count(*) AS n FROM range(1000000000) a, range(1000000000) b', [], { timeoutMs: 150 }));
    expect(error.code).toBe('query-timeout');
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await sandbox.run('SELECT 42 AS n', [], { timeoutMs: 5000 })).rows).toEqual([[42]]);
  });

  it('stops at the row and byte caps (result-too-large)', async () => {
    expect((await failure(sandbox.run('SELECT range AS n FROM range(100000)', [], { maxRows: 1000 }))).code).toBe('result-too-large');
    expect((await failure(sandbox.run(`SELECT repeat('x', 1000) AS s FROM range(100)`, [], { maxBytes: 10_000 }))).code).toBe('result-too-large');
    const released = await sandbox.run('SELECT range AS n, true AS malus_released FROM range(10)', [], { maxRows: 10, maxBytes: 1000, releaseColumn: 'malus_released' });
    expect(released.rows).toHaveLength(10);
    expect((await sandbox.run(`SELECT repeat('x', 1000) AS s FROM range(9)`, [], { maxBytes: 10_000 })).rows).toHaveLength(9);
  });

  it('runs nothing before it is locked and loads nothing after (internal); a table loads once', async () => {
    const box = await openSandbox({ threads: 1, memoryLimit: '512MB' });
    try {
      expect(box.locked).toBe(false);
      expect((await failure(box.run('SELECT 1 AS x', []))).code).toBe('internal');
      await load(box);
      expect((await failure(load(box))).code).toBe('invalid-input');
      await box.lock();
      expect(box.locked).toBe(true);
      expect((await failure(load(box))).code).toBe('internal');
    } finally {
      box.close();
      box.close();
    }
  });

  it('takes the limits it is given', async () => {
    const box = await openSandbox({ threads: 1, memoryLimit: '300MB' });
    try {
      await box.lock();
      const run = await box.run(`SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m, current_setting('temp_directory') AS d`, []);
      expect(run.rows[0]?.[0]).toBe('1');
      expect(String(run.rows[0]?.[1])).toBe('286.1 MiB');
      expect(run.rows[0]?.[2]).toBe('');
    } finally {
      box.close();
    }
  });

  it('has the fixtures make real Parquet', async () => {
    expect(Buffer.from((await parquetOf('SELECT 1 AS x')).subarray(0, 4)).toString()).toBe('PAR1');
  });
});
