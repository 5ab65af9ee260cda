import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkQuery, RELEASE_COLUMN } from '../../src/rules/index.js';
import { mutable } from '../agreement/helpers.js';
import { emptyTables, rulesAgreement } from './fixtures.js';

// Templates, their parameters and approvals; who may ask; and the k constraint's effect on real rows.

const agreement = rulesAgreement();
const advertiser = agreement.parties.find((p) => p.name === 'Advertiser')?.id as string;
const publisher = agreement.parties.find((p) => p.name === 'Publisher')?.id as string;
const codes = async (request: Parameters<typeof checkQuery>[1], as?: string) =>
  (await checkQuery(agreement, request, as === undefined ? {} : { as })).violations.map((v) => v.code);

describe('templates', () => {
  it('binds typed parameters and adds the template k constraint', async () => {
    const checked = await checkQuery(agreement, { template: 'reach_and_conversions', parameters: { since: '2026-01-15' } }, { as: advertiser });
    expect(checked.violations).toEqual([]);
    expect(checked.kind).toBe('template');
    expect(checked.tables).toEqual(['conversions', 'impressions']);
    expect(checked.parameters).toEqual([{ name: 'since', type: 'DATE', value: '2026-01-15' }]);
    expect(checked.rewritten).toContain('$since');
    expect(checked.rewritten).toContain('(count(DISTINCT i.email_hash) >= 50) AS malus_released');
    expect(checked.rewritten).not.toContain('2026-01-15');
  });

  it.each([
    ['a date out of bounds', { since: '2019-12-31' }, 'parameter-out-of-bounds'],
    ['not a date', { since: 'yesterday' }, 'parameter-type'],
    ['an impossible date', { since: '2026-02-30' }, 'parameter-type'],
    ['a number for a date', { since: 20260101 }, 'parameter-type'],
    ['a missing parameter', {}, 'parameter-missing'],
    ['an unknown parameter', { since: '2026-01-01', until: '2026-02-01' }, 'parameter-unknown'],
    ['SQL in a parameter is only a value', { since: "2026-01-01'; DROP TABLE impressions; --" }, 'parameter-type'],
  ])('refuses %s', async (_name, parameters, code) => {
    expect(await codes({ template: 'reach_and_conversions', parameters })).toContain(code);
  });

  it.each([
    ['a BIGINT out of range', { label: 'gold', limit: 101 }, 'parameter-out-of-bounds'],
    ['a BIGINT that is a fraction', { label: 'gold', limit: '1.5' }, 'parameter-type'],
    ['a value not in the list', { label: 'bronze', limit: 5 }, 'parameter-out-of-bounds'],
    ['a boolean for text', { label: true, limit: 5 }, 'parameter-type'],
  ])('refuses %s', async (_name, parameters, code) => {
    expect(await codes({ template: 'tier_by_mode', parameters })).toContain(code);
  });

  it('refuses a DOUBLE that is not finite or not a number', async () => {
    expect(await codes({ template: 'claims_total', parameters: { floor: 'NaN', since: '2026-01-01' } })).toContain('parameter-type');
    expect(await codes({ template: 'claims_total', parameters: { floor: -1, since: '2026-01-01' } })).toContain('parameter-out-of-bounds');
  });

  it('refuses a template that not every owner approved', async () => {
    expect(await codes({ template: 'viewers_only', parameters: {} })).toEqual(['template-not-approved']);
  });

  it('refuses a template whose SQL leaves the sandbox, even when approved', async () => {
    expect(await codes({ template: 'sneaky_file', parameters: {} })).toContain('table-function');
  });

  it('refuses a template that a custom-rule table does not list', async () => {
    const d = mutable(agreement);
    (d.tables as { name: string; analysisRule: { allowedTemplates: string[] } }[]).find((t) => t.name === 'claims')!.analysisRule.allowedTemplates = ['claims_by_kind'];
    const checked = await checkQuery(d, { template: 'claims_total', parameters: { floor: 10, since: '2026-01-01' } });
    expect(checked.violations.map((v) => v.code)).toEqual(['template-not-allowed']);
  });

  it('refuses an unknown template', async () => {
    expect(await codes({ template: 'no_such', parameters: {} })).toEqual(['template-unknown']);
  });

  it('refuses a template whose SQL uses an undeclared parameter', async () => {
    const d = mutable(agreement);
    (d.templates as { name: string; parameters: unknown[] }[]).find((t) => t.name === 'claims_total')!.parameters.pop();
    const checked = await checkQuery(d, { template: 'claims_total', parameters: { floor: 1 } });
    expect(checked.violations.map((v) => v.code)).toEqual(['parameter-undeclared']);
  });

  it('lets templates use CTEs and functions ad-hoc SQL may not', async () => {
    const checked = await checkQuery(agreement, { template: 'claims_by_kind', parameters: { kind: 'dental' } });
    expect(checked.violations).toEqual([]);
    expect(checked.rewritten).toContain('malus_data.claims');
    expect(checked.rewritten).toContain('FROM recent');
  });
});

