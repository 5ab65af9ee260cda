import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgreement, parseAgreementText, type Agreement } from '../../src/agreement/index.js';
import { createClient, submitQuery, type BudgetView } from '../../src/client/index.js';
import { budgetPeriod } from '../../src/dp/index.js';
import { generatePartyKeys, readKeyFile, writeKeyFile } from '../../src/identity/index.js';
import { DP_SQL, establishDp } from '../server/budget-helpers.js';
import type { Parties } from '../server/helpers.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus budget show` and the budget part of `malus log audit`, as real processes against a real
// `malus serve --no-worker`: one query under a required privacy policy is charged and stays queued.

let dir: string;
let server: ServerProcess | undefined;
let agreement: Agreement;
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 30_000 });
const on = (key: string): string[] => ['--server', server?.url ?? '', '--key', key, '--collab', agreement.id];

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  const parties: Parties = { advertiser: generatePartyKeys('adv party'), publisher: generatePartyKeys('pub party'), operator: generatePartyKeys('op party') };
  writeKeyFile(join(dir, 'adv.json'), parties.advertiser);
  writeKeyFile(join(dir, 'pub.json'), parties.publisher);
  writeKeyFile(join(dir, 'op.json'), parties.operator);
  writeKeyFile(join(dir, 'stranger.json'), generatePartyKeys('stranger'));
  server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
  // `agreement init` pins this build's measurement, which the embedded key-release service reports.
  expect((await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  const measurements = assertAgreement(parseAgreementText(readFileSync(join(dir, 'a.yaml'), 'utf8'))).enclave.measurements;
  agreement = await establishDp(server.url, parties, dir, { id: 'budget-cli', measurements });
  await submitQuery(createClient({ server: server.url, keys: parties.advertiser }), agreement.id, { sql: DP_SQL });
}, 90_000);

afterAll(async () => {
  await server?.kill();
  removeDir(dir);
});

describe('malus budget show', () => {
  it('prints the period, the next refresh, and spent and remaining budget, exact and approximate', async () => {
    const result = await run(['budget', 'show', ...on('op.json')]);
    expect(result.code, result.stderr).toBe(0);
    const period = budgetPeriod('monthly', new Date());
    expect(result.stdout).toContain('budget-cli: pure DP (epsilon) accounting, refresh monthly\n');
    expect(result.stdout).toContain(`  period ${period.key}, next refresh ${period.next?.toISOString() ?? ''}\n`);
    expect(result.stdout).toContain('  collaboration budget: epsilon 1, delta 1/1000 (~0.001)\n');
    expect(result.stdout).toContain('    spent:     epsilon 1/10 (~0.1), delta 1/100000 (~0.00001)\n');
    expect(result.stdout).toContain('    remaining: epsilon 9/10 (~0.9), delta 99/100000 (~0.00099)\n');
    expect(result.stdout).toMatch(/ {2}analyst [0-9a-f]{20}: spent epsilon 1\/10 \(~0\.1\), delta 1\/100000 \(~0\.00001\)\n/);
  });

  it('prints the server view as JSON with --json', async () => {
    const result = await run(['budget', 'show', ...on('adv.json'), '--json']);
    expect(result.code, result.stderr).toBe(0);
    const shown = JSON.parse(result.stdout) as BudgetView;
    expect(shown).toMatchObject({ id: 'budget-cli', accounting: 'pure', collaboration: { spent: { epsilon: { exact: '1/10', decimal: '0.1' } } } });
  });

  it('exits 2 for a stranger (no such collaboration) and for a missing --collab, without a stack trace', async () => {
    const stranger = await run(['budget', 'show', ...on('stranger.json')]);
    expect(stranger.code).toBe(2);
    expect(stranger.stderr).toContain('not found');
    const missing = await run(['budget', 'show', '--server', server?.url ?? '', '--key', 'adv.json']);
    expect(missing.code).toBe(2);
    expect(hasStackTrace(stranger.stderr + missing.stderr)).toBe(false);
  });
});

describe('malus log audit and the budget', () => {
  it('recomputes the budget from the log and passes when the books balance, and fails when they do not', async () => {
    const passed = await run(['log', 'audit', '--server', server?.url ?? '', '--key', 'pub.json']);
    expect(passed.code, passed.stdout + passed.stderr).toBe(0);
    expect(passed.stdout).toContain('budget budget-cli: 1 charge(s), 0 refund(s) in the log\n');
    expect(passed.stdout).toMatch(/ {2}server, period \S+: spent epsilon 1\/10, delta 1\/100000, equal to the log\n/);
    expect(passed.stdout).toContain('audit passed');

    // The server's books lose the charge its log records.
    const db = new Database(join(dir, 'data', 'malus.db'));
    try {
      db.prepare("DELETE FROM privacy_charges WHERE collaboration_id = 'budget-cli'").run();
    } finally {
      db.close();
    }
    const failed = await run(['log', 'audit', '--server', server?.url ?? '', '--key', 'pub.json']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('NOT the log');
    expect(failed.stdout).toMatch(/PROBLEM: budget-cli: the server shows epsilon 0, delta 0 spent in period \S+, the log epsilon 1\/10, delta 1\/100000/);
    expect(failed.stdout).toContain('audit FAILED');
  });
});

describe('malus job cancel', () => {
  it('withdraws a queued job for its submitter, and refuses another member with exit 2', async () => {
    const analyst = createClient({ server: server?.url ?? '', keys: readKeyFile(join(dir, 'adv.json')) });
    const job = await submitQuery(analyst, agreement.id, { sql: DP_SQL });
    const other = await run(['job', 'cancel', ...on('pub.json'), job.id]);
    expect(other.stderr).toBe(`error: only the submitter of job ${job.id} can cancel it\n`);
    expect(other.code).toBe(2);
    const cancelled = await run(['job', 'cancel', ...on('adv.json'), job.id]);
    expect(cancelled.stderr).toBe('');
    expect(cancelled.stdout).toBe(`cancelled ${job.id}: failed (cancelled: withdrawn by its submitter before any enclave took it)\n`);
    expect(cancelled.code).toBe(0);
    const again = await run(['job', 'cancel', ...on('adv.json'), job.id]);
    expect(again.stderr).toBe(`error: job ${job.id} is not queued: only a job no enclave has taken can be cancelled\n`);
    expect(again.code).toBe(2);
  });
});
