import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertAgreement, type Agreement } from '../../src/agreement/index.js';
import { isRefundable, parseRational } from '../../src/dp/index.js';
import { releasePrivately } from '../../src/engine/dp-release.js';
import { openSandbox, parseResultRows, runPrivateSql, type Sandbox } from '../../src/engine/index.js';
import { MalusError } from '../../src/errors/index.js';
import { checkQuery, DP_SEED_PARAMETER, type BoundParameter, type CheckedQuery, type QueryRequest } from '../../src/rules/index.js';
import { makeAgreement, makeKeys, mutable, type ExampleKeys } from '../agreement/helpers.js';
import { datasetOf, piecesOf } from '../engine/query-fixtures.js';
import { emptyTables, rulesAgreement } from './fixtures.js';

// Red-team tests of the differential-privacy path (docs/dp.md). Two kinds:
//   - "closed: …" tests state a property the guarantee needs, each from an attack that once worked
//     (a review found them; the code was fixed to meet them);
//   - "refuses …" / "holds …" tests are attacks that were always stopped, kept as regression tests.

const base = rulesAgreement();
const advertiser = base.parties.find((p) => p.name === 'Advertiser')?.id as string;
const publisher = base.parties.find((p) => p.name === 'Publisher')?.id as string;

/* eslint-disable @typescript-eslint/no-unsafe-call -- drafts are agreement documents edited as plain JSON, then validated */
type Draft = ReturnType<typeof mutable>;

