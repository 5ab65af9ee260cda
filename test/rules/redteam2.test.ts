import { describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { checkQuery } from '../../src/rules/index.js';
import { rulesAgreement } from './fixtures.js';

// Second red-team pass (after the fixes for redteam.test.ts). Every query here was ALLOWED by the
// checker when written and, run on DuckDB over the data of redteam.test.ts (60 people in c1, a
// victim with a unique order date seen on tv, a campaign c9 of three buyers with orders of 777.00),
// raised an error only when the victim (or the group under k) was there, or read outside the
// collaboration's tables. Each entry names the code that seems to fit.

const agreement = rulesAgreement();
const IC = 'FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash';
const VICTIM = "c.order_date = DATE '2026-02-14' AND i.device_type = 'tv'";
const N = 'SELECT COUNT(DISTINCT i.email_hash) AS n';

const denied: [string, string, string][] = [
  // 1. typeOf() says 'unknown' for everything it does not model (OPERATOR nodes, scalar functions,
  //    casts to types other than text/number/date/bool, constants of such types), and 'unknown'
  //    compares with anything: DuckDB then casts the text side, which fails on the victim's row only.
  ['IS NULL (an OPERATOR, "unknown") against a text CASE', `${N} ${IC} WHERE (c.campaign_id IS NULL) = CASE WHEN ${VICTIM} THEN 'x' ELSE 'false' END`, 'comparison-type'],
  ['IN (an OPERATOR, "unknown") against a text CASE', `${N} ${IC} WHERE (c.campaign_id IN ('c1')) = CASE WHEN ${VICTIM} THEN 'x' ELSE 'true' END`, 'comparison-type'],
  ['an allowed scalar function (DATE_TRUNC, "unknown") against a text CASE', `${N} ${IC} WHERE DATE_TRUNC('day', c.order_date) <> CASE WHEN ${VICTIM} THEN 'x' ELSE '1999-01-01' END`, 'comparison-type'],
  ['TRY_CAST to TIME ("unknown") against a text CASE', `${N} ${IC} WHERE TRY_CAST(c.campaign_id AS TIME) IS NULL AND TIME '10:00' <> CASE WHEN ${VICTIM} THEN 'x' ELSE '10:00' END`, 'comparison-type'],
  ['TRY_CAST to UUID ("unknown") against a text CASE', `${N} ${IC} WHERE TRY_CAST('00000000-0000-0000-0000-000000000000' AS UUID) <> CASE WHEN ${VICTIM} THEN 'x' ELSE '00000000-0000-0000-0000-000000000001' END`, 'comparison-type'],
  ['a BLOB constant ("unknown") against a text CASE', `${N} ${IC} WHERE '\\x00'::BLOB <> CASE WHEN ${VICTIM} THEN '\\xZZ' ELSE 'a' END`, 'comparison-type'],
  ['a list query: IS NULL against a text CASE (no scalar function needed)', "SELECT a.segment FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash WHERE (l.tier IS NULL) = CASE WHEN l.tier = 'platinum' THEN 'x' ELSE 'false' END", 'comparison-type'],
  // HAVING sees every group: this fails only if some group under k has SUM = 2331 (c9's three buyers).
  ['HAVING: TRUNC of an aggregate against a text CASE', `SELECT c.campaign_id, COUNT(DISTINCT c.email_hash) AS n ${IC} GROUP BY 1 HAVING NOT (TRUNC(SUM(c.order_value)) = CASE WHEN SUM(c.order_value) = 2331 THEN 'x' ELSE '1' END)`, 'comparison-type'],
  // 2. The classes are too coarse: within 'number' and within 'date', DuckDB still casts a value,
  //    and the widening cast can overflow.
  ['DECIMAL(38,0) against a DECIMAL(1,1) literal: widened to DECIMAL(38,1), overflows', `${N} ${IC} WHERE TRY_CAST(CASE WHEN ${VICTIM} THEN '99999999999999999999999999999999999999' ELSE '1' END AS DECIMAL(38,0)) > 0.5`, 'comparison-type'],
  ['HUGEINT against a DECIMAL literal', `${N} ${IC} WHERE TRY_CAST(CASE WHEN ${VICTIM} THEN '99999999999999999999999999999999999999' ELSE '1' END AS HUGEINT) > 0.5`, 'comparison-type'],
  ['TIMESTAMP against TIMESTAMP_NS: cast to nanoseconds overflows after 2262', `${N} ${IC} WHERE TRY_CAST(CASE WHEN ${VICTIM} THEN '3000-01-01' ELSE '2020-01-01' END AS TIMESTAMP) > TIMESTAMP_NS '2020-01-01'`, 'comparison-type'],
  // 3. A select alias in HAVING is the select item's expression, evaluated for every group (under k
  //    too), but the checker accepts the bare name without checking the expression as HAVING.
  //    Binary search on c9's sum (3 buyers): this overflows iff SUM > 2330.
  ['HAVING on an alias of multiplied aggregates', `SELECT c.campaign_id, COUNT(DISTINCT c.email_hash) AS n, SUM(c.order_value) * 429184549 * 1000000000000 * 1000000000000 AS big ${IC} WHERE c.campaign_id = 'c9' GROUP BY 1 HAVING big IS NULL`, 'alias-reference'],
];

describe('red team 2: denied', () => {
  it.each(denied)('%s', async (_name, sql, code) => {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.allowed).toBe(false);
    expect(checked.violations.map((v) => v.code)).toContain(code);
  });

  // DuckDB serializes an infinite DOUBLE literal as Infinity, which JSON.parse rejects.
  it.each([
    ['1e400 in a filter', `${N} ${IC} WHERE TRY_CAST(i.device_type AS DOUBLE) = 1e400`],
    ['-1e400 in a filter', `${N} ${IC} WHERE TRY_CAST(i.device_type AS DOUBLE) = -1e400`],
    ['1e999 in the select list', `SELECT COUNT(DISTINCT i.email_hash) * 1e999 AS n ${IC}`],
  ])('does not throw on %s', async (_name, sql) => {
    const checked = await checkQuery(agreement, { sql });
    expect(checked.allowed).toBe(false);
    expect(checked.violations.map((v) => v.code)).toContain('literal-out-of-range');
  });
});

