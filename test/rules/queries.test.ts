import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkQuery, RELEASE_COLUMN, VIOLATION_CODES, type CheckedQuery } from '../../src/rules/index.js';
import { emptyTables, rulesAgreement } from './fixtures.js';

// The checker against the classes of attack in docs/queries.md: each denied query names the
// violation code it must raise; each allowed query is rewritten and then run by DuckDB on the
// agreement's (empty) tables, so an allowed query is also a query that binds.

const agreement = rulesAgreement();
const IC = 'FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash';

const denied: [string, string, string][] = [
  // reading rows
  ['select star', `SELECT * ${IC}`, 'star'],
  ['star in an aggregate query', `SELECT *, count(DISTINCT i.email_hash) ${IC} GROUP BY ALL`, 'star'],
  ['COLUMNS(*)', `SELECT COLUMNS(*) ${IC}`, 'star'],
  ['COLUMNS regex', `SELECT COLUMNS('email.*') ${IC}`, 'star'],
  ['star EXCLUDE', `SELECT * EXCLUDE (email_hash) ${IC}`, 'star'],
  ['star REPLACE', `SELECT * REPLACE ('x' AS email_hash) ${IC}`, 'star'],
  ['qualified star', `SELECT i.* ${IC}`, 'star'],
  ['identity column selected', `SELECT i.email_hash, count(DISTINCT c.email_hash) ${IC} GROUP BY i.email_hash`, 'column-not-allowed'],
  ['non-dimension column selected', `SELECT i.shown_at, count(DISTINCT i.email_hash) ${IC} GROUP BY i.shown_at`, 'column-not-allowed'],
  ['aggregate-only column selected raw', `SELECT c.order_value, count(DISTINCT i.email_hash) ${IC} GROUP BY c.order_value`, 'column-not-allowed'],
  ['alias renames identity to an allowed name', `SELECT i.email_hash AS campaign_id, count(DISTINCT c.email_hash) ${IC} GROUP BY 1`, 'alias-shadows-column'],
  ['alias shadows a dimension in GROUP BY', `SELECT i.placement AS device_type, count(DISTINCT i.email_hash) ${IC} GROUP BY device_type`, 'alias-shadows-column'],
  ['positional reference', `SELECT #1, count(DISTINCT i.email_hash) ${IC}`, 'positional-reference'],
  ['struct constructor', `SELECT {'e': i.email_hash}, count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'constructor'],
  ['list constructor', `SELECT [i.email_hash], count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'constructor'],
  ['row constructor', `SELECT row(i.campaign_id, i.email_hash), count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'constructor'],
  ['lambda', `SELECT list_transform([1], x -> x + 1), count(DISTINCT i.email_hash) ${IC}`, 'lambda'],
  ['reserved alias', `SELECT count(DISTINCT i.email_hash) AS malus_released ${IC}`, 'reserved-name'],
  // aggregates that return a member value
  ['MIN', `SELECT i.campaign_id, MIN(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['MAX', `SELECT i.campaign_id, MAX(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['ANY_VALUE', `SELECT i.campaign_id, ANY_VALUE(i.email_hash) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['FIRST', `SELECT i.campaign_id, FIRST(i.email_hash) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['LAST', `SELECT i.campaign_id, LAST(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['ARG_MIN', `SELECT i.campaign_id, ARG_MIN(i.email_hash, c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['ARG_MAX', `SELECT i.campaign_id, ARG_MAX(i.email_hash, c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['MODE', `SELECT i.campaign_id, MODE(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['MEDIAN', `SELECT i.campaign_id, MEDIAN(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['QUANTILE', `SELECT i.campaign_id, QUANTILE(c.order_value, 0.99) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['LIST', `SELECT i.campaign_id, LIST(i.email_hash) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['ARRAY_AGG', `SELECT i.campaign_id, ARRAY_AGG(i.email_hash) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['STRING_AGG', `SELECT i.campaign_id, STRING_AGG(i.email_hash, ',') ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['HISTOGRAM', `SELECT i.campaign_id, HISTOGRAM(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['aggregate not on the allowlist (STDDEV)', `SELECT i.campaign_id, STDDEV(c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['AVG DISTINCT', `SELECT i.campaign_id, AVG(DISTINCT c.order_value) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['SUM on a column the rule does not sum', `SELECT i.campaign_id, SUM(i.email_hash) ${IC} GROUP BY 1`, 'aggregate-column-not-allowed'],
  ['COUNT(*) with no COUNT in any rule', `SELECT i.campaign_id, COUNT(*) ${IC} GROUP BY 1`, 'aggregate-not-allowed'],
  ['aggregate FILTER clause', `SELECT i.campaign_id, SUM(c.order_value) FILTER (WHERE c.email_hash = 'x') ${IC} GROUP BY 1`, 'aggregate-argument'],
  ['ORDER BY inside an aggregate', `SELECT i.campaign_id, SUM(c.order_value ORDER BY c.order_date) ${IC} GROUP BY 1`, 'aggregate-argument'],
  ['SUM of a constant counts rows', `SELECT i.campaign_id, SUM(1) ${IC} GROUP BY 1`, 'aggregate-argument'],
  // singling out
  ['filter on identity', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.email_hash = 'abc'`, 'filter-not-allowed'],
  ['filter on a non-dimension', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE c.order_value > 1000`, 'filter-not-allowed'],
  ['filter with LIKE on identity', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.email_hash LIKE 'ab%'`, 'filter-not-allowed'],
  ['group by identity', `SELECT count(DISTINCT c.email_hash) ${IC} GROUP BY i.email_hash`, 'column-not-allowed'],
  ['group by a non-dimension', `SELECT count(DISTINCT c.email_hash) ${IC} GROUP BY i.shown_at`, 'column-not-allowed'],
  ['CASE on identity inside SUM', `SELECT SUM(CASE WHEN c.email_hash = 'abc' THEN c.order_value ELSE 0 END) ${IC}`, 'aggregate-argument'],
  ['CASE on a non-dimension in the output', `SELECT CASE WHEN i.shown_at > '2026-01-01' THEN 'new' END AS era, count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'filter-not-allowed'],
  ['HAVING on identity', `SELECT i.campaign_id, count(DISTINCT i.email_hash) ${IC} GROUP BY 1 HAVING i.email_hash = 'abc'`, 'having-not-allowed'],
  ['join on a non-join column', 'SELECT count(DISTINCT i.email_hash) FROM impressions i JOIN conversions c ON i.campaign_id = c.campaign_id', 'join-column'],
  ['inequality join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i JOIN conversions c ON i.email_hash < c.email_hash', 'join-condition'],
  ['expression in a join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i JOIN conversions c ON lower(i.email_hash) = c.email_hash', 'join-condition'],
  ['constant in a join', "SELECT count(DISTINCT i.email_hash) FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash AND c.email_hash = 'abc'", 'join-condition'],
  ['OR in a join where only AND is allowed', 'SELECT count(DISTINCT i.email_hash) FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash OR i.email_hash = c.email_hash', 'join-operator'],
  ['cross join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i CROSS JOIN conversions c', 'cross-join'],
  ['comma join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i, conversions c WHERE i.email_hash = c.email_hash', 'cross-join'],
  ['natural join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i NATURAL JOIN conversions c', 'join-type'],
  ['asof join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i ASOF JOIN conversions c ON i.email_hash >= c.email_hash', 'join-type'],
  ['positional join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i POSITIONAL JOIN conversions c', 'join-type'],
  ['anti join', 'SELECT count(DISTINCT i.email_hash) FROM impressions i ANTI JOIN conversions c ON i.email_hash = c.email_hash', 'join-type'],
  ['self-join', 'SELECT count(DISTINCT a.email_hash) FROM impressions a JOIN impressions b ON a.email_hash = b.email_hash JOIN conversions c ON a.email_hash = c.email_hash', 'self-join'],
  ['join required but missing', 'SELECT c.campaign_id, count(DISTINCT c.email_hash) FROM conversions c GROUP BY 1', 'join-required'],
  ['UNION', `SELECT count(DISTINCT i.email_hash) ${IC} UNION SELECT count(DISTINCT i.email_hash) ${IC}`, 'set-operation'],
  ['EXCEPT', `SELECT count(DISTINCT i.email_hash) ${IC} EXCEPT SELECT 1`, 'set-operation'],
  ['INTERSECT', `SELECT count(DISTINCT i.email_hash) ${IC} INTERSECT SELECT 1`, 'set-operation'],
  ['renaming columns in FROM', 'SELECT count(DISTINCT i.campaign_id) FROM impressions i(campaign_id) JOIN conversions c ON i.campaign_id = c.email_hash', 'column-alias'],
  // escaping the sandbox
  ['read_csv', "SELECT count(*) FROM read_csv('/etc/passwd')", 'table-function'],
  ['read_parquet', "SELECT count(*) FROM read_parquet('/data/*.parquet')", 'table-function'],
  ['glob', "SELECT count(*) FROM glob('/*')", 'table-function'],
  ['range', 'SELECT count(*) FROM range(1000000000)', 'table-function'],
  ['generate_series', 'SELECT count(*) FROM generate_series(1, 10)', 'table-function'],
  ['duckdb_settings', 'SELECT count(*) FROM duckdb_settings()', 'table-function'],
  ['pragma_ table function', "SELECT count(*) FROM pragma_table_info('impressions')", 'table-function'],
  ['current_setting', `SELECT current_setting('threads'), count(DISTINCT i.email_hash) ${IC}`, 'sandbox-function'],
  ['getenv', `SELECT getenv('HOME') AS home, count(DISTINCT i.email_hash) ${IC}`, 'sandbox-function'],
  ['error()', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id = error('boom')`, 'sandbox-function'],
  ['schema-qualified table', `SELECT count(DISTINCT i.email_hash) FROM main.impressions i JOIN conversions c ON i.email_hash = c.email_hash`, 'table-unknown'],
  ['unknown table', 'SELECT count(*) FROM secrets', 'table-unknown'],
  ['COPY', "COPY impressions TO '/tmp/out.csv'", 'statement-not-allowed'],
  ['EXPORT', "EXPORT DATABASE '/tmp/db'", 'statement-not-allowed'],
  ['ATTACH', "ATTACH '/tmp/other.db' AS other", 'statement-not-allowed'],
  ['INSTALL', 'INSTALL httpfs', 'statement-not-allowed'],
  ['LOAD', 'LOAD httpfs', 'statement-not-allowed'],
  ['SET', "SET enable_external_access = true", 'statement-not-allowed'],
  ['PRAGMA', 'PRAGMA database_list', 'statement-not-allowed'],
  ['CALL', 'CALL pragma_version()', 'statement-not-allowed'],
  ['CREATE TABLE', 'CREATE TABLE t AS SELECT 1', 'statement-not-allowed'],
  ['CREATE MACRO', 'CREATE MACRO leak(x) AS x', 'statement-not-allowed'],
  ['INSERT', "INSERT INTO impressions VALUES ('a')", 'statement-not-allowed'],
  ['UPDATE', "UPDATE impressions SET campaign_id = 'x'", 'statement-not-allowed'],
  ['DELETE', 'DELETE FROM impressions', 'statement-not-allowed'],
  ['DESCRIBE', 'DESCRIBE impressions', 'statement-not-allowed'],
  ['SUMMARIZE', 'SUMMARIZE impressions', 'statement-not-allowed'],
  ['SHOW', 'SHOW TABLES', 'statement-not-allowed'],
  ['EXPLAIN', `EXPLAIN SELECT count(DISTINCT i.email_hash) ${IC}`, 'statement-not-allowed'],
  ['two statements', `SELECT count(DISTINCT i.email_hash) ${IC}; SELECT 1`, 'multiple-statements'],
  ['a statement smuggled after a SELECT', `SELECT count(DISTINCT i.email_hash) ${IC}; COPY impressions TO '/tmp/x'`, 'statement-not-allowed'],
  // side channels
  ['window function', `SELECT i.campaign_id, SUM(c.order_value) OVER (PARTITION BY i.campaign_id) ${IC}`, 'window-function'],
  ['QUALIFY', `SELECT i.campaign_id, count(DISTINCT i.email_hash) ${IC} GROUP BY 1 QUALIFY row_number() OVER () = 1`, 'window-function'],
  ['TABLESAMPLE', 'SELECT count(DISTINCT i.email_hash) FROM impressions i TABLESAMPLE 10% JOIN conversions c ON i.email_hash = c.email_hash', 'sample'],
  ['USING SAMPLE', `SELECT count(DISTINCT i.email_hash) ${IC} USING SAMPLE 10`, 'sample'],
  ['recursive CTE', 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r', 'recursive-cte'],
  ['plain CTE', `WITH x AS (SELECT i.email_hash FROM impressions i) SELECT count(DISTINCT x.email_hash) FROM x`, 'cte-not-allowed'],
  ['scalar subquery laundering a value', `SELECT (SELECT max(email_hash) FROM impressions) AS leak, count(DISTINCT i.email_hash) ${IC}`, 'subquery-not-allowed'],
  ['subquery in a filter', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id IN (SELECT campaign_id FROM conversions WHERE order_value > 999)`, 'subquery-not-allowed'],
  ['subquery in FROM', 'SELECT count(*) FROM (SELECT email_hash FROM impressions) s', 'subquery-not-allowed'],
  ['CAST that fails on a value', `SELECT CAST(i.campaign_id AS INTEGER) AS n, count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'cast-not-allowed'],
  [':: cast of a row value', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id::INTEGER > 5`, 'cast-not-allowed'],
  ['arithmetic on a row value', `SELECT SUM(c.order_value * 100) ${IC}`, 'arithmetic-not-allowed'],
  ['overflowing arithmetic on aggregates in HAVING (it sees groups under k)', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS n ${IC} GROUP BY 1 HAVING SUM(c.order_value) * 1000000 > 5`, 'arithmetic-not-allowed'],
  ['CASE inside an aggregate (it escapes k)', `SELECT i.campaign_id, SUM(CASE WHEN i.placement = 'feed' THEN c.order_value ELSE 0 END) AS feed_revenue ${IC} GROUP BY 1`, 'aggregate-argument'],
  ['VALUES list', 'SELECT count(*) FROM (VALUES (1)) v(x)', 'subquery-not-allowed'],
  ['deep nesting', `SELECT ${'('.repeat(200)}1${')'.repeat(200)}`, 'query-too-deep'],
  ['huge text', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id IN (${Array.from({ length: 9000 }, (_, n) => `'c${n}'`).join(',')})`, 'query-too-large'],
  ['huge IN list', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id IN (${Array.from({ length: 1500 }, (_, n) => `${n}`).join(',')})`, 'query-too-large'],
  ['syntax error', 'SELEC count(*) FROM impressions', 'syntax-error'],
  ['parameters in ad-hoc SQL', `SELECT count(DISTINCT i.email_hash) ${IC} WHERE i.campaign_id = $campaign`, 'parameter-not-allowed'],
  ['scalar function not on the allowlist', `SELECT md5(i.campaign_id) AS h, count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'function-not-allowed'],
  ['DISTINCT ON', `SELECT DISTINCT ON (i.campaign_id) i.campaign_id, count(DISTINCT i.email_hash) ${IC} GROUP BY 1`, 'modifier-not-allowed'],
  // rule kinds
  ['no aggregate on aggregation tables', `SELECT i.campaign_id ${IC}`, 'aggregate-required'],
  ['custom-rule table in ad-hoc SQL', "SELECT count(DISTINCT email_hash) FROM claims", 'custom-rule'],
  ['aggregate in a list query', 'SELECT count(DISTINCT a.email_hash) FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash', 'aggregate-in-list-query'],
  ['list column not on the list', 'SELECT l.points FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash', 'column-not-allowed'],
  ['list query selecting identity', 'SELECT a.email_hash FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash', 'column-not-allowed'],
  ['mixing list and aggregation tables', 'SELECT a.segment FROM audiences a JOIN impressions i ON a.email_hash = i.email_hash', 'rule-mismatch'],
];

const allowed: [string, string][] = [
  ['reach and conversions by campaign', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers, COUNT(DISTINCT c.email_hash) AS buyers, SUM(c.order_value) AS revenue ${IC} GROUP BY i.campaign_id`],
  ['group by position', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1`],
  ['group by all, order by all', `SELECT i.campaign_id, i.placement, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY ALL ORDER BY ALL`],
  ['left join', 'SELECT i.device_type, COUNT(DISTINCT c.email_hash) AS buyers FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY 1'],
  ['join with USING', 'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i JOIN conversions c USING (email_hash) GROUP BY i.campaign_id'],
  ['filter on dimensions with comparisons', `SELECT i.campaign_id, SUM(c.order_value) AS revenue ${IC} WHERE i.placement = 'feed' AND i.device_type <> 'tv' AND c.order_date >= DATE '2026-01-01' GROUP BY 1`],
  ['IN, BETWEEN, IS NULL, LIKE, NOT on dimensions', `SELECT COUNT(DISTINCT i.email_hash) AS viewers ${IC} WHERE i.placement IN ('feed', 'story') AND c.order_date BETWEEN DATE '2026-01-01' AND DATE '2026-02-01' AND i.device_type IS NOT NULL AND i.campaign_id LIKE 'spring%' AND NOT i.placement = 'x'`],
  ['allowed scalar function in a group', `SELECT DATE_TRUNC('month', c.order_date) AS month, SUM(c.order_value) AS revenue ${IC} GROUP BY 1`],
  ['TRUNC inside SUM', `SELECT i.campaign_id, SUM(TRUNC(c.order_value)) AS revenue ${IC} GROUP BY 1`],
  ['division of aggregates', `SELECT i.campaign_id, SUM(c.order_value) / COUNT(DISTINCT c.email_hash) AS per_buyer ${IC} GROUP BY 1`],
  ['AVG', `SELECT i.campaign_id, AVG(c.order_value) AS avg_order ${IC} GROUP BY 1`],
  ['HAVING on an aggregate', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1 HAVING COUNT(DISTINCT i.email_hash) > 100`],
  ['ORDER BY alias and LIMIT', `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1 ORDER BY viewers DESC LIMIT 10 OFFSET 1`],
  ['ORDER BY an aggregate', `SELECT i.campaign_id, SUM(c.order_value) AS revenue ${IC} GROUP BY 1 ORDER BY SUM(c.order_value)`],
  ['CASE on a dimension', `SELECT CASE WHEN i.device_type = 'mobile' THEN 'mobile' ELSE 'other' END AS device, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1`],
  ['arithmetic on released aggregates', `SELECT i.campaign_id, SUM(c.order_value) - SUM(c.order_value) / 2 AS half ${IC} GROUP BY 1`],
  ['TRY_CAST of a dimension', `SELECT TRY_CAST(i.campaign_id AS INTEGER) AS n, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1`],
  ['global aggregate', `SELECT COUNT(DISTINCT i.email_hash) AS viewers, SUM(c.order_value) AS revenue ${IC}`],
  ['impressions alone (no join required)', 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS viewers FROM impressions GROUP BY campaign_id'],
  ['unqualified unambiguous columns', 'SELECT placement, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash GROUP BY placement'],
  ['FROM-first syntax', `FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers GROUP BY 1`],
  ['SELECT DISTINCT with an aggregate', `SELECT DISTINCT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1`],
  ['list query', 'SELECT a.segment, l.tier FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash'],
  ['list query with a filter', "SELECT DISTINCT a.region FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash WHERE l.tier = 'gold'"],
  ['comments and a trailing semicolon', `-- reach\nSELECT /* per campaign */ i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers ${IC} GROUP BY 1;`],
];

describe('checkQuery: denied', () => {
  it('covers at least 60 attacks', () => { expect(denied.length).toBeGreaterThanOrEqual(60); });
  it.each(denied)('%s', async (_name, sql, code) => {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.allowed).toBe(false);
    expect(checked.rewritten).toBe('');
    expect(checked.violations.map((v) => v.code)).toContain(code);
    for (const v of checked.violations) {
      expect(v.message.length).toBeGreaterThan(0);
      if (v.position !== null) expect(v.position).toBeLessThanOrEqual(sql.length);
    }
  });
});

describe('checkQuery: allowed', () => {
  let db: Awaited<ReturnType<typeof emptyTables>>;
  beforeAll(async () => {
    db = await emptyTables(agreement);
  });
  afterAll(() => { db.close(); });

  it('covers at least 20 queries', () => { expect(allowed.length).toBeGreaterThanOrEqual(20); });
  it.each(allowed)('%s', async (_name, sql) => {
    const checked: CheckedQuery = await checkQuery(agreement, { sql });
    expect(checked.violations).toEqual([]);
    expect(checked.allowed).toBe(true);
    expect(checked.rewritten).toMatch(/malus_data\./);
    const reader = await db.connection.runAndReadAll(checked.rewritten);
    expect(reader.columnNames().at(-1)).toBe(RELEASE_COLUMN);
  });
});

describe('checkQuery: positions and messages', () => {
  it('points at the offending node', async () => {
    const sql = `SELECT i.campaign_id, MAX(c.order_value) ${IC} GROUP BY 1`;
    const [violation] = (await checkQuery(agreement, { sql })).violations;
    expect(violation?.position).toBe(sql.indexOf('MAX'));
  });
  it('returns every violation, not the first', async () => {
    const sql = `SELECT i.email_hash, MAX(c.order_value), getenv('HOME') ${IC} GROUP BY 1`;
    const codes = (await checkQuery(agreement, { sql })).violations.map((v) => v.code);
    expect(codes).toEqual(expect.arrayContaining(['column-not-allowed', 'aggregate-not-allowed', 'sandbox-function']));
  });
  it('hashes the SQL it checked', async () => {
    const checked = await checkQuery(agreement, { sql: 'SELECT 1' });
    expect(checked.queryHash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('docs/queries.md', () => {
  it('documents every violation code', () => {
    const text = readFileSync(new URL('../../docs/queries.md', import.meta.url), 'utf8');
    for (const code of Object.keys(VIOLATION_CODES)) expect(text).toContain(`| \`${code}\` |`);
  });
});
