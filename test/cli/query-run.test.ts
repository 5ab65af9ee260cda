import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgreement, parseAgreementText, type Agreement } from '../../src/agreement/index.js';
import { createClient, getLogKey, getSimRootFingerprint, uploadDataset } from '../../src/client/index.js';
import { generatePartyKeys, readKeyFile, writeKeyFile } from '../../src/identity/index.js';
import { conversionsSql, datasetOf, impressionsSql } from '../engine/query-fixtures.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus query run | job list | job show | job receipt | result open | verify` as real processes
// against a real `malus serve` with its embedded sim enclave: the whole path of a governed query,
// from the analyst's SQL to the receiver's verified, decrypted rows.

let dir: string;
let server: ServerProcess | undefined;
let agreement: Agreement;
let logKey = '';
let simRoot = '';
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 60_000 });
const on = (key: string): string[] => ['--server', server?.url ?? '', '--key', key, '--collab', agreement.id];
// On the publisher's impressions alone, which the agreement answers with k only (the purchases need DP).
const REACH = 'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers FROM impressions i GROUP BY 1';
let jobId = '';

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  for (const name of ['adv', 'pub', 'op']) writeKeyFile(join(dir, `${name}.json`), generatePartyKeys(`${name} party`));
  const advertiser = readKeyFile(join(dir, 'adv.json'));
  const publisher = readKeyFile(join(dir, 'pub.json'));
  server = await startServe(join(dir, 'data'), dir);
  expect((await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  agreement = assertAgreement(parseAgreementText(readFileSync(join(dir, 'a.yaml'), 'utf8')));
  const url = server.url;
  expect((await run(['collab', 'propose', 'a.yaml', '--server', url, '--key', 'adv.json'])).code).toBe(0);
  expect((await run(['collab', 'sign', agreement.id, '--agreement', 'a.yaml', '--server', url, '--key', 'pub.json'])).code).toBe(0);
  // cmp-0: 60 viewers, 55 of them buyers (released); cmp-1: 10 viewers (under k = 50).
  const impressions = impressionsSql();
  const conversions = conversionsSql();
  const imp = await datasetOf(dir, { agreement, table: 'impressions', keys: publisher, sql: impressions.sql, rows: impressions.rows, dataset: 'impressions-1' });
  const conv = await datasetOf(dir, { agreement, table: 'conversions', keys: advertiser, sql: conversions.sql, rows: conversions.rows, dataset: 'conversions-1' });
  await uploadDataset(createClient({ server: url, keys: publisher }), { dir: imp.dir, agreement });
  await uploadDataset(createClient({ server: url, keys: advertiser }), { dir: conv.dir, agreement });
  logKey = (await getLogKey(createClient({ server: url }))).verifierKey;
  simRoot = await getSimRootFingerprint(createClient({ server: url }));
}, 90_000);

afterAll(async () => {
  await server?.kill();
  removeDir(dir);
});

