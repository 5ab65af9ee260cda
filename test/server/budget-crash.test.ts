import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, getBudget, getJob, getLogEntries, getLogKey, listJobs, runAudit, submitQuery, type MalusClient } from '../../src/client/index.js';
import { formatRational, rational } from '../../src/dp/index.js';
import { isMalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { decodeEvent, parseVerifierKey } from '../../src/ledger/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { makeParties, removeDir, tempDir, uniqueId, type Parties } from './helpers.js';

// A server process killed with SIGKILL between the charge of its queries and their run (no worker
// takes them), then restarted on the same SQLite file: the books must balance with the log, every
// acknowledged job must still be queued, and nothing may be charged twice or lost. The server runs
// from the sources in a child process (test/fixtures/processes/serve-source.ts, through tsx).

const SCRIPT = resolve('test/fixtures/processes/serve-source.ts');
const QUEUED = 'c7'.repeat(48);

interface ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

const children: ChildProcess[] = [];

function serve(dataDir: string): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, dataDir, QUEUED], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const exited = new Promise<void>((done) => {
    child.on('exit', () => {
      done();
    });
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((ready, fail) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const url = /listening (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url !== undefined) ready({ url, child, exited });
    });
    void exited.then(() => {
      fail(new Error(`the server exited before listening: ${stderr}`));
    });
  });
}

let dataDir: string;
let work: string;
let parties: Parties;

beforeAll(() => {
  dataDir = tempDir('malus-budget-crash-');
  work = tempDir('malus-budget-crash-work-');
  parties = makeParties('Crash ');
});

afterAll(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  removeDir(dataDir);
  removeDir(work);
});

describe('a crash between charge and run', () => {
  it('loses nothing and double-charges nothing: after a restart the budget equals the log, and the jobs are still queued', async () => {
    const first = await serve(dataDir);
    const agreement = await establishDp(first.url, parties, work, { id: uniqueId('budget-crash'), measurements: [QUEUED] });
    const analystOf = (url: string, keys: PartyKeys = parties.advertiser): MalusClient => createClient({ server: url, keys });
    const queued = await submitQuery(analystOf(first.url), agreement.id, { sql: DP_SQL });

    // More queries race the kill: some are acknowledged, some never answered.
    const burst = Array.from({ length: 15 }, () => submitQuery(analystOf(first.url), agreement.id, { sql: DP_SQL }));
    await Promise.race(burst.map((p) => p.catch(() => undefined)));
    first.child.kill('SIGKILL');
    await first.exited;
    const outcomes = await Promise.allSettled(burst);
    const acknowledged = [queued.id, ...outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value.id)];

    const second = await serve(dataDir);
    const analyst = analystOf(second.url);
    expect((await getJob(analyst, agreement.id, queued.id)).state).toBe('queued');
    const jobs = (await listJobs(analyst, agreement.id)).filter((j) => j.kind === 'query');
    expect(jobs.every((j) => j.state === 'queued')).toBe(true);
    for (const id of acknowledged) expect(jobs.map((j) => j.id)).toContain(id);

    // Every queued query has exactly one charge in the log, and every charge has its job.
    const charged = (await getLogEntries(analyst, agreement.id))
      .map((e) => decodeEvent(new TextEncoder().encode(e.entry)))
      .flatMap((d) => (d.ok && d.event.type === 'privacy.charged' ? [d.event.job] : []));
    expect(new Set(charged).size).toBe(charged.length);
    expect([...charged].sort()).toEqual(jobs.map((j) => j.id).sort());
    const budget = await getBudget(analyst, agreement.id);
    expect(budget.collaboration.spent.epsilon?.exact).toBe(formatRational(rational(BigInt(jobs.length), 10n)));

    const verifier = parseVerifierKey((await getLogKey(analyst)).verifierKey);
    if (verifier === undefined) throw new Error('no usable log key');
    const report = await runAudit(analyst, verifier);
    expect(report.problems).toEqual([]);
    expect(report.budgets.find((b) => b.collaboration === agreement.id)).toMatchObject({ charges: jobs.length, refunds: 0, server: { matches: true } });

    // What is left is exactly what the log says is left: the rest of the ten queries, not one more.
    const more = await Promise.allSettled(Array.from({ length: 10 }, () => submitQuery(analyst, agreement.id, { sql: DP_SQL })));
    expect(more.filter((o) => o.status === 'fulfilled')).toHaveLength(10 - jobs.length);
    for (const o of more) if (o.status === 'rejected') expect(isMalusError(o.reason, 'budget-exhausted')).toBe(true);
    second.child.kill('SIGKILL');
    await second.exited;
  }, 90_000);
});
