import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkQuery, RELEASE_COLUMN } from '../../src/rules/index.js';
import { emptyTables, rulesAgreement } from './fixtures.js';

// Red-team findings against the ad-hoc checker (docs/queries.md). Every query here was ALLOWED
// by the checker when written and, run on DuckDB over the small data set below, leaked a row
// value, singled out a person, bypassed the k constraint or raised a data-dependent error.
// Each `denied` entry names the violation code that seems to fit; the `rewrite` tests check the
// released output itself, since some leaks come from the rewrite rather than the walk.

const agreement = rulesAgreement();
const IC = 'FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash';
const IMPRESSION_ROW = 'STRUCT(email_hash VARCHAR, campaign_id VARCHAR, shown_at TIMESTAMP, placement VARCHAR, device_type VARCHAR)';
const CONVERSION_ROW = 'STRUCT(email_hash VARCHAR, campaign_id VARCHAR, order_date DATE, order_value DECIMAL(12,2))';
const rowAt = (hash: string, type: string) =>
  type === IMPRESSION_ROW
    ? `CAST('{email_hash: ${hash}, campaign_id: "", shown_at: 1970-01-01, placement: "", device_type: ""}' AS ${type})`
    : `CAST('{email_hash: ${hash}, campaign_id: "", order_date: 1970-01-01, order_value: 0}' AS ${type})`;