describe('who asks', () => {
  it('refuses a party without the analyst role', async () => {
    expect(await codes({ sql: 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS n FROM impressions GROUP BY 1' }, publisher)).toEqual(['not-analyst']);
  });
  it('refuses a party that is not in the agreement', async () => {
    expect(await codes({ sql: 'SELECT 1' }, '0123456789abcdef0123')).toContain('party-unknown');
  });
});

describe('the k constraint on real rows', () => {
  let db: Awaited<ReturnType<typeof emptyTables>>;
  beforeAll(async () => {
    db = await emptyTables(agreement);
    // Campaign big: 60 people seen and bought; campaign small: 5 people.
    await db.connection.run(`INSERT INTO malus_data.impressions SELECT 'p' || n, CASE WHEN n < 60 THEN 'big' ELSE 'small' END, TIMESTAMP '2026-01-10 00:00:00', 'feed', 'mobile' FROM range(65) t(n)`);
    await db.connection.run(`INSERT INTO malus_data.conversions SELECT 'p' || n, 'x', DATE '2026-01-11', 10.00 FROM range(65) t(n)`);
    await db.connection.run(`INSERT INTO malus_data.audiences SELECT 'p' || n, CASE WHEN n < 12 THEN 'sports' ELSE 'rare' END, 'eu' FROM range(15) t(n)`);
    await db.connection.run(`INSERT INTO malus_data.loyalty SELECT 'p' || n, 'gold', n FROM range(15) t(n)`);
  });
  afterAll(() => { db.close(); });

  it('keeps groups under k out of the result (HAVING), the release column repeating the test', async () => {
    const sql = 'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash GROUP BY 1 ORDER BY 1';
    const checked = await checkQuery(agreement, { sql });
    const rows = (await db.connection.runAndReadAll(checked.rewritten)).getRowObjects();
    expect(rows).toEqual([
      { campaign_id: 'big', viewers: 60n, [RELEASE_COLUMN]: true },
    ]);
    expect(checked.rewritten).toContain('HAVING');
  });

  it('groups a list query by its columns and counts identities per row', async () => {
    const checked = await checkQuery(agreement, { sql: 'SELECT a.segment, l.tier FROM audiences a JOIN loyalty l ON a.email_hash = l.email_hash ORDER BY 1' });
    const rows = (await db.connection.runAndReadAll(checked.rewritten)).getRowObjects();
    expect(rows).toEqual([
      { segment: 'sports', tier: 'gold', [RELEASE_COLUMN]: true },
    ]);
  });

  it('binds template parameters as values', async () => {
    const checked = await checkQuery(agreement, { template: 'reach_and_conversions', parameters: { since: '2026-01-01' } });
    const prepared = await db.connection.prepare(checked.rewritten);
    prepared.bind({ since: '2026-01-01' });
    const rows = (await prepared.runAndReadAll()).getRowObjects();
    expect(rows.find((r) => r.campaign_id === 'big')?.[RELEASE_COLUMN]).toBe(true);
    expect(rows.find((r) => r.campaign_id === 'small')).toBeUndefined();
  });
});