describe('malus query run', () => {
  it('runs a governed query, waits, and writes the verified rows as CSV', async () => {
    const result = await run(['query', 'run', ...on('adv.json'), '--sql', REACH, '--out', 'reach.csv', '--log-key', logKey, '--sim-root', simRoot]);
    expect(result.code, result.stderr).toBe(0);
    jobId = /(job-[0-9a-f]{32}) {2}query {2}succeeded/.exec(result.stderr)?.[1] ?? '';
    expect(jobId).not.toBe('');
    expect(result.stderr).toContain('result: 1 rows released, sealed to');
    // cmp-1 (10 viewers) is withheld, and nothing says so or counts it: the note is said once.
    expect(result.stderr.split('groups under the k constraints are withheld in the enclave; how many is not revealed')).toHaveLength(2);
    expect(result.stderr).toContain('result 1 rows; hash matches the signed statement');
    expect(result.stderr).not.toMatch(/suppress|cmp-1/);
    expect(result.stderr).toContain('statement signed by enclave');
    expect(result.stderr).toContain('!!! SIMULATED TEE: NOT CONFIDENTIAL !!!');
    expect(readFileSync(join(dir, 'reach.csv'), 'utf8')).toBe('campaign_id,viewers\r\ncmp-0,60\r\n');
  });

  it('shows a denial with each violation under the SQL (exit 1), and queues nothing', async () => {
    const before = (await run(['job', 'list', ...on('adv.json'), '--json'])).stdout;
    const sql = 'SELECT i.email_hash, MAX(c.order_value) FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash GROUP BY 1';
    const result = await run(['query', 'run', ...on('adv.json'), '--sql', sql]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('denied: 2 violations');
    expect(result.stdout).toContain('aggregate-not-allowed: MAX is not an allowed aggregate');
    expect(result.stdout).toContain(`    |${' '.repeat(1 + sql.indexOf('MAX'))}^`);
    expect(hasStackTrace(result.stderr)).toBe(false);
    expect((await run(['job', 'list', ...on('adv.json'), '--json'])).stdout).toBe(before);
  });

  it('refuses a party without the analyst role', async () => {
    const result = await run(['query', 'run', ...on('pub.json'), '--sql', REACH]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('analyst');
  });

  it('gives a rerun with the same --idempotency-key the job of the first run, and refuses a key of the wrong shape (exit 2)', async () => {
    const key = ['--idempotency-key', 'nightly-reach-2026-12-06'];
    const first = await run(['query', 'run', ...on('adv.json'), '--sql', REACH, ...key]);
    expect(first.code, first.stderr).toBe(0);
    const rerun = await run(['query', 'run', ...on('adv.json'), '--sql', REACH, ...key]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toBe(first.stdout);
    expect(first.stdout).toMatch(/^queued job-[0-9a-f]{32}\n$/);
    const other = await run(['query', 'run', ...on('adv.json'), '--sql', `${REACH} ORDER BY 1`, ...key]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('idempotency key nightly-reach-2026-12-06 was used for a different submission');
    const bad = await run(['query', 'run', ...on('adv.json'), '--sql', REACH, '--idempotency-key', 'short']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--idempotency-key takes 16 to 128 characters');
  });

  it('runs the approved template with a parameter, and refuses one out of bounds', async () => {
    const ok = await run(['query', 'run', ...on('adv.json'), '--template', 'reach_and_conversions', '--param', 'since=2026-01-01', '--wait']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/query {2}succeeded/);
    expect(ok.stderr).toContain('template: reach_and_conversions');
    const bad = await run(['query', 'run', ...on('adv.json'), '--template', 'reach_and_conversions', '--param', 'since=1999-01-01']);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain('parameter-out-of-bounds');
  });
});

describe('a template over the purchases, under differential privacy', () => {
  it('answers from the public domain only, and says what it spent and how noisy each column is', async () => {
    const result = await run(['query', 'run', ...on('adv.json'), '--template', 'buyers_by_campaign', '--param', 'until=2026-12-31', '--out', 'dp.csv', '--log-key', logKey, '--sim-root', simRoot]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('differential privacy: this result spent epsilon 1 (pure accounting)');
    expect(result.stderr).toMatch(/buyers: laplace noise of scale 3, ±\d+ at 95%/);
    // Only campaigns the agreement publishes, and only those whose noisy count of buyers reaches k = 50:
    // the data here has none of them, and cmp-0 (55 buyers) is not in the public domain.
    expect(result.stderr).toContain('result: 0 rows released');
    expect(readFileSync(join(dir, 'dp.csv'), 'utf8')).toBe('campaign_id,buyers\r\n');
  });
});

describe('malus job and result', () => {
  it('lists and shows jobs', async () => {
    const listed = await run(['job', 'list', ...on('op.json')]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`${jobId}\tquery\tsucceeded\t`);
    const shown = await run(['job', 'show', jobId, ...on('pub.json')]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('datasets: impressions-1');
    expect(shown.stdout).toMatch(/result hash: sha256:[0-9a-f]{64}/);
    expect(shown.stdout).toContain('result: 1 rows released, sealed to');
    expect(shown.stdout).toContain('  (groups under the k constraints are withheld in the enclave; how many is not revealed)\n');
    expect(shown.stdout).not.toContain('suppress');
    expect((await run(['job', 'show', 'job-1', ...on('adv.json')])).code).toBe(2);
  });

  it('opens the result as the receiver, printing a table', async () => {
    const opened = await run(['result', 'open', jobId, ...on('adv.json'), '--log-key', logKey, '--sim-root', simRoot, '--agreement', 'a.yaml']);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout).toBe('campaign_id  viewers\n-----------  -------\ncmp-0        60\n');
    expect(opened.stderr).toContain('(the file you gave) allows that enclave');
    expect(opened.stderr).toContain('result 1 rows; hash matches the signed statement\n  (groups under the k constraints are withheld in the enclave; how many is not revealed)\n');
    expect(opened.stderr).not.toContain('suppress');
    const json = await run(['result', 'open', jobId, ...on('adv.json'), '--log-key', logKey, '--sim-root', simRoot, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toContain('suppress');
  });

  it('will not open the result for a party it is not sealed to', async () => {
    const opened = await run(['result', 'open', jobId, ...on('pub.json'), '--log-key', logKey, '--sim-root', simRoot]);
    expect(opened.code).toBe(1);
    expect(opened.stdout).toBe('');
    expect(hasStackTrace(opened.stderr)).toBe(false);
  });

  it('writes the receipt, which malus verify checks offline', async () => {
    expect((await run(['job', 'receipt', jobId, ...on('adv.json'), '--out', 'receipt.json'])).code).toBe(0);
    const verified = await run(['verify', 'receipt.json', '--log-key', logKey, '--sim-root', simRoot, '--agreement', 'a.yaml']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain(jobId);
    const again = await run(['job', 'receipt', jobId, ...on('adv.json'), '--out', 'receipt.json']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists');
  });
});
