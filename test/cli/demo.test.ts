import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, assertFreshBuild, baseEnv, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus demo`: the whole story against a real server, in a temporary or given data directory.
// TMPDIR points into this file's own directory, so whatever the demo leaves behind is ours to see.

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir, env: { TMPDIR: dir }, timeoutMs: 120_000 });

function namedDataDir(stdout: string): { path: string; note: string } {
  const match = /^data directory: (.+) \((kept|removed at the end)\)$/m.exec(stdout);
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`the demo named no data directory:\n${stdout}`);
  return { path: match[1], note: match[2] };
}

function expectCompleteStory(stdout: string): void {
  expect(stdout).toMatch(/^Malus demo: two organizations agree on what may be computed over their data\.\n/);
  expect(stdout).toMatch(/^server: http:\/\/127\.0\.0\.1:\d+ /m);
  expect(stdout).toContain('\n1. Each organization makes its own identity\n');
  expect(stdout).toContain('a stranger asking for campaign-measurement: 404 not found');
  expect(stdout).toContain('   state: active\n');
  expect(stdout).toMatch(/advertiser: sim evidence verified; measurement [0-9a-f]{16}… is pinned by the agreement/);
  expect(stdout).toMatch(/publisher\): 200,000 rows \(ad impressions of 60,001 viewers\), [\d.]+ MB CSV -> [\d.]+ MB ciphertext/);
  expect(stdout).toMatch(/advertiser\): 50,000 rows \(purchases of 20,000 buyers/);
  expect(stdout).toMatch(/impressions-2026-11 uploaded \([\d.]+ MB in \d+ pieces?\), key registered: yes/);
  // The 3 small campaigns (the 6 large ones are a public domain in the agreement) and 4 people's e-mail hashes in both cases.
  expect(stdout).toMatch(/searched \d+ server files for 11 e-mail hashes and unpublished campaign names: 0 found/);
  expect(stdout).toContain("impressions-2026-11: the enclave's commitment matches the owner's key; 200,000 rows decrypted into DuckDB");
  expect(stdout).toContain("conversions-2026-11: the enclave's commitment matches the owner's key; 50,000 rows decrypted into DuckDB");
  expect(stdout).toContain('entries dataset.registered: 2');
  expect(stdout).toContain('key release denied: measurement-not-pinned');
  expectGovernedQueries(stdout);
  expectDifferentialPrivacy(stdout);
  expectCryptographyAlone(stdout);
  // The dataset check, three governed queries, the DP count, four attack queries and one more: each was granted the keys once.
  expect(stdout).toContain('entries job.finished: 10');
  expect(stdout).toContain('entries key.granted: 10');
  // Every query that read the purchases was charged: all but the two on impressions alone.
  expect(stdout).toContain('entries privacy.charged: 7');
  expect(stdout).toMatch(/period \d{4}-\d{2}: spent epsilon 7\n/);
  expect(stdout).toContain('entries key.denied: 1');
  expect(stdout).toContain(DONE);
}

const DONE = '\nDone: the agreement is active, only an attested enclave got the keys, and only the answers the agreement allows left it, sealed to the receiver.';
const JOB = 'job-[0-9a-f]{32}';

/** The text between the heading of the step titled `title` and the next heading. */
function stepText(stdout: string, title: string): string {
  const start = stdout.indexOf(`. ${title}\n`);
  if (start < 0) throw new Error(`no step "${title}" in:\n${stdout}`);
  const end = stdout.slice(start).search(/\n\d+\. /);
  return end < 0 ? stdout.slice(start) : stdout.slice(start, start + end);
}

function expectDifferentialPrivacy(stdout: string): void {
  const count = stepText(stdout, 'It asks for buyers by campaign, and sees what each answer costs');
  expect(count).toMatch(/budget before: epsilon spent 3 of 7, 4 left this period/);
  expect(count).toMatch(new RegExp(`template buyers_by_campaign, job ${JOB}: 6 campaigns; the signed statement records the cost \\(epsilon 1\\) and the noise`));
  expect(count).toMatch(/cmp-spring +\d+ ± \d+ \(95%, laplace noise of scale 3\)/);
  expect(count).toMatch(/budget after: epsilon spent 4 of 7, 3 left this period/);

  const attack = stepText(stdout, 'A differencing attack: two allowed answers, subtracted, tell about one person');
  // The smart-TV viewer's one view is of cmp-spring, and k alone gives it away.
  expect(attack).toMatch(/\d+ − \d+ = 1: the attack works, the smart-TV viewer saw cmp-spring/);
  expect(attack).toMatch(/-?\d+ − -?\d+ = -?\d+: each answer is ± \d+ at 95%, so a difference of 0 or 1 is lost in the noise/);
  expect(attack).toMatch(/budget: epsilon spent 6 of 7, 1 left/);

  const exhausted = stepText(stdout, 'Asking again to average the noise away runs into the budget');
  expect(exhausted).toMatch(/epsilon spent 7 of 7, 0 left/);
  expect(exhausted).toContain('and once more: refused (409 budget-exhausted):');
}

function expectCryptographyAlone(stdout: string): void {
  const psi = stepText(stdout, 'Without an enclave: the two providers count their shared customers with PSI');
  expect(psi).toMatch(/run run-[0-9a-f]{32}: the advertiser brought 20,001 distinct e-mail hashes \(from 50,000 orders\), the publisher 60,001 \(from 200,000 views\)/);
  expect(psi).toContain('the advertiser learns: 15,001 shared customers, exactly\n');
  expect(psi).toContain('the publisher learns: the advertiser brought 20,001\n');
  expect(psi).toMatch(/the enclave's answer to the same question, under differential privacy: [\d,]+ ± \d+ \(95%\)/);
  expect(psi).toContain('log: run.started and run.finished with {"receiver":20001,"sender":60001}: the sizes, no element and no answer\n');

  const hospitals = stepText(stdout, 'Three hospitals add up their readmissions, and one drops out halfway');
  expect(hospitals).toContain('hospital-readmissions: signed by all three and active');
  expect(hospitals).toContain('Northgate Medical Centre drops out after sharing its keys (round 1), before sending its masked counts\n');
  expect(hospitals).toContain('sum over 2 hospitals (1 dropped), by age band:\n');
  expect(hospitals).toContain('0-17: 19, 18-29: 50, 30-39: 70, 40-49: 98, 50-59: 163, 60-69: 243, 70-79: 319, 80+: 293\n');
  expect(hospitals).toContain('Riverside Clinic receives the same sum, signed by the aggregator: yes\n');
  expect(hospitals).toContain('log: run.finished {"contributors":2,"dropouts":1,"kind":"secagg"}: counts of hospitals, never a vector or the sum\n');
}

function expectGovernedQueries(stdout: string): void {
  // The analyst's ad-hoc SQL: allowed; the three small campaigns fall under k = 50, and nothing counts them.
  const adhoc = stepText(stdout, 'The advertiser, as analyst, asks for reach and conversions by campaign in SQL');
  expect(adhoc).toContain('FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash\n');
  expect(adhoc).toContain(
    'checked offline: allowed under the aggregation rules, with differential privacy: it will spend epsilon 1; noisy identities (laplace, scale 9), distinct-identities (laplace, scale 9), sum (laplace, scale 540000)',
  );
  expect(adhoc).toMatch(new RegExp(`job ${JOB}: the enclave ran exactly that rewrite \\(its hash is in the signed statement\\)`));
  expect(adhoc).toContain('   6 campaigns released; campaigns under the k constraint are withheld in the enclave, and how many is not revealed\n');
  expect(adhoc).not.toMatch(/suppress|cmp-(pilot|local|influencer)/);
  expect(adhoc).toMatch(new RegExp(`and how many viewers bought at all: job ${JOB}, 1 row released`));

  // Three attacks, each refused by the server with its violation code; none is queued.
  const attacks = stepText(stdout, 'It tries to learn more than the agreement allows, and is refused');
  expect(attacks).toContain("the buyers' e-mail hashes and what each spent:\n     SELECT i.email_hash, SUM(c.order_value) AS spent");
  expect(attacks).toMatch(/denied \(422 query-denied\): column-not-allowed: i\.email_hash may not be selected: it is the identity column of impressions \(at character 7\)/);
  expect(attacks).toContain('the largest single purchase per campaign:\n     SELECT i.campaign_id, MAX(c.order_value)');
  expect(attacks).toMatch(/denied \(422 query-denied\): aggregate-not-allowed: MAX is not an allowed aggregate/);
  expect(attacks).toContain("a file on the enclave host:\n     SELECT count(*) FROM read_csv('/etc/passwd')\n");
  expect(attacks).toMatch(/denied \(422 query-denied\): table-function: the table function read_csv is not allowed/);
  expect(attacks).toContain('jobs queued by these attempts: 0\n');

  // The approved template with its DATE parameter; a value that is not a date is refused.
  const template = stepText(stdout, 'It runs the template both owners approved, with a parameter');
  expect(template).toContain(`since = "2026-11-15'; DROP TABLE impressions; --": denied (422 query-denied): parameter-type:`);
  expect(template).toContain('template reach_and_conversions, since = 2026-11-15 (a DATE from 2020-01-01 to 2099-12-31)\n');
  expect(template).toMatch(new RegExp(`job ${JOB}: 6 campaigns released; the signed statement names the template and its parameter`));
  expect(template).not.toContain('suppress');

  // The receiver verifies each receipt, then opens the rows.
  const opened = stepText(stdout, 'The advertiser, as receiver, checks each result’s receipt, then opens its rows');
  const verified = opened.match(
    /receipt verified: log entry \d+ in checkpoint size \d+; signed by enclave \S{16}…, the key its sim evidence binds; measurement [0-9a-f]{16}… allowed by the agreement\n/g,
  );
  expect(verified).toHaveLength(3);
  expect(opened.match(/SIMULATED TEE: NOT CONFIDENTIAL \(the result is genuine/g)).toHaveLength(3);
  expect(opened).toMatch(new RegExp(`reach and conversions \\(ad-hoc SQL\\), job ${JOB}:\n`));
  expect(opened.match(/rows decrypted, hash matches the signed statement: 6 released\n/g)).toHaveLength(2);
  expect(opened).toContain('rows decrypted, hash matches the signed statement: 1 released\n');
  expect(opened).not.toContain('suppress');
  // The demo built the data, so it knows which campaigns are under k: absent from both opened results.
  expect(
    opened.match(/^ {5}not among them: cmp-pilot, cmp-local, cmp-influencer were shown to 40, 24, 9 people, fewer than 50 each \(the demo built the data, so it knows\)$/gm),
  ).toHaveLength(2);
  expect(opened).toMatch(/buyers among the viewers: [\d,]+ ± \d+ \(95%\), around the 15,001 the demo built into the tables/);
  // The top campaigns: a header and three large campaigns with their counts, never a small one.
  expect(opened.match(/^ {5}campaign_id +viewers +buyers +revenue$/gm)).toHaveLength(2);
  expect(opened.match(/^ {5}cmp-(spring|summer|autumn|winter|brand|retarget) +[\d,]+ +[\d,]+ +[\d,]+\.\d{2}$/gm)).toHaveLength(6);
  expect(opened).not.toMatch(/^ {5}cmp-(pilot|local|influencer)/m);
  expect(opened.match(/^ {5}… 3 more$/gm)).toHaveLength(2);
}

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir();
});

afterAll(() => {
  removeDir(dir);
});

describe('malus demo', () => {
  it('runs the whole collaboration and removes its temporary data directory', async () => {
    const demo = await run(['demo']);
    expect(demo.code).toBe(0);
    expect(demo.stderr).toBe('');
    expectCompleteStory(demo.stdout);
    const { path, note } = namedDataDir(demo.stdout);
    expect(note).toBe('removed at the end');
    expect(path.startsWith(join(dir, 'malus-demo-'))).toBe(true);
    expect(existsSync(path)).toBe(false);
  }, 150_000);

  it('keeps the temporary data directory with --keep', async () => {
    const demo = await run(['demo', '--keep']);
    expect(demo.code).toBe(0);
    expectCompleteStory(demo.stdout);
    const { path, note } = namedDataDir(demo.stdout);
    expect(note).toBe('kept');
    try {
      expect(path.startsWith(join(dir, 'malus-demo-'))).toBe(true);
      expect(readdirSync(join(path, 'parties')).sort()).toEqual(['advertiser', 'advertiser.key.json', 'operator.key.json', 'publisher', 'publisher.key.json']);
      // Each provider's machine: its input, and its prepared dataset with the data key sealed to itself.
      expect(readdirSync(join(path, 'parties', 'advertiser')).sort()).toEqual(['conversions-2026-11', 'conversions.csv']);
      expect(statSync(join(path, 'parties', 'advertiser.key.json')).mode & 0o777).toBe(0o600);
      expect(existsSync(join(path, 'logs', 'server.log'))).toBe(true);
    } finally {
      removeDir(path);
    }
  }, 150_000);

  it('uses and keeps a given --data-dir', async () => {
    const given = join(dir, 'given');
    const demo = await run(['demo', '--data-dir', given]);
    expect(demo.code).toBe(0);
    expectCompleteStory(demo.stdout);
    expect(namedDataDir(demo.stdout)).toEqual({ path: given, note: 'kept' });
    expect(statSync(given).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(given, 'parties'))).toHaveLength(5);
    // No temporary directory was made.
    expect(readdirSync(dir).filter((name) => name.startsWith('malus-demo-'))).toEqual([]);
  }, 150_000);

  it('refuses a --data-dir that is already in use, before doing anything', async () => {
    const used = join(dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'notes.txt'), 'mine\n');
    const demo = await run(['demo', '--data-dir', used]);
    expect(demo.code).toBe(2);
    expect(demo.stdout).toBe('');
    expect(demo.stderr).toBe(`error: demo data directory ${used} is not empty; give a new or empty directory (or omit --data-dir)\n`);
    expect(readdirSync(used)).toEqual(['notes.txt']);
    // An empty directory is fine.
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const ok = await run(['demo', '--data-dir', empty]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(DONE);
  }, 150_000);

  it('finishes and cleans up when its reader goes away (malus demo | head -2)', async () => {
    const child = spawn(process.execPath, [BIN, 'demo'], { cwd: dir, env: baseEnv({ TMPDIR: dir }), stdio: ['ignore', 'pipe', 'pipe'] });
    let first = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8');
    // Read the first lines, then close our end of the pipe, as `head` does.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        first += chunk;
        if (first.includes('\ndata directory: ')) {
          child.stdout.destroy();
          resolve();
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(hasStackTrace(stderr)).toBe(false);
    expect(code).toBe(0);
    expect(existsSync(namedDataDir(first).path)).toBe(false);
  }, 120_000);
});