/** rulesAgreement with a required privacy policy on conversions (overridable), then `mutate`. */
function withPolicy(policy: Record<string, unknown>, mutate: (d: Draft) => void = () => undefined): Agreement {
  const d = mutable(base);
  // COUNT(*) on conversions passes the aggregation rule, so that only DP decides.
  (d.tables[0].analysisRule.aggregateColumns as unknown[]).push({ columnNames: ['email_hash'], function: 'COUNT' });
  d.privacy = {
    accounting: 'pure',
    budget: { epsilon: 10, delta: 1e-5 },
    refresh: 'monthly',
    policies: [{ table: 'conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 }, ...policy }],
  };
  mutate(d);
  return assertAgreement(d, 'red-team agreement');
}

const check = (agreement: Agreement, request: QueryRequest | string): Promise<CheckedQuery> =>
  checkQuery(agreement, typeof request === 'string' ? { sql: request } : request, { as: advertiser });
const codes = async (agreement: Agreement, request: QueryRequest | string): Promise<string[]> => (await check(agreement, request)).violations.map((v) => v.code);

/** The L1 sensitivity of measurement `index` as the plan claims it: scale × (epsilon / m). */
function claimedL1(checked: CheckedQuery, index: number): number {
  const privacy = checked.privacy;
  if (privacy === undefined) throw new Error('no privacy plan');
  const m = privacy.plan.measurements[index];
  if (m === undefined) throw new Error('no such measurement');
  const scale = parseRational(m.scale);
  const epsilon = parseRational(privacy.cost.epsilon ?? '1');
  return (Number(scale.num) / Number(scale.den)) * (Number(epsilon.num) / Number(epsilon.den)) / privacy.plan.measurements.length;
}

// ---------------------------------------------------------------------------------------------
// Running rewritten SQL on rows (as test/rules/dp.test.ts does): an in-memory DuckDB per dataset.
// ---------------------------------------------------------------------------------------------

interface Rows {
  conversions?: string[];
  impressions?: string[];
  loyalty?: string[];
}

/** The exact per-group statistics the enclave would noise, as objects of text, on these rows. */
async function exactOn(agreement: Agreement, checked: CheckedQuery, rows: Rows, seed = 7n): Promise<Record<string, string | null>[]> {
  expect(checked.violations).toEqual([]);
  const db = await emptyTables(agreement);
  try {
    for (const [table, values] of Object.entries(rows) as [string, string[]][]) {
      if (values.length > 0) await db.connection.run(`INSERT INTO malus_data.${table} VALUES ${values.join(', ')}`);
    }
    const prepared = await db.connection.prepare(checked.rewritten);
    const bind = (p: BoundParameter): void => {
      const index = prepared.parameterIndex(p.name);
      if (p.type === 'VARCHAR') prepared.bindVarchar(index, String(p.value));
      else if (p.type === 'DOUBLE') prepared.bindDouble(index, p.value as number);
      else if (p.type === 'BIGINT') prepared.bindBigInt(index, BigInt(p.value));
      else throw new Error(`bind ${p.type}`);
    };
    checked.parameters.forEach(bind);
    if (checked.rewritten.includes(`$${DP_SEED_PARAMETER}`)) bind({ name: DP_SEED_PARAMETER, type: 'BIGINT', value: seed } as unknown as BoundParameter);
    const reader = await prepared.runAndReadAll();
    return reader.getRowObjectsJson() as Record<string, string | null>[];
  } finally {
    db.close();
  }
}

/** The largest change of any measurement's per-group total between two neighbouring datasets (L1 over groups). */
function l1Distance(a: Record<string, string | null>[], b: Record<string, string | null>[], measurement: string): number {
  const keyOf = (r: Record<string, string | null>): string => JSON.stringify(Object.entries(r).filter(([k]) => k.startsWith('malus_g_')));
  const totals = (rows: Record<string, string | null>[]): Map<string, number> => new Map(rows.map((r) => [keyOf(r), Number(r[measurement] ?? 0)]));
  const [x, y] = [totals(a), totals(b)];
  let distance = 0;
  for (const key of new Set([...x.keys(), ...y.keys()])) distance += Math.abs((x.get(key) ?? 0) - (y.get(key) ?? 0));
  return distance;
}

const conversion = (who: string, campaign: string, value = '20.00', date = '2026-02-01'): string => `('${who}', '${campaign}', DATE '${date}', ${value})`;
const impression = (who: string, campaign: string): string => `('${who}', '${campaign}', TIMESTAMP '2026-02-01', 'feed', 'mobile')`;

/** A pseudonym as dataset preparation makes them (64 hex characters): the sandbox loads nothing else. */
const pseudonym = (name: string): string => createHash('sha256').update(name).digest('hex');

/** n people who each saw `campaign` and bought once in it. */
function crowd(n: number, campaign: string, prefix = 'p', id: (name: string) => string = (name) => name): Required<Pick<Rows, 'conversions' | 'impressions'>> {
  const people = Array.from({ length: n }, (_, i) => id(`${prefix}-${i}`));
  return { conversions: people.map((p) => conversion(p, campaign)), impressions: people.map((p) => impression(p, campaign)) };
}

// =============================================================================================
// Attacks that once worked, now closed.
// =============================================================================================

describe('closed: templates under DP: a subquery in WHERE or ON makes one person move everyone (planPrivacy never looks there)', () => {
  // The attacker is an analyst with a template both owners approved, whose parameters pick the
  // victim; the DP plan claims COUNT(*) has sensitivity 1 (scale 1 at epsilon 1).
  const victimTemplate = (name: string, sql: string): ((d: Draft) => void) => (d) => {
    (d.templates as unknown[]).push({
      name,
      sql,
      parameters: [
        { name: 'who', type: 'VARCHAR', max: 100 },
        { name: 'amount', type: 'DOUBLE', min: 0, max: 1000000 },
      ],
      approvedBy: [advertiser, publisher],
    });
  };
  const victimExists = 'EXISTS (SELECT 1 FROM conversions v WHERE v.email_hash = $who AND v.order_value > $amount)';
  const cases: [string, string, Record<string, unknown>][] = [
    ['a subquery in WHERE', `SELECT COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash WHERE ${victimExists}`, {}],
    ['a subquery in the ON condition', `SELECT COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash AND ${victimExists}`, {}],
  ];

  it.each(cases)('%s: removing the victim changes the exact statistic by far more than its sensitivity, or the query is refused', async (_, sql, policy) => {
    const agreement = withPolicy(policy, victimTemplate('probe', sql));
    const checked = await check(agreement, { template: 'probe', parameters: { who: 'victim', amount: 99 } });
    if (!checked.allowed) {
      // The fix: refused (dp-query-shape or similar).
      expect(checked.violations.length).toBeGreaterThan(0);
      return;
    }
    const others = crowd(200, 'c1');
    const withVictim = await exactOn(agreement, checked, { conversions: [...others.conversions, conversion('victim', 'c9', '150.00')], impressions: others.impressions });
    const without = await exactOn(agreement, checked, others);
    const index = checked.privacy?.plan.columns.find((c) => c.name === 'n');
    const m = index?.source === 'measurement' ? `malus_m_${index.index}` : 'malus_m_0';
    // Adjacent datasets (one person removed); the plan's sensitivity is at most 1 per measurement here.
    expect(claimedL1(checked, index?.source === 'measurement' ? index.index : 0)).toBeLessThanOrEqual(1);
    expect(l1Distance(withVictim, without, m)).toBeLessThanOrEqual(claimedL1(checked, 0));
  });
});

describe('closed: ad hoc: an identity link placed in a later LEFT JOIN lets a table join on something else', () => {
  // identityOf links tables through ANY equality of identity columns in ANY join's ON. Here
  // conversions joins impressions on campaign_id (a join column in this agreement), and the
  // identity equality c = l sits in the ON of the loyalty LEFT JOIN, where it filters nothing.
  // Every viewer of a campaign then carries every buyer of it in its rows.
  const agreement = withPolicy(
    { publicDomain: [{ table: 'impressions', column: 'campaign_id', values: ['c1', 'c2'] }] },
    (d) => {
      for (const t of d.tables.slice(0, 2)) t.analysisRule.joinColumns.push('campaign_id');
      const loyalty = d.tables.find((t: { name: string }) => t.name === 'loyalty');
      loyalty.analysisRule = {
        type: 'aggregation',
        aggregateColumns: [{ columnNames: ['email_hash'], function: 'COUNT_DISTINCT' }],
        joinColumns: ['email_hash'],
        allowedJoinOperators: ['AND'],
        dimensionColumns: ['tier'],
        scalarFunctions: [],
        outputConstraints: [{ columnName: 'email_hash', minimum: 50, type: 'COUNT_DISTINCT' }],
      };
    },
  );
  const sql = `SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) AS buyers
    FROM impressions i LEFT JOIN conversions c ON i.campaign_id = c.campaign_id
    LEFT JOIN loyalty l ON l.email_hash = i.email_hash AND l.email_hash = c.email_hash
    GROUP BY i.campaign_id`;

  it('one buyer with no impression changes the exact buyers count of every viewer, or the query is refused', async () => {
    const checked = await check(agreement, sql);
    if (!checked.allowed) {
      expect(checked.violations.map((v) => v.code)).toContain('dp-identity-join');
      return;
    }
    const viewers = crowd(200, 'c1').impressions;
    // The victim bought in c1 but saw nothing: removing them removes one conversions row only.
    const withVictim = await exactOn(agreement, checked, { impressions: viewers, conversions: [conversion('victim', 'c1')] });
    const without = await exactOn(agreement, checked, { impressions: viewers });
    const buyers = checked.privacy?.plan.columns.find((c) => c.name === 'buyers');
    const m = buyers?.source === 'measurement' ? buyers.index : -1;
    expect(m).toBeGreaterThanOrEqual(0);
    // Claimed sensitivity: G = 1. Measured: 200 (each viewer's pair now has a non-null buyer).
    expect(l1Distance(withVictim, without, `malus_m_${m}`)).toBeLessThanOrEqual(claimedL1(checked, m));
  });
});

describe('closed: the same query, ad hoc, escapes a template policy (the shipped example agreement)', () => {
  it('buyers_by_campaign is DP as a template, but its SQL sent ad hoc is answered exactly, uncharged', async () => {
    const keys = makeKeys();
    const example = makeAgreement(keys);
    const analyst = keys.advertiser.identity.id;
    const template = await checkQuery(example, { template: 'buyers_by_campaign', parameters: { until: '2026-03-01' } }, { as: analyst });
    expect(template.privacy?.cost).toEqual({ epsilon: '1' });
    const adhoc = await checkQuery(
      example,
      { sql: "SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) AS buyers FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash WHERE c.order_date <= DATE '2026-03-01' GROUP BY i.campaign_id" },
      { as: analyst },
    );
    // Once allowed with k = 50 only, no noise, no charge, when only the template had a policy; the
    // purchases now carry a table policy, so the same SQL ad hoc is noised and charged alike.
    expect(adhoc.allowed && adhoc.privacy === undefined).toBe(false);
  });
});

describe('closed: the enclave fails or succeeds on exact values (a deterministic bit outside the noise)', () => {
  const keys: ExampleKeys = makeKeys();
  const dir = mkdtempSync(join(tmpdir(), 'malus-dp-redteam-'));
  const agreementOf = (policy: Record<string, unknown>): Agreement => {
    const d = mutable(makeAgreement(keys));
    (d.tables[0].analysisRule.aggregateColumns as unknown[]).push({ columnNames: ['email_hash'], function: 'COUNT' });
    d.privacy = {
      accounting: 'pure',
      budget: { epsilon: 10, delta: 1e-5 },
      refresh: 'monthly',
      policies: [{ table: 'conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 }, ...policy }],
    };
    return assertAgreement(d, 'red-team sandbox agreement');
  };

  /** A real locked sandbox with the given conversions and impressions rows (tuples as SQL). */
  async function sandboxWith(agreement: Agreement, rows: { conversions: string[]; impressions: string[] }): Promise<Sandbox> {
    const box = await openSandbox({ threads: 1, memoryLimit: '512MB' });
    const specs = [
      { table: 'conversions', owner: keys.advertiser, columns: 'email_hash, campaign_id, order_date, order_value', types: ['VARCHAR', 'VARCHAR', 'DATE', 'DECIMAL(12,2)'], rows: rows.conversions },
      { table: 'impressions', owner: keys.publisher, columns: 'email_hash, campaign_id, shown_at, placement, device_type', types: ['VARCHAR', 'VARCHAR', 'TIMESTAMP', 'VARCHAR', 'VARCHAR'], rows: rows.impressions },
    ];
    for (const spec of specs) {
      const names = spec.columns.split(', ');
      const casts = names.map((n, i) => `CAST(${n} AS ${spec.types[i] ?? ''}) AS ${n}`).join(', ');
      const sql =
        spec.rows.length === 0
          ? `SELECT ${names.map((n, i) => `CAST(NULL AS ${spec.types[i] ?? ''}) AS ${n}`).join(', ')} WHERE false`
          : `SELECT ${casts} FROM (VALUES ${spec.rows.join(', ')}) t(${spec.columns})`;
      const prepared = await datasetOf(dir, { agreement, table: spec.table, keys: spec.owner, sql, rows: spec.rows.length });
      const table = agreement.tables.find((t) => t.name === spec.table);
      if (table === undefined) throw new Error(spec.table);
      await box.load({ source: piecesOf(prepared.ciphertext), key: prepared.dataKey, manifest: prepared.manifest.manifest, table });
    }
    await box.lock();
    return box;
  }

  async function outcome(agreement: Agreement, sql: string, rows: { conversions: string[]; impressions: string[] }, limits = {}): Promise<string> {
    const checked = await checkQuery(agreement, { sql }, { as: keys.advertiser.identity.id });
    expect(checked.violations).toEqual([]);
    const privacy = checked.privacy;
    if (privacy === undefined) throw new Error('no DP plan');
    const box = await sandboxWith(agreement, rows);
    try {
      await runPrivateSql(box, { sql: checked.rewritten, parameters: checked.parameters, privacy }, limits);
      return 'released';
    } catch (error) {
      if (error instanceof MalusError) return error.code;
      throw error;
    } finally {
      box.close();
    }
  }

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('an AVG through the real sandbox carries one 95% interval per released row, inside the clamping bounds', async () => {
    const agreement = mutable(agreementOf({ bounds: [{ column: 'order_value', lower: 0, upper: 100 }], publicDomain: [{ column: 'campaign_id', values: ['cmp-a', 'cmp-b', 'cmp-c'] }] }));
    agreement.tables[0].analysisRule.aggregateColumns.push({ columnNames: ['order_value'], function: 'AVG' });
    const sql = 'SELECT c.campaign_id, AVG(c.order_value) AS mean FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY c.campaign_id';
    const checked = await checkQuery(assertAgreement(agreement, 'AVG agreement'), { sql }, { as: keys.advertiser.identity.id });
    expect(checked.violations).toEqual([]);
    if (checked.privacy === undefined) throw new Error('no DP plan');
    const buyers = [...crowd(300, 'cmp-a', 'a', pseudonym).conversions, ...crowd(300, 'cmp-b', 'b', pseudonym).conversions];
    const viewers = [...crowd(300, 'cmp-a', 'a', pseudonym).impressions, ...crowd(300, 'cmp-b', 'b', pseudonym).impressions];
    const box = await sandboxWith(assertAgreement(agreement, 'AVG agreement'), { conversions: buyers, impressions: viewers });
    try {
      const result = await runPrivateSql(box, { sql: checked.rewritten, parameters: checked.parameters, privacy: checked.privacy });
      const report = parseResultRows(result.payload);
      const mean = report.privacy?.columns.find((c) => c.column === 'mean');
      // cmp-c has nobody: its noisy count of people stays under k = 50, so it is withheld.
      expect(report.rows.map((row) => row[0])).toEqual(['cmp-a', 'cmp-b']);
      expect(mean?.rows95).toHaveLength(2);
      for (const interval of mean?.rows95 ?? []) {
        if (interval === null) continue;
        expect(interval[0]).toBeGreaterThanOrEqual(0);
        expect(interval[1]).toBeLessThanOrEqual(100);
        expect(interval[0]).toBeLessThanOrEqual(interval[1]);
      }
    } finally {
      box.close();
    }
  });

  it('a global aggregate whose WHERE matches nobody fails (internal) while one matching person succeeds', async () => {
    const agreement = agreementOf({});
    // The victim is the only buyer on 2026-02-03 (a dimension the rule lets the analyst filter on).
    const sql = "SELECT COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash WHERE c.order_date = DATE '2026-02-03'";
    const crowdRows = crowd(60, 'cmp-a', 'p', pseudonym);
    const present = await outcome(agreement, sql, { conversions: [...crowdRows.conversions, conversion(pseudonym('victim'), 'cmp-a', '20.00', '2026-02-03')], impressions: [...crowdRows.impressions, impression(pseudonym('victim'), 'cmp-a')] });
    const absent = await outcome(agreement, sql, crowdRows);
    // Once 'released' against 'internal' ("a DP statistic is not an integer": sum() over no pair was
    // NULL): the job's state alone told whether the victim was there.
    expect([present, absent]).toEqual(['released', 'released']);
  });

  it('the row cap counts the exact groups, even those outside the public domain: one person flips result-too-large', async () => {
    const agreement = agreementOf({ publicDomain: [{ column: 'campaign_id', values: ['cmp-a', 'cmp-b'] }] });
    const sql = 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY c.campaign_id';
    // Five people, each alone in a campaign nobody listed; the victim alone in a sixth. The same
    // happens at the default cap of 100,000 exact groups (a group key with many values, or a template).
    const rows = (n: number): { conversions: string[]; impressions: string[] } => {
      const people = Array.from({ length: n }, (_, i) => pseudonym(`q-${i}`));
      return { conversions: people.map((p, i) => conversion(p, `x-${i}`)), impressions: people.map((p, i) => impression(p, `x-${i}`)) };
    };
    const limits = { maxRows: 5 };
    const absent = await outcome(agreement, sql, rows(5), limits);
    const present = await outcome(agreement, sql, rows(6), limits);
    // Released output is exactly the two domain groups either way; only the exact number of groups
    // DuckDB returned differs. Once 'released' against 'result-too-large'.
    expect([absent, present]).toEqual(['released', 'released']);
  });

  it('a plan with an extreme noise scale runs, and no failure after the run is refundable', async () => {
    // Accepted by the agreement checks and by planPrivacy (bounds under 2^62 units): scale
    // 1000·1000·4·10^18 / (10^-9 / 2) has 34 digits, and parseRational reads at most 30.
    const agreement = agreementOf({ costPerQuery: { epsilon: 1e-9 }, maxRowsPerIdentity: 1000, maxGroupsPerIdentity: 1000, bounds: [{ column: 'order_value', lower: 0, upper: 4e16 }] });
    const sql = 'SELECT SUM(c.order_value) AS total FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash';
    const code = await outcome(agreement, sql, crowd(3, 'cmp-a', 'p', pseudonym));
    // The query ran on the data, so its charge must never come back: it runs (the samplers take the
    // scale), and any failure after the run is one that keeps its charge.
    expect(code === 'released' || !isRefundable(code), code).toBe(true);
  });
});

describe('closed: under DP, a k constraint on the second table is checked against the first table\'s count', () => {
  // The template's outputConstraints say: drop any campaign with fewer than 50 buyers. Under DP
  // only the noisy count of the first table's identities (viewers) is compared with k.
  const agreement = withPolicy({}, (d) => {
    d.privacy.policies = [
      {
        template: 'reach_dp',
        required: true,
        mechanism: 'laplace',
        costPerQuery: { epsilon: 1 },
        publicDomain: [{ table: 'impressions', column: 'campaign_id', values: ['c1'] }],
      },
    ];
    (d.templates as unknown[]).push({
      name: 'reach_dp',
      sql: 'SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) AS buyers FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id',
      parameters: [],
      outputConstraints: [{ table: 'conversions', columnName: 'email_hash', minimum: 50, type: 'COUNT_DISTINCT' }],
      approvedBy: [advertiser, publisher],
    });
  });

  it('releases a campaign with 1 buyer among 300 viewers', async () => {
    const checked = await check(agreement, { template: 'reach_dp', parameters: {} });
    const privacy = checked.privacy;
    if (privacy === undefined) throw new Error('no DP plan');
    const viewers = crowd(300, 'c1').impressions;
    const exact = await exactOn(agreement, checked, { impressions: viewers, conversions: [conversion('p-0', 'c1')] });
    const names = Object.keys(exact[0] ?? {});
    const out = releasePrivately(privacy.plan, { columns: names.map((name) => ({ name, type: 'VARCHAR' })), rows: exact.map((r) => names.map((n) => r[n] ?? null)) });
    // k = 50 distinct buyers is not met (1 buyer): nothing should be released for c1.
    expect(out.rows).toEqual([]);
  });
});

// =============================================================================================
// Attacks that are refused (or bounded): regression tests.
// =============================================================================================

describe('refuses joins that do not tie every row to one person', () => {
  const joinable = withPolicy({ partitionSelection: { delta: 1e-6 } }, (d) => {
    for (const t of d.tables.slice(0, 2)) {
      t.analysisRule.joinColumns.push('campaign_id');
      t.analysisRule.allowedJoinOperators = ['AND', 'OR'];
    }
  });
  it.each([
    ['an OR of the identity equality and another', 'SELECT COUNT(*) FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash OR c.campaign_id = i.campaign_id'],
    ['a join on campaign only', 'SELECT COUNT(*) FROM conversions c JOIN impressions i ON c.campaign_id = i.campaign_id'],
    ['a join through a function', 'SELECT COUNT(*) FROM conversions c JOIN impressions i ON lower(c.email_hash) = i.email_hash'],
    ['a RIGHT JOIN', 'SELECT COUNT(*) FROM conversions c RIGHT JOIN impressions i ON c.email_hash = i.email_hash'],
    ['a FULL JOIN', 'SELECT COUNT(*) FROM conversions c FULL JOIN impressions i ON c.email_hash = i.email_hash'],
    ['a cross join', 'SELECT COUNT(*) FROM conversions c, impressions i'],
    ['USING (no explicit identity equality)', 'SELECT COUNT(*) FROM conversions c JOIN impressions i USING (email_hash)'],
    ['a self-join', 'SELECT COUNT(*) FROM conversions c JOIN conversions d ON c.email_hash = d.email_hash'],
  ])('%s', async (_, sql) => {
    const found = await codes(joinable, sql);
    expect(found.length).toBeGreaterThan(0);
  });

  it('a LEFT JOIN with the identity equality in its own ON is bounded: removing a buyer moves one count by 1', async () => {
    const agreement = withPolicy({ publicDomain: [{ table: 'impressions', column: 'campaign_id', values: ['c1'] }] });
    const checked = await check(agreement, 'SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) AS buyers FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id');
    const viewers = crowd(100, 'c1');
    const a = await exactOn(agreement, checked, viewers);
    const b = await exactOn(agreement, checked, { impressions: viewers.impressions, conversions: viewers.conversions.slice(1) });
    const col = checked.privacy?.plan.columns.find((c) => c.name === 'buyers');
    const m = col?.source === 'measurement' ? col.index : -1;
    expect(l1Distance(a, b, `malus_m_${m}`)).toBe(1);
    expect(claimedL1(checked, m)).toBe(1);
  });
});

describe('refuses ad-hoc shapes that would compute on other people or on exact values', () => {
  const agreement = withPolicy({ partitionSelection: { delta: 1e-6 }, bounds: [{ column: 'order_value', lower: 0, upper: 100 }] });
  const joined = 'FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash';
  it.each([
    ['IN (SELECT …) in WHERE', `SELECT COUNT(*) ${joined} WHERE c.email_hash IN (SELECT email_hash FROM conversions)`],
    ['a correlated scalar subquery', `SELECT COUNT(*) ${joined} WHERE c.order_value > (SELECT avg(order_value) FROM conversions)`],
    ['grouping on the identity', `SELECT c.email_hash, COUNT(*) ${joined} GROUP BY c.email_hash`],
    ['grouping on a function of the identity', `SELECT substr(c.email_hash, 1, 1) AS h, COUNT(*) ${joined} GROUP BY 1`],
    ['HAVING', `SELECT c.campaign_id, COUNT(*) ${joined} GROUP BY 1 HAVING COUNT(*) > 60`],
    ['DISTINCT', `SELECT DISTINCT c.campaign_id, COUNT(*) ${joined} GROUP BY 1`],
    ['ROLLUP', `SELECT c.campaign_id, COUNT(*) ${joined} GROUP BY ROLLUP (c.campaign_id)`],
    ['a window function', `SELECT c.campaign_id, COUNT(*) OVER () ${joined}`],
    ['SUM of an expression', `SELECT SUM(c.order_value * 2) ${joined}`],
    ['SUM DISTINCT', `SELECT SUM(DISTINCT c.order_value) ${joined}`],
    ['COUNT of a non-identity column', `SELECT COUNT(c.order_value) ${joined}`],
    ['COUNT DISTINCT of a non-identity', `SELECT COUNT(DISTINCT c.campaign_id) ${joined}`],
    ['an aggregate with FILTER', `SELECT COUNT(*) FILTER (WHERE c.order_value > 10) ${joined}`],
    ['arithmetic on aggregates', `SELECT SUM(c.order_value) / COUNT(*) ${joined}`],
    ['coalesce around an aggregate', `SELECT coalesce(SUM(c.order_value), 0) ${joined}`],
    ['a CASE inside SUM', `SELECT SUM(CASE WHEN c.campaign_id = 'x' THEN c.order_value ELSE 0 END) ${joined}`],
  ])('%s', async (_, sql) => {
    expect((await codes(agreement, sql)).length).toBeGreaterThan(0);
  });
});

describe('refuses template shapes DP cannot bound', () => {
  const template = (sql: string, policy: Record<string, unknown> = { partitionSelection: { delta: 1e-6 } }): Agreement =>
    withPolicy(policy, (d) => {
      (d.templates as unknown[]).push({ name: 'probe', sql, parameters: [], approvedBy: [advertiser, publisher] });
    });
  it.each([
    ['a CTE', 'WITH x AS (SELECT * FROM conversions) SELECT COUNT(*) AS n FROM x JOIN impressions i ON x.email_hash = i.email_hash'],
    ['a subquery in FROM', 'SELECT COUNT(*) AS n FROM (SELECT * FROM conversions) c JOIN impressions i ON c.email_hash = i.email_hash'],
    ['a self-join', 'SELECT COUNT(*) AS n FROM conversions c JOIN conversions d ON c.email_hash = d.email_hash'],
    ['QUALIFY', 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1 QUALIFY row_number() OVER () = 1'],
    ['a UNION', 'SELECT COUNT(*) AS n FROM conversions UNION ALL SELECT COUNT(*) FROM conversions'],
  ])('%s', async (_, sql) => {
    expect((await codes(template(sql), { template: 'probe', parameters: {} })).length).toBeGreaterThan(0);
  });

  it('the DP seed cannot be read by a template (undeclared parameter) nor declared (reserved name)', async () => {
    const sql = `SELECT COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash WHERE hash(c.email_hash, $${DP_SEED_PARAMETER}) % 2 = 0`;
    expect(await codes(template(sql), { template: 'probe', parameters: {} })).toContain('parameter-undeclared');
    expect(() =>
      withPolicy({}, (d) => {
        (d.templates as unknown[]).push({ name: 'probe', sql, parameters: [{ name: DP_SEED_PARAMETER, type: 'BIGINT', min: 0, max: 1 }], approvedBy: [advertiser, publisher] });
      }),
    ).toThrow(MalusError);
  });

  it('a group key through an expression is not a public domain (upper() could map unlisted values onto listed ones)', async () => {
    const agreement = template('SELECT upper(c.campaign_id) AS cmp, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1', {
      publicDomain: [{ column: 'campaign_id', values: ['C1'] }],
    });
    expect(await codes(agreement, { template: 'probe', parameters: {} })).toEqual(['dp-groups']);
  });
});

describe('holds: bounds, groups, thresholds and plans', () => {
  it('refuses SUM of a column without bounds, and bounds too large to sum in 64-bit units', async () => {
    const joined = 'FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash';
    expect(await codes(withPolicy({}), `SELECT SUM(c.order_value) ${joined}`)).toEqual(['dp-bounds-missing']);
    expect(await codes(withPolicy({ bounds: [{ column: 'order_value', lower: -1, upper: 1e17 }] }), `SELECT SUM(c.order_value) ${joined}`)).toEqual(['dp-bounds-missing']);
  });

  it('negative bounds: the sensitivity is the larger magnitude, and a pair never contributes beyond R·|lower|', async () => {
    const agreement = withPolicy({ maxRowsPerIdentity: 2, bounds: [{ column: 'order_value', lower: -50, upper: 10 }] });
    const checked = await check(agreement, 'SELECT SUM(c.order_value) AS total FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash');
    // -50.00 is 5000 cents, twice (R = 2): 10000.
    expect(claimedL1(checked, checked.privacy?.plan.columns[0]?.source === 'measurement' ? checked.privacy.plan.columns[0].index : 0)).toBe(10000);
    const rows = { conversions: [conversion('v', 'c1', '-999.99'), conversion('v', 'c1', '-999.99'), conversion('v', 'c1', '-999.99')], impressions: [impression('v', 'c1')] };
    const exact = await exactOn(agreement, checked, rows);
    const col = checked.privacy?.plan.columns[0];
    expect(exact[0]?.[`malus_m_${col?.source === 'measurement' ? col.index : 0}`]).toBe('-10000');
  });

  it('NULL values stay outside a SUM: neither NULL rows nor LEFT-join rows without a match count as the lower bound', async () => {
    const bounds = [{ column: 'order_value', lower: 1, upper: 100 }];
    const direct = withPolicy({ maxRowsPerIdentity: 1, bounds });
    const total = await check(direct, 'SELECT SUM(c.order_value) AS total FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash');
    const m = total.privacy?.plan.columns[0]?.source === 'measurement' ? total.privacy.plan.columns[0].index : -1;
    const buyers = { conversions: Array.from({ length: 20 }, (_, i) => conversion(`p${i}`, 'c1', '50.00')), impressions: Array.from({ length: 20 }, (_, i) => impression(`p${i}`, 'c1')) };
    const nullRows = Array.from({ length: 200 }, () => conversion('v', 'c1', 'NULL'));
    const without = await exactOn(direct, total, buyers);
    const withNulls = await exactOn(direct, total, { conversions: [...buyers.conversions, ...nullRows], impressions: [...buyers.impressions, impression('v', 'c1')] });
    expect(without[0]?.[`malus_m_${m}`]).toBe('100000');
    expect(l1Distance(without, withNulls, `malus_m_${m}`)).toBe(0);

    // A viewer who bought nothing brings rows whose order_value is NULL through the LEFT JOIN.
    const joined = withPolicy({ maxRowsPerIdentity: 1, bounds: [{ column: 'order_value', lower: -200, upper: 200 }], publicDomain: [{ table: 'impressions', column: 'campaign_id', values: ['c1'] }] });
    const revenue = await check(joined, 'SELECT i.campaign_id, SUM(c.order_value) AS revenue FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id');
    const col = revenue.privacy?.plan.columns.find((c) => c.name === 'revenue');
    const r = col?.source === 'measurement' ? col.index : -1;
    const people = crowd(20, 'c1');
    const a = await exactOn(joined, revenue, people);
    const b = await exactOn(joined, revenue, { ...people, impressions: [...people.impressions, ...Array.from({ length: 300 }, () => impression('v', 'c1'))] });
    expect(l1Distance(a, b, `malus_m_${r}`)).toBe(0);
    expect(claimedL1(revenue, r)).toBe(20000);
  });

  it('a global aggregate uses G = 1 whatever maxGroupsPerIdentity says (one group)', async () => {
    const checked = await check(withPolicy({ maxGroupsPerIdentity: 7 }), 'SELECT COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash');
    expect(checked.privacy?.plan.maxGroupsPerIdentity).toBe(1);
  });

  it('identities spread over many groups keep at most G of them, whatever the seed', async () => {
    const agreement = withPolicy({ maxGroupsPerIdentity: 2, partitionSelection: { delta: 1e-6 } });
    const checked = await check(agreement, 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1');
    const campaigns = Array.from({ length: 9 }, (_, i) => `k${i}`);
    const rows = { conversions: campaigns.map((k) => conversion('v', k)), impressions: [impression('v', 'k0')] };
    for (const seed of [1n, 2n, 3n, 99n]) {
      const exact = await exactOn(agreement, checked, rows, seed);
      expect(exact.reduce((s, r) => s + Number(r.malus_m_0), 0)).toBe(2);
    }
  });

  it('an identity in fewer than G groups keeps all of them, and the seed decides which G of many are kept', async () => {
    const agreement = withPolicy({ maxGroupsPerIdentity: 3, partitionSelection: { delta: 1e-6 } });
    const checked = await check(agreement, 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1');
    const few = { conversions: ['k0', 'k1'].map((k) => conversion('f', k)), impressions: [impression('f', 'k0')] };
    expect((await exactOn(agreement, checked, few)).map((r) => r.malus_g_0)).toEqual(['k0', 'k1']);
    const campaigns = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    const many = { conversions: campaigns.map((k) => conversion('v', k)), impressions: [impression('v', 'k00')] };
    const chosen = new Set<string>();
    for (const seed of [1n, 2n, 3n, 4n, 5n, 6n]) {
      const kept = (await exactOn(agreement, checked, many, seed)).map((r) => String(r.malus_g_0));
      expect(kept).toHaveLength(3);
      chosen.add(kept.join(','));
    }
    // Six seeds choosing among 220 triples: the same triple every time would mean the seed is ignored.
    expect(chosen.size).toBeGreaterThan(1);
  });

  it('two pairs of one identity whose hashes tie at the G-th place keep fewer than G, and the query does not fail', async () => {
    const agreement = withPolicy({ maxGroupsPerIdentity: 2, partitionSelection: { delta: 1e-6 } });
    const checked = await check(agreement, 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1');
    const lines = checked.rewritten.split('\n');
    const pairsAt = lines.findIndex((line) => line.startsWith('malus_pairs AS ('));
    expect(pairsAt).toBeGreaterThan(0);
    // A 64-bit hash collision cannot be found on purpose, so the pairs are given with chosen hashes.
    // The pair's aggregates (one row each here) keep their names from the real CTE.
    const aggregates = [...(lines[pairsAt] ?? '').matchAll(/ AS (malus_[ns]_\d+)/g)].map((m) => m[1]);
    expect(aggregates.length).toBeGreaterThan(0);
    const withHashes = (hashes: number[]): string => {
      const values = hashes.map((h, i) => `('v', 'k${i}', CAST(${h} AS UBIGINT)${', 1'.repeat(aggregates.length)})`).join(', ');
      const copy = [...lines];
      copy[pairsAt] = `malus_pairs AS (SELECT * FROM (VALUES ${values}) AS t(malus_id, malus_g_0, malus_h, ${aggregates.join(', ')})),`;
      return copy.join('\n');
    };
    // DuckDB's hash() is not keyed: the data can choose such ties, so they must not fail the query
    // (a failure one person's rows decide would be a bit outside the noise).
    const kept = async (hashes: number[]): Promise<unknown[]> =>
      (await exactOn(agreement, { ...checked, rewritten: withHashes(hashes) }, { conversions: [], impressions: [] })).map((r) => r.malus_g_0);
    expect(await kept([5, 5, 5])).toEqual([]);
    expect(await kept([3, 5, 5])).toEqual(['k0']);
    expect(await kept([3, 5, 5, 5, 1])).toEqual(['k0', 'k4']);
    expect(await kept([4, 5, 6])).toEqual(['k0', 'k1']);
    // Ties below the boundary are harmless: exactly G pairs are kept.
    const below = { ...checked, rewritten: withHashes([5, 5, 9]) };
    expect((await exactOn(agreement, below, { conversions: [], impressions: [] })).map((r) => r.malus_g_0)).toEqual(['k0', 'k1']);
  });

  it('the partition-selection threshold keeps a one-person group under delta/G per group', async () => {
    const agreement = withPolicy({ maxGroupsPerIdentity: 3, partitionSelection: { delta: 1e-6 } });
    const checked = await check(agreement, 'SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash GROUP BY 1');
    const plan = checked.privacy?.plan;
    const b = parseRational(plan?.measurements[0]?.scale ?? '0');
    const tau = Number(plan?.release.find((r) => r.measurement === 0)?.minimum);
    // P(1 + X ≥ τ) ≤ exp(-(τ-1)/b), over G groups at most delta.
    expect(3 * Math.exp(-(tau - 1) / (Number(b.num) / Number(b.den)))).toBeLessThanOrEqual(1e-6);
    expect(checked.privacy?.cost).toEqual({ epsilon: '1', delta: '1/1000000' });
  });

  it('NULL and unlisted group keys never leave under a public domain', () => {
    const plan = {
      measurements: [{ name: 'malus_m_0', statistic: 'identities' as const, mechanism: 'laplace' as const, scale: '1', unit: '1' }],
      groups: [{ name: 'malus_g_0', domain: ['a'] }],
      columns: [{ name: 'g', source: 'group' as const, index: 0 }],
      release: [],
      maxRowsPerIdentity: 1,
      maxGroupsPerIdentity: 1,
    };
    const out = releasePrivately(plan, { columns: [{ name: 'malus_g_0', type: 'VARCHAR' }, { name: 'malus_m_0', type: 'VARCHAR' }], rows: [[null, '500'], ['A', '500'], ['secret', '500']] });
    expect(out.rows).toEqual([['a']]);
  });

  it('the plan (and so the charge) does not depend on template parameters', async () => {
    const keys = makeKeys();
    const example = makeAgreement(keys);
    const as = { as: keys.advertiser.identity.id };
    const a = await checkQuery(example, { template: 'buyers_by_campaign', parameters: { until: '2020-01-01' } }, as);
    const b = await checkQuery(example, { template: 'buyers_by_campaign', parameters: { until: '2099-12-31' } }, as);
    expect(a.privacy).toEqual(b.privacy);
    expect(a.rewritten).toBe(b.rewritten);
  });

  it('two table policies on one query are refused rather than the cheaper one chosen', async () => {
    const agreement = withPolicy({}, (d) => {
      d.privacy.policies.push({ table: 'impressions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 0.01 } });
    });
    expect(await codes(agreement, 'SELECT COUNT(*) FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash')).toEqual(['dp-policy-conflict']);
  });
});