describe('red team 2: templates', () => {
  // cteNamesOf() collects CTE names from the whole tree, ignoring scope: a CTE nested where it
  // matters not makes the same name elsewhere "a CTE" to the checker and the rewrite, while DuckDB
  // binds it to a catalog view (duckdb_tables, pg_settings, …) or an agreement table.
  function withTemplate(name: string, sql: string, owners: 'advertiser' | 'both'): Agreement {
    const a = structuredClone(agreement) as { tables: { name: string; owner: string }[]; templates: unknown[] };
    const adv = a.tables.find((t) => t.name === 'conversions')?.owner as string;
    const pub = a.tables.find((t) => t.name === 'impressions')?.owner as string;
    a.templates.push({ name, sql, parameters: [], approvedBy: owners === 'both' ? [adv, pub] : [adv] });
    return a as unknown as Agreement;
  }

  it.each([
    ['duckdb_tables (every dataset\'s name and row count)', 'WITH x AS (WITH duckdb_tables AS (SELECT 1 AS a) SELECT a FROM duckdb_tables) SELECT t.table_name, t.estimated_size, (SELECT count(*) FROM loyalty) AS n FROM duckdb_tables t'],
    ['pg_settings (every DuckDB setting: directories, limits)', 'WITH x AS (WITH pg_settings AS (SELECT 1 AS a) SELECT a FROM pg_settings) SELECT s.name, s.setting, (SELECT count(*) FROM loyalty) AS n FROM pg_settings s'],
  ])('a shadowing CTE does not let a template read %s', async (_name, sql) => {
    const checked = await checkQuery(withTemplate('sys_view', sql, 'advertiser'), { template: 'sys_view', parameters: {} });
    expect(checked.allowed).toBe(false);
    expect(checked.violations.map((v) => v.code)).toContain('table-unknown');
  });

  it('a shadowing CTE does not hide a table from the approval check', async () => {
    const sql = 'WITH x AS (WITH impressions AS (SELECT 1 AS a) SELECT a FROM impressions) SELECT count(*) AS n FROM impressions JOIN loyalty l ON impressions.email_hash = l.email_hash';
    const checked = await checkQuery(withTemplate('unapproved', sql, 'advertiser'), { template: 'unapproved', parameters: {} });
    expect(checked.allowed).toBe(false);
    expect(checked.violations.map((v) => v.code)).toContain('template-not-approved');
  });
});