const denied: [string, string, string][] = [
  // 1. A select alias equal to a table alias: the bare name is that table's whole row (a STRUCT,
  //    identity column included) in GROUP BY, HAVING, ORDER BY and select-list CASE conditions.
  ['alias = table alias, GROUP BY the row struct', 'SELECT COUNT(DISTINCT i.email_hash) AS i FROM impressions i GROUP BY i', 'alias-shadows-column'],
  ['alias = table alias, HAVING on the identity through the row struct', `SELECT COUNT(DISTINCT i.email_hash) AS i FROM impressions i GROUP BY i HAVING i >= ${rowAt('victim', IMPRESSION_ROW)}`, 'alias-shadows-column'],
  ['alias = table alias, released groups split on the identity column', `SELECT COUNT(DISTINCT i.email_hash) AS i, CASE WHEN i < ${rowAt('p6', IMPRESSION_ROW)} THEN 'lt' ELSE 'ge' END AS half FROM impressions i GROUP BY 2`, 'alias-shadows-column'],
  ['alias = table alias, one buyer isolated by differencing on the row', `SELECT SUM(c.order_value) AS c, CASE WHEN c < ${rowAt('victim', CONVERSION_ROW)} THEN 'below' ELSE 'victim_and_up' END AS part, COUNT(DISTINCT c.email_hash) AS buyers ${IC} GROUP BY 2`, 'alias-shadows-column'],
  ['alias = unaliased table name', `SELECT COUNT(DISTINCT impressions.email_hash) AS impressions FROM impressions GROUP BY impressions HAVING impressions >= ${rowAt('victim', IMPRESSION_ROW)}`, 'alias-shadows-column'],
  ['alias rowid lets the rowid pseudo-column in', "SELECT COUNT(DISTINCT i.email_hash) AS n, CASE WHEN rowid < 100 THEN 'a' ELSE 'b' END AS part, 1 AS rowid FROM impressions i GROUP BY 2", 'alias-shadows-column'],
  // 2. CASE inside an aggregate: the k constraint counts the whole group, the aggregate only the
  //    rows its CASE keeps, which can be one person.
  ['SUM over a one-person CASE', `SELECT SUM(CASE WHEN c.order_date = DATE '2026-02-14' THEN c.order_value ELSE 0 END) AS victim_value ${IC}`, 'aggregate-argument'],
  ['AVG over a one-person CASE', `SELECT AVG(CASE WHEN i.device_type = 'tv' THEN c.order_value END) AS v ${IC}`, 'aggregate-argument'],
  ['COUNT DISTINCT over a one-person CASE', `SELECT COUNT(DISTINCT CASE WHEN c.order_date = DATE '2026-02-14' AND i.placement = 'story' THEN i.email_hash END) AS victim_on_story ${IC}`, 'aggregate-argument'],
  // 3. CASE whose results are all constants: an aggregate over no column escapes the rule's
  //    aggregateColumns (impressions allows only COUNT DISTINCT email_hash) and counts rows.
  ['SUM of a constant CASE counts rows', `SELECT SUM(CASE WHEN TRUE THEN 1 END) AS n ${IC}`, 'aggregate-argument'],
  ['COUNT of a constant CASE', "SELECT COUNT(CASE WHEN i.device_type = 'tv' THEN 1 END) AS tv_rows FROM impressions i", 'aggregate-argument'],
  ['AVG of a constant CASE', "SELECT AVG(CASE WHEN i.device_type = 'tv' THEN 1 ELSE 0 END) AS share FROM impressions i", 'aggregate-argument'],
  ['one person\'s impressions counted through the buyer\'s own data', `SELECT SUM(CASE WHEN c.order_date = DATE '2026-02-14' AND i.device_type = 'tv' THEN 1 ELSE 0 END) AS victim_tv_rows ${IC}`, 'aggregate-argument'],
  // 4. Errors that depend on data (one failing row fails the query, whatever k says).
  ['HUGEINT overflow in SUM of a constant CASE', `SELECT SUM(CASE WHEN i.device_type = 'tv' THEN 99999999999999999999999999999999999999 ELSE 0 END) AS boom ${IC}`, 'literal-out-of-range'],
  ['implicit VARCHAR to INTEGER cast in a comparison', 'SELECT COUNT(DISTINCT i.email_hash) FROM impressions i WHERE i.device_type = 0', 'comparison-type'],
  ['implicit cast of a CASE in a comparison', `SELECT COUNT(DISTINCT i.email_hash) ${IC} WHERE (CASE WHEN c.order_date = DATE '2026-02-14' AND i.device_type = 'tv' THEN 'x' ELSE '1' END) = 1`, 'comparison-type'],
  ['implicit cast in a list query filter', "SELECT a.segment FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash WHERE (CASE WHEN l.tier = 'platinum' THEN 'x' ELSE '1' END) = 1", 'comparison-type'],
  ['implicit VARCHAR to HUGEINT cast of a big literal', 'SELECT COUNT(DISTINCT i.email_hash) FROM impressions i WHERE i.campaign_id = 12345678901234567891', 'literal-out-of-range'],
  ['implicit VARCHAR to INTEGER cast against an IN list', 'SELECT COUNT(DISTINCT i.email_hash) FROM impressions i WHERE i.device_type IN (1, 2)', 'comparison-type'],
  ['implicit cast between columns of different types', `SELECT COUNT(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id = c.order_date`, 'comparison-type'],
  ['a positional ORDER BY that points at the release column', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS n ${IC} GROUP BY 1 ORDER BY 3`, 'positional-reference'],
  ['a positional GROUP BY on an aggregate', `SELECT COUNT(DISTINCT i.email_hash) AS n ${IC} GROUP BY 1`, 'positional-reference'],
  ['a bare table alias in a filter', `SELECT COUNT(DISTINCT i.email_hash) AS n ${IC} WHERE i IS NOT NULL`, 'column-not-allowed'],
  ['DATE_TRUNC with a data-dependent specifier', "SELECT COUNT(DISTINCT i.email_hash) FROM impressions i WHERE DATE_TRUNC(CASE WHEN i.device_type = 'tv' THEN 'bogus' ELSE 'day' END, DATE '2026-01-01') IS NOT NULL", 'constant-argument'],
  ['DATE_TRUNC with a column as specifier', `SELECT COUNT(DISTINCT i.email_hash) ${IC} GROUP BY DATE_TRUNC(c.campaign_id, c.order_date)`, 'constant-argument'],
];

describe('red team: denied', () => {
  it.each(denied)('%s', async (_name, sql, code) => {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.allowed).toBe(false);
    expect(checked.violations.map((v) => v.code)).toContain(code);
  });

  it('does not throw on a HUGEINT literal (the rewrite round-trips the tree through JavaScript numbers)', async () => {
    const sql = `SELECT SUM(CASE WHEN i.device_type = 'tv' THEN 170141183460469231731687303715884105727 ELSE 0 END) AS boom ${IC}`;
    await expect(checkQuery(agreement, { sql })).resolves.toBeDefined();
  });
});

describe('red team: the rewrite', () => {
  let db: Awaited<ReturnType<typeof emptyTables>>;
  // 60 ordinary people seen twice and buying once for 100.00; one victim seen three times on tv
  // and buying once, on a date nobody else bought on, for 1234.56; a small campaign c9 of three.
  beforeAll(async () => {
    db = await emptyTables(agreement);
    const imp: string[] = [];
    const conv: string[] = [];
    for (let n = 0; n < 60; n++) {
      imp.push(`('p${n}','c1',TIMESTAMP '2026-01-01 10:00:00','feed','mobile')`, `('p${n}','c1',TIMESTAMP '2026-01-02 10:00:00','feed','mobile')`);
      conv.push(`('p${n}','c1',DATE '2026-01-10',100.00)`);
    }
    for (let k = 0; k < 3; k++) imp.push(`('victim','c1',TIMESTAMP '2026-01-03 10:00:00','story','tv')`);
    conv.push(`('victim','c1',DATE '2026-02-14',1234.56)`);
    for (let n = 0; n < 3; n++) {
      imp.push(`('q${n}','c9',TIMESTAMP '2026-01-01 10:00:00','feed','mobile')`);
      conv.push(`('q${n}','c9',DATE '2026-01-11',777.00)`);
    }
    await db.connection.run(`INSERT INTO malus_data.impressions VALUES ${imp.join(',')}`);
    await db.connection.run(`INSERT INTO malus_data.conversions VALUES ${conv.join(',')}`);
  });
  afterAll(() => { db.close(); });

  /** What the enclave would release: rows whose release column is true, and the suppressed count. */
  async function release(sql: string): Promise<{ rows: unknown[][]; suppressed: number }> {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.violations).toEqual([]);
    const reader = await db.connection.runAndReadAll(checked.rewritten);
    expect(reader.columnNames().at(-1)).toBe(RELEASE_COLUMN);
    const all = reader.getRowsJson() as unknown[][];
    const rows = all.filter((r) => r.at(-1) === true).map((r) => r.slice(0, -1));
    return { rows, suppressed: all.length - rows.length };
  }

  // HAVING runs before the release column, so the suppressed count of a HAVING query answers a
  // question about a group under k: here, binary search on the sum of c9's three orders (2331).
  it('HAVING on an aggregate says nothing about groups under k', async () => {
    const q = (op: string) => `SELECT c.campaign_id, COUNT(DISTINCT c.email_hash) AS n ${IC} GROUP BY 1 HAVING COUNT(DISTINCT c.email_hash) < 50 AND SUM(c.order_value) ${op} 2331`;
    expect(await release(q('>'))).toEqual(await release(q('>=')));
  });

  // LIMIT counts rows before suppression: ordering on an aggregate condition puts the small
  // group first or not, and the released rows (not only the suppressed count) differ.
  it('ORDER BY an aggregate condition with LIMIT says nothing about groups under k', async () => {
    const q = (op: string) => `SELECT c.campaign_id, COUNT(DISTINCT c.email_hash) AS n ${IC} GROUP BY 1 ORDER BY CASE WHEN COUNT(DISTINCT c.email_hash) < 50 AND SUM(c.order_value) ${op} 2331 THEN 0 ELSE 1 END, c.campaign_id LIMIT 1`;
    expect((await release(q('>'))).rows).toEqual((await release(q('>='))).rows);
  });

  // A filter down to a group under k is answered by the suppressed count: 1 if anyone matches.
  it('the suppressed count does not reveal whether a group under k exists', async () => {
    const q = (device: string) => `SELECT c.campaign_id, COUNT(DISTINCT c.email_hash) AS n ${IC} WHERE c.order_date = DATE '2026-02-14' AND i.device_type = '${device}' GROUP BY 1`;
    expect(await release(q('tv'))).toEqual(await release(q('mobile')));
  });

  it('never changes a constant of the query it checked: it refuses one it cannot keep exactly', async () => {
    const big = await checkQuery(agreement, { sql: 'SELECT COUNT(DISTINCT i.email_hash) AS n FROM impressions i WHERE TRY_CAST(i.campaign_id AS HUGEINT) = 12345678901234567891' });
    expect(big.violations.map((v) => v.code)).toEqual(['literal-out-of-range']);
    const safe = await checkQuery(agreement, { sql: 'SELECT COUNT(DISTINCT i.email_hash) AS n FROM impressions i WHERE TRY_CAST(i.campaign_id AS BIGINT) = 9007199254740991' });
    expect(safe.rewritten).toContain('9007199254740991');
  });
});

describe('red team: safe queries refused', () => {
  it.each([
    ['FULL JOIN, which docs/queries.md allows', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i FULL JOIN conversions c ON i.email_hash = c.email_hash GROUP BY 1`],
    ['a conversion rate in floating point', `SELECT i.campaign_id, CAST(COUNT(DISTINCT c.email_hash) AS DOUBLE) * 100 / COUNT(DISTINCT i.email_hash) AS rate ${IC} GROUP BY 1`],
    ['a percentage of aggregates', `SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) * 100.0 / COUNT(DISTINCT i.email_hash) AS pct ${IC} GROUP BY 1`],
    ['a string compared with a date column', `SELECT COUNT(DISTINCT i.email_hash) AS n ${IC} WHERE c.order_date >= '2026-01-01'`],
  ])('%s', async (_name, sql) => {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.violations).toEqual([]);
  });
});
