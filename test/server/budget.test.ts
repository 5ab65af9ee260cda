import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createSimAttester, simPlatformAttester } from '../../src/attestation/index.js';
import {
  cancelJob,
  createClient,
  getBudget,
  getLogEntries,
  getLogKey,
  httpWorkerPort,
  listJobs,
  runAudit,
  submitJob,
  submitQuery,
  type BudgetView,
  type MalusClient,
} from '../../src/client/index.js';
import { fromHex } from '../../src/crypto/index.js';
import { budgetPeriod } from '../../src/dp/index.js';
import { SIMULATED_NOTICE, createWorkerIdentity, readSimCa, registerWorker, signStatement, type WorkerPort } from '../../src/engine/index.js';
import { isMalusError } from '../../src/errors/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { parseVerifierKey, type LogEvent } from '../../src/ledger/index.js';
import { startServer, toLogAppend, type RunningServer } from '../../src/server/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { expectProblem, inject, makeParties, prepare, removeDir, tempDir, uniqueId, wallClock, type Parties } from './helpers.js';

// The privacy accountant through a real server over HTTP (docs/dp.md): queries under a required
// privacy policy are charged as they are queued, racing submissions never overspend, refundable
// failures give the charge back, members read the budget, and `malus log audit` recomputes it from
// the log and notices books that do not balance. No worker has QUEUED's measurement, so those jobs
// stay queued; the one worker here runs RUN's.

const QUEUED = 'c7'.repeat(48);
const RUN = 'd8'.repeat(48);
const clock = wallClock;

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;
let worker: WorkerPort;
let workerIdentity: ReturnType<typeof createWorkerIdentity>;

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });

