import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus query check`, through the real binary: offline, on a draft agreement, exit 0/1/2.

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir });
const JOIN = 'FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash';

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  expect((await run(['agreement', 'init', '--out', 'draft.yaml'])).code).toBe(0);
});
afterAll(() => { removeDir(dir); });

describe('malus query check', () => {
  it('allows a governed query and prints the rewrite (exit 0)', async () => {
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', '--sql', 'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i GROUP BY 1']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('allowed: aggregation query over impressions');
    expect(result.stdout).toContain('AS malus_released FROM malus_data.impressions AS i');
  });

  it('denies with every violation, its code and a caret (exit 1)', async () => {
    const sql = `SELECT i.email_hash, MAX(c.order_value) ${JOIN} GROUP BY 1`;
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', '--sql', sql]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('denied: 2 violations');
    expect(result.stdout).toContain('column-not-allowed: i.email_hash may not be selected: it is the identity column of impressions');
    expect(result.stdout).toContain('aggregate-not-allowed: MAX is not an allowed aggregate');
    expect(result.stdout).toContain(`    |${' '.repeat(1 + sql.indexOf('MAX'))}^`);
    expect(hasStackTrace(result.stderr)).toBe(false);
  });

  it('reports what a query under differential privacy would spend, and its noise', async () => {
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', '--template', 'buyers_by_campaign', '--param', 'until=2026-11-30']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('differential privacy (policy 0, pure accounting): each run spends epsilon 1');
    expect(result.stdout).toContain('identities: laplace noise, scale 3');
    expect(result.stdout).toContain('a group is released only when its noisy identities count is at least 50');
    const json = await run(['query', 'check', '--agreement', 'draft.yaml', '--template', 'buyers_by_campaign', '--param', 'until=2026-11-30', '--json']);
    expect((JSON.parse(json.stdout) as { privacy: { cost: unknown } }).privacy.cost).toEqual({ epsilon: '1' });
  });

  it('prints JSON with positions', async () => {
    const sql = "SELECT count(*) FROM read_csv('/etc/passwd')";
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', '--sql', sql, '--json']);
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout) as { allowed: boolean; violations: { code: string; position: number | null }[]; rewritten: string };
    expect(json.allowed).toBe(false);
    expect(json.rewritten).toBe('');
    expect(json.violations).toContainEqual(expect.objectContaining({ code: 'table-function', position: sql.indexOf('read_csv') }));
  });

  it('checks a template with parameters, and refuses one out of bounds', async () => {
    const ok = await run(['query', 'check', '--agreement', 'draft.yaml', '--template', 'reach_and_conversions', '--param', 'since=2026-01-01', '--json']);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { rewritten: string }).rewritten).toContain('$since');
    const bad = await run(['query', 'check', '--agreement', 'draft.yaml', '--template', 'reach_and_conversions', '--param', 'since=1999-01-01']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('parameter-out-of-bounds: parameter since: below the minimum 2020-01-01');
  });

  it('reads SQL from a file and checks as a party', async () => {
    writeFileSync(join(dir, 'q.sql'), `SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers\n${JOIN}\nWHERE i.email_hash = 'x'\nGROUP BY 1\n`);
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', '--sql-file', 'q.sql', '--as', '0123456789abcdef0123']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('party-unknown');
    expect(result.stdout).toContain('filter-not-allowed');
    expect(result.stdout).toContain('at line 3, column 7');
  });

  it.each([
    ['no query', []],
    ['two sources', ['--sql', 'SELECT 1', '--template', 'reach_and_conversions']],
    ['a malformed parameter', ['--template', 'reach_and_conversions', '--param', 'since']],
    ['a parameter without a template', ['--sql', 'SELECT 1', '--param', 'a=1']],
    ['a malformed party id', ['--sql', 'SELECT 1', '--as', 'bob']],
  ])('exits 2 on %s', async (_name, args) => {
    const result = await run(['query', 'check', '--agreement', 'draft.yaml', ...args]);
    expect(result.code).toBe(2);
    expect(hasStackTrace(result.stderr)).toBe(false);
  });

  it('exits 2 on an invalid agreement file, naming the field', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'format: malus.agreement/v1\nid: x\n');
    const result = await run(['query', 'check', '--agreement', 'bad.yaml', '--sql', 'SELECT 1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('bad.yaml');
  });
});
