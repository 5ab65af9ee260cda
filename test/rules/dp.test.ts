import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgreement, type Agreement } from '../../src/agreement/index.js';
import { parseRational } from '../../src/dp/index.js';
import { MalusError } from '../../src/errors/index.js';
import { checkQuery, DP_SEED_PARAMETER, type CheckedQuery } from '../../src/rules/index.js';
import { mutable } from '../agreement/helpers.js';
import { emptyTables, rulesAgreement } from './fixtures.js';

// Queries under a privacy policy: which shapes get a DP plan, what they cost, the noise scales
// the plan fixes, and the rewrite's contribution bounds on real rows.

const base = rulesAgreement();
const analyst = base.parties.find((p) => p.name === 'Advertiser')?.id as string;

function withPolicy(policy: Record<string, unknown>, settings: Record<string, unknown> = {}): Agreement {
  const d = mutable(base);
  // COUNT(*) and COUNT(DISTINCT order_value) pass the aggregation rule, so that only DP can refuse them.
  (d.tables[0].analysisRule.aggregateColumns as unknown[]).push({ columnNames: ['email_hash'], function: 'COUNT' }, { columnNames: ['order_value'], function: 'COUNT_DISTINCT' });
  d.privacy = {
    accounting: 'pure',
    budget: { epsilon: 10, delta: 1e-5 },
    refresh: 'monthly',
    policies: [{ table: 'conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 }, ...policy }],
    ...settings,
  };
  return assertAgreement(d, 'dp test agreement');
}

const selection = withPolicy({
  maxRowsPerIdentity: 2,
  maxGroupsPerIdentity: 3,
  bounds: [{ column: 'order_value', lower: 0, upper: 100 }],
  partitionSelection: { delta: 1e-6 },
});

const REACH = `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers, COUNT(DISTINCT c.email_hash) AS buyers, SUM(c.order_value) AS revenue
  FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id`;

const check = (agreement: Agreement, sql: string): Promise<CheckedQuery> => checkQuery(agreement, { sql }, { as: analyst });
const codes = async (agreement: Agreement, sql: string): Promise<string[]> => (await check(agreement, sql)).violations.map((v) => v.code);

describe('the plan of a query under a privacy policy', () => {
  it('splits the cost over the measurements and scales each noise to its sensitivity', async () => {
    const checked = await check(selection, REACH);
    expect(checked.violations).toEqual([]);
    const privacy = checked.privacy;
    expect(privacy).toBeDefined();
    if (privacy === undefined) return;
    expect(privacy.cost).toEqual({ epsilon: '1', delta: '1/1000000' });
    const { measurements } = privacy.plan;
    // identities (the threshold), distinct buyers, the clamped sum: epsilon 1/3 each.
    expect(measurements.map((m) => m.statistic)).toEqual(['identities', 'distinct-identities', 'sum']);
    // One identity reaches 3 groups: L1 sensitivity 3 for a distinct count, 3·2·10000 cents for the sum.
    expect(measurements.map((m) => m.scale)).toEqual(['9', '9', '180000']);
    expect(measurements[2]?.unit).toBe('1/100');
    expect(measurements[2]?.bounds).toEqual(['0', '10000']);
    // τ = 1 + ⌈9·ln(3/1e-6)⌉ + 1 = 137 is above the tables' k of 50.
    expect(privacy.plan.release).toEqual([
      { measurement: 0, minimum: '137' },
      // conversions' own k = 50, on the noisy count of buyers (the buyers column itself).
      { measurement: 1, minimum: '50' },
    ]);
    expect(privacy.plan.columns.map((c) => c.name)).toEqual(['campaign_id', 'viewers', 'buyers', 'revenue']);
    expect(checked.rewritten).not.toContain('malus_released');
    expect(checked.rewritten).toContain(`$${DP_SEED_PARAMETER}`);
  });

  it('releases exactly a public domain without spending delta; k still applies to the noisy count', async () => {
    const agreement = withPolicy({ publicDomain: [{ table: 'impressions', column: 'campaign_id', values: ['cmp-a', 'cmp-b'] }] });
    const checked = await check(agreement, 'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i JOIN conversions c ON c.email_hash = i.email_hash GROUP BY 1');
    expect(checked.violations).toEqual([]);
    expect(checked.privacy?.cost).toEqual({ epsilon: '1' });
    expect(checked.privacy?.plan.groups).toEqual([{ name: 'malus_g_0', domain: ['cmp-a', 'cmp-b'] }]);
    // Each table's k on the noisy count of its own identities: the viewers column itself, and the buyers.
    expect(checked.privacy?.plan.release).toEqual([
      { measurement: 0, minimum: '50' },
      { measurement: 1, minimum: '50' },
    ]);
    expect(checked.privacy?.plan.measurements.map((m) => [m.statistic, m.scale])).toEqual([
      ['identities', '2'],
      ['distinct-identities', '2'],
    ]);
  });

  it('under zCDP gives Gaussian noise whose sigma meets rho exactly, and Laplace for the threshold', async () => {
    const agreement = withPolicy(
      { mechanism: 'gaussian', costPerQuery: { rho: 0.5 }, maxRowsPerIdentity: 2, partitionSelection: { delta: 1e-7 } },
      { accounting: 'zcdp', budget: { rho: 5, delta: 1e-5 } },
    );
    const checked = await check(agreement, 'SELECT c.campaign_id, COUNT(*) AS orders FROM conversions c JOIN impressions i ON i.email_hash = c.email_hash GROUP BY c.campaign_id');
    expect(checked.violations).toEqual([]);
    expect(checked.privacy?.cost).toEqual({ rho: '1/2', delta: '1/10000000' });
    // The buyers (the threshold), the viewers (impressions' k), the orders: rho 1/6 each.
    const [threshold, viewers, orders] = checked.privacy?.plan.measurements ?? [];
    expect(threshold?.mechanism).toBe('laplace');
    expect(viewers?.statistic).toBe('distinct-identities');
    expect(orders?.mechanism).toBe('gaussian');
    // COUNT(*): L2² = G·R² = 4; rho 1/6 for it: sigma² ≥ 4 / (2 · 1/6) = 12.
    const sigma = parseRational(orders?.scale ?? '0');
    expect(sigma.num * sigma.num >= 12n * sigma.den * sigma.den).toBe(true);
    expect(Number(sigma.num) / Number(sigma.den)).toBeCloseTo(Math.sqrt(12), 6);
    // The Laplace threshold count spends rho 1/6 as epsilon ≤ sqrt(2·1/6).
    const b = parseRational(threshold?.scale ?? '0');
    expect(Number(b.num) / Number(b.den)).toBeGreaterThanOrEqual(1 / Math.sqrt(1 / 3));
  });

  it('reads GROUP BY position and alias as the select item', async () => {
    const checked = await check(selection, 'SELECT c.campaign_id AS cmp, COUNT(*) AS n FROM conversions c JOIN impressions i ON i.email_hash = c.email_hash GROUP BY cmp');
    expect(checked.violations).toEqual([]);
    expect(checked.rewritten).toContain('c.campaign_id AS malus_g_0');
  });

  it('answers a query on a table without a policy with k alone', async () => {
    const checked = await check(selection, 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS n FROM impressions GROUP BY campaign_id');
    expect(checked.violations).toEqual([]);
    expect(checked.privacy).toBeUndefined();
    expect(checked.rewritten).toContain('malus_released');
  });
});

describe('queries differential privacy cannot bound', () => {
  const joined = 'FROM conversions c JOIN impressions i ON i.email_hash = c.email_hash';
  it.each([
    ['HAVING', `SELECT c.campaign_id, COUNT(*) ${joined} GROUP BY 1 HAVING COUNT(*) > 60`, 'dp-query-shape'],
    ['ORDER BY', `SELECT c.campaign_id, COUNT(*) AS n ${joined} GROUP BY 1 ORDER BY n`, 'dp-query-shape'],
    ['LIMIT', `SELECT c.campaign_id, COUNT(*) AS n ${joined} GROUP BY 1 LIMIT 3`, 'dp-query-shape'],
    ['arithmetic on an aggregate', `SELECT c.campaign_id, COUNT(*) * 2 AS n ${joined} GROUP BY 1`, 'dp-query-shape'],
    ['COUNT DISTINCT of a non-identity', `SELECT COUNT(DISTINCT c.order_value) ${joined}`, 'dp-query-shape'],
    ['a RIGHT JOIN', 'SELECT COUNT(*) FROM conversions c RIGHT JOIN impressions i ON i.email_hash = c.email_hash', 'dp-identity-join'],
  ])('refuses %s', async (_, sql, code) => {
    expect(await codes(selection, sql)).toContain(code);
  });

  it('refuses a SUM of a column the policy gives no bounds', async () => {
    const agreement = withPolicy({ partitionSelection: { delta: 1e-6 } });
    expect(await codes(agreement, `SELECT SUM(c.order_value) ${joined}`)).toEqual(['dp-bounds-missing']);
  });

  it('refuses group keys without a public domain when the policy selects no groups', async () => {
    const agreement = withPolicy({});
    expect(await codes(agreement, `SELECT c.campaign_id, COUNT(*) ${joined} GROUP BY 1`)).toEqual(['dp-groups']);
    // A global aggregate has one group everyone knows of.
    expect(await codes(agreement, `SELECT COUNT(*) ${joined}`)).toEqual([]);
  });

  it('refuses a query two table policies apply to', async () => {
    const d = mutable(selection);
    (d.privacy.policies as unknown[]).push({ table: 'impressions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 } });
    const agreement = assertAgreement(d, 'two policies');
    expect(await codes(agreement, `SELECT COUNT(*) ${joined}`)).toEqual(['dp-policy-conflict']);
  });
});

describe('the agreement refuses privacy settings it cannot honour', () => {
  const invalid = (policy: Record<string, unknown>, settings: Record<string, unknown> = {}): string => {
    try {
      withPolicy(policy, settings);
    } catch (error) {
      if (error instanceof MalusError) return JSON.stringify(error.issues);
      throw error;
    }
    return 'accepted';
  };
  it.each([
    ['gaussian noise under pure accounting', { mechanism: 'gaussian' }, {}, 'privacy.policies[0].mechanism'],
    ['partition selection without a delta budget', { partitionSelection: { delta: 1e-6 } }, { budget: { epsilon: 10 } }, 'privacy.policies[0].partitionSelection'],
    ['bounds of a VARCHAR column', { bounds: [{ column: 'campaign_id', lower: 0, upper: 1 }] }, {}, 'privacy.policies[0].bounds[0].column'],
    ['bounds upside down', { bounds: [{ column: 'order_value', lower: 5, upper: 1 }] }, {}, 'privacy.policies[0].bounds[0].upper'],
    ['a public domain of a DATE column', { publicDomain: [{ column: 'order_date', values: ['2026-01-01'] }] }, {}, 'privacy.policies[0].publicDomain[0].column'],
  ])('%s', (_, policy, settings, path) => {
    expect(invalid(policy, settings)).toContain(path);
  });
});

describe('the rewrite bounds each identity on real rows', () => {
  let db: Awaited<ReturnType<typeof emptyTables>>;
  beforeAll(async () => {
    db = await emptyTables(base);
    const impressions: string[] = [];
    const conversions: string[] = [];
    // heavy: 6 campaigns, 10 orders of 500.00 in each; light-<n>: one order of 20.00 in campaign c1.
    for (let c = 1; c <= 6; c++) {
      impressions.push(`('heavy', 'c${c}', TIMESTAMP '2026-02-01', 'feed', 'mobile')`);
      for (let o = 0; o < 10; o++) conversions.push(`('heavy', 'c${c}', DATE '2026-02-01', 500.00)`);
    }
    for (let n = 0; n < 40; n++) {
      impressions.push(`('light-${n}', 'c1', TIMESTAMP '2026-02-01', 'feed', 'mobile')`);
      conversions.push(`('light-${n}', 'c1', DATE '2026-02-01', 20.00)`);
    }
    await db.connection.run(`INSERT INTO malus_data.impressions VALUES ${impressions.join(', ')}`);
    await db.connection.run(`INSERT INTO malus_data.conversions VALUES ${conversions.join(', ')}`);
  });
  afterAll(() => {
    db.close();
  });

  /** The exact rows of the rewrite, each measurement under its statistic's name. */
  async function exact(sql: string, seed: bigint): Promise<Record<string, string>[]> {
    const checked = await check(selection, sql);
    expect(checked.violations).toEqual([]);
    const prepared = await db.connection.prepare(checked.rewritten);
    if (checked.rewritten.includes(`$${DP_SEED_PARAMETER}`)) prepared.bindBigInt(1, seed);
    const named = new Map(checked.privacy?.plan.measurements.map((m) => [m.name, m.statistic]));
    const rows = (await prepared.runAndReadAll()).getRowObjectsJson() as Record<string, string>[];
    return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [named.get(k) ?? k, v])));
  }

  it('keeps at most maxGroups groups and maxRows rows per identity, and clamps each value', async () => {
    for (const seed of [1n, 2n, 3n]) {
      const rows = await exact('SELECT c.campaign_id, COUNT(*) AS n, SUM(c.order_value) AS revenue FROM conversions c JOIN impressions i ON i.email_hash = c.email_hash GROUP BY 1', seed);
      // heavy reaches 3 of its 6 campaigns with 2 orders each, each clamped to 100.00.
      const heavy = rows.filter((r) => r.malus_g_0 !== 'c1' || r.rows !== '40');
      const orders = rows.reduce((sum, r) => sum + Number(r.rows), 0);
      expect(orders).toBe(40 + 3 * 2);
      expect(heavy.length).toBeLessThanOrEqual(3);
      const revenue = rows.reduce((sum, r) => sum + Number(r.sum), 0);
      expect(revenue).toBe(40 * 2000 + 3 * 2 * 10000);
      const c1 = rows.find((r) => r.malus_g_0 === 'c1');
      expect(Number(c1?.identities)).toBeGreaterThanOrEqual(40);
    }
  });

  it('chooses the groups by the seed: other seeds, other campaigns', async () => {
    const chosen = new Set<string>();
    for (let seed = 0n; seed < 12n; seed++) {
      const rows = await exact('SELECT c.campaign_id, COUNT(*) AS n FROM conversions c JOIN impressions i ON i.email_hash = c.email_hash GROUP BY 1', seed);
      chosen.add(rows.map((r) => r.malus_g_0).sort().join(','));
    }
    expect(chosen.size).toBeGreaterThan(1);
  });
});

describe('neighbouring datasets through the real plan and rewrite (one person added)', () => {
  // D: 40 light people, each with one impression and one 20.00 order in one of four campaigns.
  // D': the same and one heavy person seen in 6 campaigns with 60 orders of 500.00. The pure-DP
  // loss of the Laplace measurements is at most Σ over measurements of ‖f(D) − f(D')‖₁ / scale,
  // which must stay within the policy's epsilon for any seed (the enclave picks it at random).
  const dbs: Awaited<ReturnType<typeof emptyTables>>[] = [];
  const light = (n: number) => ({ impression: `('light-${n}', 'c${1 + (n % 4)}', TIMESTAMP '2026-02-01', 'feed', 'mobile')`, order: `('light-${n}', 'c${1 + (n % 4)}', DATE '2026-02-01', 20.00)` });
  beforeAll(async () => {
    for (const withHeavy of [false, true]) {
      const db = await emptyTables(base);
      const impressions = Array.from({ length: 40 }, (_, n) => light(n).impression);
      const conversions = Array.from({ length: 40 }, (_, n) => light(n).order);
      if (withHeavy) {
        for (let c = 1; c <= 6; c++) {
          impressions.push(`('heavy', 'c${c}', TIMESTAMP '2026-02-01', 'feed', 'mobile')`);
          for (let o = 0; o < 10; o++) conversions.push(`('heavy', 'c${c}', DATE '2026-02-01', 500.00)`);
        }
      }
      await db.connection.run(`INSERT INTO malus_data.impressions VALUES ${impressions.join(', ')}`);
      await db.connection.run(`INSERT INTO malus_data.conversions VALUES ${conversions.join(', ')}`);
      dbs.push(db);
    }
  });
  afterAll(() => {
    for (const db of dbs) db.close();
  });

  const asNumber = (text: string): number => {
    const { num, den } = parseRational(text);
    return Number(num) / Number(den);
  };

  /** Per column, per group, the value a run gives. */
  async function valuesOf(db: (typeof dbs)[number], sql: string, seed?: bigint): Promise<Map<string, Map<string, number>>> {
    const prepared = await db.connection.prepare(sql);
    if (seed !== undefined) prepared.bindBigInt(1, seed);
    const rows = (await prepared.runAndReadAll()).getRowObjectsJson() as Record<string, string | null>[];
    const columns = new Map<string, Map<string, number>>();
    for (const row of rows) {
      const [groupColumn, ...rest] = Object.keys(row);
      for (const column of rest) {
        const values = columns.get(column) ?? new Map<string, number>();
        values.set(String(row[groupColumn as string]), Number(row[column] ?? 0));
        columns.set(column, values);
      }
    }
    return columns;
  }

  /** Σ over columns of the L1 distance between the two runs, each divided by its column's noise scale. */
  function loss(a: Map<string, Map<string, number>>, b: Map<string, Map<string, number>>, scales: Map<string, number>): number {
    let total = 0;
    for (const [column, scale] of scales) {
      const x = a.get(column) ?? new Map<string, number>();
      const y = b.get(column) ?? new Map<string, number>();
      for (const group of new Set([...x.keys(), ...y.keys()])) total += Math.abs((x.get(group) ?? 0) - (y.get(group) ?? 0)) / scale;
    }
    return total;
  }

  it('keeps the loss of the campaign query within epsilon for every seed, and exactly at it for the heavy person', async () => {
    const checked = await check(selection, REACH);
    expect(checked.violations).toEqual([]);
    const plan = checked.privacy?.plan;
    if (plan === undefined) throw new Error('the query has no DP plan');
    const epsilon = asNumber(checked.privacy?.cost.epsilon ?? 'NaN');
    const scales = new Map(plan.measurements.map((m) => [m.name, asNumber(m.scale)]));
    for (const seed of [1n, 2n, 3n, 4n, 5n]) {
      const [without, withHeavy] = await Promise.all(dbs.map((db) => valuesOf(db, checked.rewritten, seed)));
      const observed = loss(without as Map<string, Map<string, number>>, withHeavy as Map<string, Map<string, number>>, scales);
      expect(observed).toBeLessThanOrEqual(epsilon + 1e-12);
      // 3 groups of 9 for each distinct count, 3 × 2 orders × 100.00 of 1,800.00: the bound is tight.
      expect(observed).toBeCloseTo(epsilon, 9);
    }
  });

  it('would lose far more than epsilon at the same scales without the rewrite’s bounds (the check has power)', async () => {
    const checked = await check(selection, REACH);
    const plan = checked.privacy?.plan;
    if (plan === undefined) throw new Error('the query has no DP plan');
    const direct = `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers, COUNT(DISTINCT c.email_hash) AS buyers, CAST(SUM(c.order_value) * 100 AS BIGINT) AS revenue
      FROM malus_data.impressions i LEFT JOIN malus_data.conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id`;
    const scale = (i: number) => asNumber(plan.measurements[i]?.scale ?? 'NaN');
    const [without, withHeavy] = await Promise.all(dbs.map((db) => valuesOf(db, direct)));
    const observed = loss(without as Map<string, Map<string, number>>, withHeavy as Map<string, Map<string, number>>, new Map([['viewers', scale(0)], ['buyers', scale(1)], ['revenue', scale(2)]]));
    expect(observed).toBeGreaterThan(50);
  });
});