async function eventsOf(id: string, type?: string): Promise<LogEvent[]> {
  const events = (await server.store.log.entriesOf([id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as LogEvent);
  return type === undefined ? events : events.filter((e) => e.type === type);
}

async function audit(keys: PartyKeys) {
  const client = clientOf(keys);
  const verifier = parseVerifierKey((await getLogKey(client)).verifierKey);
  if (verifier === undefined) throw new Error('the server announced no usable log key');
  return runAudit(client, verifier);
}

const exact = (amounts: BudgetView['collaboration']['spent']) => Object.fromEntries(Object.entries(amounts).map(([unit, a]) => [unit, a.exact]));

beforeAll(async () => {
  dataDir = tempDir('malus-budget-');
  work = tempDir('malus-budget-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: QUEUED });
  parties = makeParties('Budget ');
  const identity = createWorkerIdentity();
  workerIdentity = identity;
  const sim = await createSimAttester(readSimCa(`${dataDir}/sim-ca.json`), new Date());
  worker = httpWorkerPort(createClient({ server: server.url, keys: identity.keys }));
  await registerWorker({ identity, attester: simPlatformAttester(sim, fromHex(RUN) ?? new Uint8Array()), port: worker, now: () => new Date() });
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

describe('charging queries', () => {
  let agreement: Agreement;
  beforeAll(async () => {
    agreement = await establishDp(server.url, parties, work, { id: uniqueId('budget-race'), measurements: [QUEUED] });
  }, 30_000);

  it('runs exactly 10 of 100 queries submitted at once against a budget that allows 10, charging and logging each once', async () => {
    const analyst = clientOf(parties.advertiser);
    const outcomes = await Promise.allSettled(Array.from({ length: 100 }, () => submitQuery(analyst, agreement.id, { sql: DP_SQL })));
    const accepted = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value.id);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown);
    expect(accepted).toHaveLength(10);
    expect(refused).toHaveLength(90);
    for (const reason of refused) expect(isMalusError(reason, 'budget-exhausted'), String(reason)).toBe(true);

    const jobs = await listJobs(analyst, agreement.id);
    expect(jobs.map((j) => j.id).sort()).toEqual([...accepted].sort());
    expect(jobs.every((j) => j.state === 'queued')).toBe(true);
    const charged = await eventsOf(agreement.id, 'privacy.charged');
    expect(charged).toHaveLength(10);
    expect(charged.map((e) => (e.type === 'privacy.charged' ? e.job : '')).sort()).toEqual([...accepted].sort());
    expect(charged[0]).toMatchObject({ actor: { kind: 'server', id: 'malus-budget' }, analyst: parties.advertiser.identity.id, cost: { epsilon: '1/10', delta: '1/100000' } });
    expect(await eventsOf(agreement.id, 'job.submitted')).toHaveLength(10);
    expect(await server.store.jobs.charges(agreement.id)).toHaveLength(10);

    const budget = await getBudget(analyst, agreement.id);
    expect(exact(budget.collaboration.spent)).toEqual({ epsilon: '1', delta: '1/10000' });
    expect(exact(budget.collaboration.remaining)).toEqual({ epsilon: '0', delta: '9/10000' });
  }, 60_000);

  it('refuses one more as RFC 9457 problem+json 409 budget-exhausted, saying when the budget refreshes', async () => {
    const response = await inject(server, prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${agreement.id}/jobs`, json: { kind: 'query', sql: DP_SQL }, as: parties.advertiser }));
    const next = budgetPeriod('monthly', new Date()).next?.toISOString() ?? '';
    expectProblem(response, 409, 'budget-exhausted', `has epsilon 0, delta 9/10000 left; this query costs epsilon 1/10, delta 1/100000; the budget refreshes at ${next}`);
  });

  it('charges nothing for a check, which reads no data on behalf of an analyst', async () => {
    const before = await server.store.jobs.charges(agreement.id);
    const check = await submitJob(clientOf(parties.advertiser), agreement.id, { kind: 'key-check', datasets: ['whatever'] });
    expect(check.state).toBe('queued');
    expect(await server.store.jobs.charges(agreement.id)).toEqual(before);
  });
});

describe('GET /v1/collaborations/{id}/budget', () => {
  let agreement: Agreement;
  beforeAll(async () => {
    agreement = await establishDp(server.url, parties, work, {
      id: uniqueId('budget-view'),
      measurements: [QUEUED],
      privacy: { budget: { epsilon: 1, delta: 0.001 }, refresh: 'daily', analystBudgets: [{ party: parties.advertiser.identity.id, epsilon: 0.3 }] },
    });
  }, 30_000);

  it("shows members the period, the next refresh, and what the collaboration and each analyst spent, exactly and as decimals", async () => {
    await submitQuery(clientOf(parties.advertiser), agreement.id, { sql: DP_SQL });
    const view = await getBudget(clientOf(parties.operator), agreement.id);
    const period = budgetPeriod('daily', new Date());
    expect(view).toMatchObject({ id: agreement.id, accounting: 'pure', refresh: 'daily', period: period.key, nextRefresh: period.next?.toISOString() });
    expect(view.collaboration).toEqual({
      budget: { epsilon: { exact: '1', decimal: '1' }, delta: { exact: '1/1000', decimal: '0.001' } },
      spent: { epsilon: { exact: '1/10', decimal: '0.1' }, delta: { exact: '1/100000', decimal: '0.00001' } },
      remaining: { epsilon: { exact: '9/10', decimal: '0.9' }, delta: { exact: '99/100000', decimal: '0.00099' } },
    });
    expect(view.analysts).toEqual([
      {
        party: parties.advertiser.identity.id,
        budget: { epsilon: { exact: '3/10', decimal: '0.3' } },
        spent: { epsilon: { exact: '1/10', decimal: '0.1' }, delta: { exact: '1/100000', decimal: '0.00001' } },
        remaining: { epsilon: { exact: '1/5', decimal: '0.2' } },
      },
    ]);
  });

  it("stops an analyst at their own budget, before the collaboration's", async () => {
    const analyst = clientOf(parties.advertiser);
    await submitQuery(analyst, agreement.id, { sql: DP_SQL });
    await submitQuery(analyst, agreement.id, { sql: DP_SQL });
    const refused = await submitQuery(analyst, agreement.id, { sql: DP_SQL }).catch((error: unknown) => error);
    expect(isMalusError(refused, 'budget-exhausted') && refused.message).toContain("the analyst's privacy budget");
    expect(exact((await getBudget(analyst, agreement.id)).collaboration.remaining)).toMatchObject({ epsilon: '7/10' });
  });

  it('answers 404 to an outsider, and 409 for a collaboration without an active agreement', async () => {
    const outsider = generatePartyKeys('Budget outsider');
    expectProblem(await inject(server, prepare({ clock }, { method: 'GET', path: `/v1/collaborations/${agreement.id}/budget`, as: outsider })), 404, 'not-found');
    // Proposed but not signed by the publisher: not active.
    const proposed = { ...agreement, id: uniqueId('budget-unsigned') };
    const signature = signAgreement(proposed, agreementHash(proposed), { partyId: parties.advertiser.identity.id, signingSecret: parties.advertiser.signingSecret }, new Date());
    const response = await inject(server, prepare({ clock }, { method: 'POST', path: '/v1/collaborations', json: { agreement: proposed, signature }, as: parties.advertiser }));
    expect(response.statusCode, response.body).toBe(201);
    expectProblem(await inject(server, prepare({ clock }, { method: 'GET', path: `/v1/collaborations/${proposed.id}/budget`, as: parties.advertiser })), 409, 'conflict', 'no active agreement');
  });
});

describe('refunds', () => {
  let agreement: Agreement;
  beforeAll(async () => {
    agreement = await establishDp(server.url, parties, work, { id: uniqueId('budget-refund'), measurements: [RUN, QUEUED] });
  }, 30_000);

  async function failedWith(error: string): Promise<string> {
    const job = await submitQuery(clientOf(parties.advertiser), agreement.id, { sql: DP_SQL });
    const claimed = await worker.claim();
    expect(claimed?.id).toBe(job.id);
    await worker.finish(job.id, { error });
    return job.id;
  }

  it('gives the charge back, logged, when the job failed before its query ran on data', async () => {
    const job = await failedWith('key-release-denied: no key-release service released the keys');
    const events = await eventsOf(agreement.id);
    const finished = events.findIndex((e) => e.type === 'job.finished' && e.job === job);
    expect(events[finished + 1]).toMatchObject({ type: 'privacy.refunded', job, analyst: parties.advertiser.identity.id, cost: { epsilon: '1/10', delta: '1/100000' }, code: 'key-release-denied' });
    expect(exact((await getBudget(clientOf(parties.advertiser), agreement.id)).collaboration.spent)).toEqual({ epsilon: '0', delta: '0' });
  });

  it('refuses a result whose signed statement records another privacy cost than the job was charged', async () => {
    const job = await submitQuery(clientOf(parties.advertiser), agreement.id, { sql: DP_SQL });
    const claimed = await worker.claim();
    expect(claimed?.id).toBe(job.id);
    const statementWith = (cost: Record<string, string>) =>
      signStatement(
        {
          format: 'malus.job-result/v1',
          job: job.id,
          collaboration: agreement.id,
          agreement: agreementHash(agreement),
          kind: 'query',
          output: { privacy: { cost } },
          enclave: { platform: 'sim', measurement: RUN, signingKey: workerIdentity.id, evidence: [] },
          notice: SIMULATED_NOTICE,
          time: new Date().toISOString(),
        },
        workerIdentity.signing.secretKey,
      );
    const refusal = async (cost: Record<string, string>) => (await worker.finish(job.id, { result: statementWith(cost) }).then(() => undefined, (error: unknown) => error)) as { code?: string; message?: string };
    const cheaper = await refusal({ epsilon: '1/100', delta: '1/100000' });
    expect(cheaper.code).toBe('signature-invalid');
    expect(cheaper.message).toContain('the statement records the privacy cost epsilon 1/100, delta 1/100000, and the job was charged epsilon 1/10, delta 1/100000');
    // The charged cost passes this check (the rest of this hand-made result still fails others).
    expect((await refusal({ epsilon: '1/10', delta: '1/100000' })).message).not.toContain('privacy cost');
    await worker.finish(job.id, { error: 'query-failed: given up' });
  });

  it('keeps the charge of a job whose failure depends on the data (query-failed, query-timeout, result-too-large), whose result was refused, or is unknown', async () => {
    for (const error of ['query-failed: DuckDB refused', 'query-timeout: too long', 'result-too-large: big', 'result-undelivered: the server did not accept the result (invalid-input: request body is invalid)', 'Alice Smith: 42']) {
      await failedWith(error);
    }
    expect(await eventsOf(agreement.id, 'privacy.refunded')).toHaveLength(1);
    expect(exact((await getBudget(clientOf(parties.advertiser), agreement.id)).collaboration.spent)).toEqual({ epsilon: '3/5', delta: '3/50000' });
  });
});

describe('cancelling a queued job', () => {
  it('gives its submitter the charge back, logged, and refuses anyone else, a second cancel, and a job an enclave took', async () => {
    const agreement = await establishDp(server.url, parties, work, { id: uniqueId('budget-cancel'), measurements: [QUEUED, RUN] });
    const analyst = clientOf(parties.advertiser);
    const job = await submitQuery(analyst, agreement.id, { sql: DP_SQL });
    expect(exact((await getBudget(analyst, agreement.id)).collaboration.spent)).toEqual({ epsilon: '1/10', delta: '1/100000' });
    const path = `/v1/collaborations/${agreement.id}/jobs/${job.id}`;
    expectProblem(await inject(server, prepare({ clock }, { method: 'DELETE', path, as: parties.publisher })), 403, 'forbidden', 'only the submitter');

    const cancelled = await cancelJob(analyst, agreement.id, job.id);
    expect(cancelled).toMatchObject({ state: 'failed', error: 'cancelled: withdrawn by its submitter before any enclave took it' });
    expect(exact((await getBudget(analyst, agreement.id)).collaboration.spent)).toEqual({ epsilon: '0', delta: '0' });
    const events = (await eventsOf(agreement.id)).filter((e) => 'job' in e && e.job === job.id);
    expect(events.map((e) => e.type)).toEqual(['job.submitted', 'privacy.charged', 'job.finished', 'privacy.refunded']);
    expect(events[2]).toMatchObject({ actor: { kind: 'party', id: parties.advertiser.identity.id }, outcome: 'failed', code: 'cancelled' });
    expect(events[3]).toMatchObject({ code: 'cancelled', cost: { epsilon: '1/10', delta: '1/100000' } });
    expectProblem(await inject(server, prepare({ clock }, { method: 'DELETE', path, as: parties.advertiser })), 409, 'conflict', 'is not queued');

    // Once an enclave has taken a job, it is the enclave's to end.
    const taken = await submitQuery(analyst, agreement.id, { sql: DP_SQL });
    expect((await worker.claim())?.id).toBe(taken.id);
    expectProblem(await inject(server, prepare({ clock }, { method: 'DELETE', path: `/v1/collaborations/${agreement.id}/jobs/${taken.id}`, as: parties.advertiser })), 409, 'conflict');
    await worker.finish(taken.id, { error: 'invalid-input: done with it' });
    expect((await audit(parties.advertiser)).problems).toEqual([]);
  }, 30_000);
});

describe('malus log audit over the budget', () => {
  it('recomputes the spent budget from the log alone and finds it equal to the server’s', async () => {
    const report = await audit(parties.advertiser);
    expect(report.problems).toEqual([]);
    const race = report.budgets.find((b) => b.collaboration.startsWith('budget-race'));
    expect(race).toMatchObject({ charges: 10, refunds: 0, server: { matches: true, spent: { epsilon: '1', delta: '1/10000' } } });
    const refund = report.budgets.find((b) => b.collaboration.startsWith('budget-refund'));
    expect(refund).toMatchObject({ charges: 7, refunds: 1, server: { matches: true, spent: { epsilon: '3/5', delta: '3/50000' } } });
    expect(report.text).toContain('audit passed');
    expect(report.text).toMatch(/budget budget-race-\d+: 10 charge\(s\), 0 refund\(s\) in the log/);
  }, 30_000);

  describe('with books that do not balance', () => {
    let others: Parties;
    let tampered: Agreement;
    let charged: string;
    beforeAll(async () => {
      others = makeParties('Budget tamper ');
      tampered = await establishDp(server.url, others, work, { id: uniqueId('budget-tamper'), measurements: [QUEUED] });
      charged = (await submitQuery(clientOf(others.advertiser), tampered.id, { sql: DP_SQL })).id;
      expect((await audit(others.advertiser)).problems).toEqual([]);
    }, 30_000);

    it('fails when the server holds a row of the books that the log does not have', async () => {
      const db = new Database(join(dataDir, 'malus.db'));
      try {
        db.prepare(
          `INSERT INTO privacy_charges (job_id, kind, collaboration_id, analyst, period, epsilon, rho, delta, log_index, created_at)
           SELECT job_id, 'refund', collaboration_id, analyst, period, epsilon, rho, delta, -1, created_at FROM privacy_charges WHERE job_id = ?`,
        ).run(charged);
        const report = await audit(others.advertiser);
        expect(report.problems).toEqual([expect.stringMatching(/the server shows epsilon 0, delta 0 spent in period \S+, the log epsilon 1\/10, delta 1\/100000/), expect.stringContaining('the server shows analyst')]);
        expect(report.text).toContain('audit FAILED');
      } finally {
        db.prepare("DELETE FROM privacy_charges WHERE job_id = ? AND kind = 'refund'").run(charged);
        db.close();
      }
      expect((await audit(others.advertiser)).problems).toEqual([]);
    }, 30_000);

    it('fails on a second charge for one job, on a refund without its charge, and on a charge with no job', async () => {
      const base = { format: 'malus.event/v1', collaboration: tampered.id, actor: { kind: 'server', id: 'malus-budget' }, time: new Date().toISOString() } as const;
      const period = budgetPeriod('monthly', new Date()).key;
      const cost = { epsilon: '1/10', delta: '1/100000' };
      const analyst = others.advertiser.identity.id;
      const stray = `job-${'e'.repeat(32)}`;
      await server.store.log.append([
        toLogAppend({ ...base, type: 'privacy.charged', job: charged, analyst, period, cost }),
        toLogAppend({ ...base, type: 'privacy.refunded', job: stray, analyst, period, cost, code: 'invalid-input' }),
        toLogAppend({ ...base, type: 'privacy.charged', job: `job-${'f'.repeat(32)}`, analyst, period, cost }),
      ]);
      await server.log.sync();
      const entries = await getLogEntries(clientOf(others.advertiser), tampered.id);
      expect(entries.length).toBeGreaterThan(3);
      const report = await audit(others.advertiser);
      expect(report.problems).toEqual(
        expect.arrayContaining([
          expect.stringContaining(`charges job ${charged} a second time`),
          expect.stringContaining(`refunds job ${stray}, which was never charged`),
          expect.stringContaining(`charges job job-${'f'.repeat(32)}, which has no earlier job.submitted entry`),
          expect.stringMatching(/the server shows epsilon 1\/10, delta 1\/100000 spent in period \S+, the log epsilon 3\/10, delta 3\/100000/),
        ]),
      );
      // The audit of another party's collaborations is not affected.
      expect((await audit(parties.advertiser)).problems).toEqual([]);
    }, 30_000);

    it('fails on a charge of nothing or in a unit the budget does not limit, and on a job finished twice whose charge came back', async () => {
      const time = new Date().toISOString();
      const period = budgetPeriod('monthly', new Date()).key;
      const analyst = others.advertiser.identity.id;
      const base = { format: 'malus.event/v1', collaboration: tampered.id, time } as const;
      const server_ = { kind: 'server', id: 'malus-budget' } as const;
      const submittedBy = (job: string): LogEvent => ({
        ...base,
        actor: { kind: 'party', id: analyst },
        type: 'job.submitted',
        job,
        kind: 'query',
        agreement: agreementHash(tampered),
        datasets: [],
      });
      const [empty, unlimited, twice, taken] = ['a', 'b', 'c', '9'].map((c) => `job-${c.repeat(32)}`) as [string, string, string, string];
      const worker = { kind: 'enclave', id: 'w'.repeat(16) } as const;
      await server.store.log.append(
        [
          submittedBy(empty),
          { ...base, actor: server_, type: 'privacy.charged', job: empty, analyst, period, cost: {} },
          submittedBy(unlimited),
          { ...base, actor: server_, type: 'privacy.charged', job: unlimited, analyst, period, cost: { epsilon: '1/10', rho: '1000000' } },
          submittedBy(twice),
          { ...base, actor: server_, type: 'privacy.charged', job: twice, analyst, period, cost: { epsilon: '1/10' } },
          { ...base, actor: worker, type: 'job.finished', job: twice, outcome: 'succeeded', result: `sha256:${'0'.repeat(64)}` },
          { ...base, actor: worker, type: 'job.finished', job: twice, outcome: 'failed', result: null, code: 'invalid-input' },
          { ...base, actor: server_, type: 'privacy.refunded', job: twice, analyst, period, cost: { epsilon: '1/10' }, code: 'invalid-input' },
          // "Cancelled" after an enclave took the job, and by the enclave rather than the submitter.
          submittedBy(taken),
          { ...base, actor: server_, type: 'privacy.charged', job: taken, analyst, period, cost: { epsilon: '1/10' } },
          { ...base, actor: { kind: 'server', id: 'malus-queue' }, type: 'job.started', job: taken, worker: worker.id, platform: 'sim', measurement: 'ab'.repeat(48) },
          { ...base, actor: worker, type: 'job.finished', job: taken, outcome: 'failed', result: null, code: 'cancelled' },
          { ...base, actor: server_, type: 'privacy.refunded', job: taken, analyst, period, cost: { epsilon: '1/10' }, code: 'cancelled' },
        ].map((event) => toLogAppend(event as LogEvent)),
      );
      await server.log.sync();
      const report = await audit(others.advertiser);
      expect(report.problems).toEqual(
        expect.arrayContaining([
          expect.stringContaining(`charges job ${empty} nothing (no amount in any unit)`),
          expect.stringContaining(`charges job ${unlimited} rho, which the budget does not limit`),
          expect.stringContaining(`finishes job ${twice} a second time`),
          expect.stringContaining(`refunds job ${twice}, which did not fail before its query ran (succeeded)`),
          expect.stringContaining(`cancels job ${taken}, which an enclave had taken`),
          expect.stringContaining(`cancels job ${taken} for someone other than its submitter`),
        ]),
      );
    }, 30_000);

    it('fails on a query job over a table whose privacy policy is required, queued without its charge', async () => {
      const registered = (await server.store.log.entriesOf([tampered.id]))
        .map((e) => JSON.parse(new TextDecoder().decode(e.data)) as LogEvent)
        .find((e) => e.type === 'dataset.registered' && e.table === 'impressions');
      if (registered?.type !== 'dataset.registered') throw new Error('the collaboration has an impressions dataset');
      const uncharged = `job-${'d'.repeat(32)}`;
      const time = new Date().toISOString();
      await server.store.log.append([
        toLogAppend({
          format: 'malus.event/v1',
          collaboration: tampered.id,
          actor: { kind: 'party', id: others.advertiser.identity.id },
          time,
          type: 'job.submitted',
          job: uncharged,
          kind: 'query',
          agreement: agreementHash(tampered),
          datasets: [registered.dataset],
        }),
      ]);
      await server.log.sync();
      const report = await audit(others.advertiser);
      expect(report.problems).toEqual(expect.arrayContaining([expect.stringContaining(`job ${uncharged} (entry `), expect.stringContaining('reads impressions, whose privacy policy is required, but it was never charged')]));
      // The charged query of the same collaboration is not reported.
      expect(report.problems.filter((p) => p.includes(`job ${charged} (entry`))).toEqual([]);
    }, 30_000);
  });
});
