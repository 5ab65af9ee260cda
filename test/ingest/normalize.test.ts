import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openIngestDb, type IngestDb } from '../../src/ingest/index.js';
import { normalizeSql } from '../../src/ingest/prepare/normalize.js';
import { pseudonym, pseudonymSql } from '../../src/ingest/prepare/join-key.js';

// Each normalizer and the SQL HMAC, run in DuckDB on the values a provider's export really holds.

let db: IngestDb;
beforeAll(async () => {
  db = await openIngestDb();
});
afterAll(() => { db.close(); });

async function normalize(normalizers: string[], values: (string | null)[], target = 'VARCHAR'): Promise<unknown[]> {
  const list = values.map((v) => (v === null ? 'NULL' : `'${v.replaceAll("'", "''")}'`)).join(', ');
  const reader = await db.connection.runAndReadAll(`SELECT ${normalizeSql(normalizers, 'x', target)} AS n FROM (SELECT unnest([${list}]::VARCHAR[]) AS x, generate_subscripts([${list}]::VARCHAR[], 1) AS i) ORDER BY i`);
  return reader.getRows().map((row) => (row[0] === null ? null : String(row[0])));
}

describe('normalizers', () => {
  it('trim, lowercase and uppercase', async () => {
    expect(await normalize(['trim'], ['  a b  ', 'c', ' ', null])).toEqual(['a b', 'c', '', null]);
    // Tabs, line ends and the other ASCII white space go too; inner white space stays.
    expect(await normalize(['trim'], ['\tA1\t', '\r\n x\ty \u000b\f', ''])).toEqual(['A1', 'x\ty', '']);
    expect(await normalize(['trim', 'lowercase'], [' AbC ', 'ÉCOLE'])).toEqual(['abc', 'école']);
    expect(await normalize(['uppercase'], ['abc'])).toEqual(['ABC']);
  });

  it('email: trimmed, lower-case, Gmail dots and +tags dropped; anything else that is not an address fails', async () => {
    expect(
      await normalize(['email'], [' Jane.Doe+news@Gmail.com ', 'j.doe@googlemail.com', 'Bob+x@Example.org', 'not-an-address', 'a@b', 'two@@example.com']),
    ).toEqual(['janedoe@gmail.com', 'jdoe@gmail.com', 'bob+x@example.org', null, null, null]);
    // A Gmail local part that is only dots and a +tag would leave nothing: many inputs, one identifier.
    expect(await normalize(['email'], ['+a@gmail.com', '+b@Gmail.com', '.@gmail.com', '..+x@googlemail.com', 'a+@gmail.com'])).toEqual([null, null, null, null, 'a@gmail.com']);
  });

  it('e164: international forms kept, national numbers take the default code, the rest fail', async () => {
    expect(await normalize(['e164'], ['+1 (703) 555-1234', '0044 20 7946 0958', '703-555-1234', '+12'])).toEqual(['+17035551234', '+442079460958', null, null]);
    expect(await normalize(['e164:+1'], ['703-555-1234', '1-703-555-1234', '+44 20 7946 0958'])).toEqual(['+17035551234', '+17035551234', '+442079460958']);
    expect(await normalize(['e164:+44'], ['020 7946 0958', '(020) 7946-0958', 'call me'])).toEqual(['+442079460958', '+442079460958', null]);
  });

  it('date: parses the stated format into ISO dates', async () => {
    expect(await normalize(['date:%d/%m/%Y'], ['02/11/2026', ' 31/12/2026', '2026-11-02', '31/02/2026'])).toEqual(['2026-11-02', '2026-12-31', null, null]);
    expect(await normalize(['date:%m-%d-%Y'], ['11-02-2026'], 'DATE')).toEqual(['2026-11-02']);
    // A format with a time of day: midnight is a date, any other time fails rather than being dropped.
    expect(await normalize(['date:%Y-%m-%d %H:%M'], ['2026-01-02 00:00', '2026-01-02 13:45'], 'DATE')).toEqual(['2026-01-02', null]);
    expect(await normalize(['date:%Y-%m-%d %H:%M'], ['2026-01-02 13:45'])).toEqual([null]);
    // A TIMESTAMP column keeps the time.
    expect(await normalize(['date:%Y-%m-%d %H:%M'], ['2026-01-02 13:45'], 'TIMESTAMP')).toEqual(['2026-01-02 13:45:00']);
  });

  it('computes HMAC-SHA256 in SQL exactly as node:crypto does', async () => {
    const key = new Uint8Array(32).map((_, i) => i * 7);
    const values = ['a1b2', '', 'école', 'x'.repeat(200)];
    const reader = await db.connection.runAndReadAll(`SELECT ${pseudonymSql(key, 'x')} FROM (SELECT unnest(['a1b2', '', 'école', '${'x'.repeat(200)}']) AS x, generate_subscripts(['a','b','c','d'], 1) AS i) ORDER BY i`);
    expect(reader.getRows().map((r) => r[0])).toEqual(values.map((v) => pseudonym(key, v)));
  });
});
