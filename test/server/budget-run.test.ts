import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { createClient, getBudget, getLogKey, runAudit, submitQuery, waitForJob } from '../../src/client/index.js';
import { verifyStatementSignature, type SignedStatement } from '../../src/engine/index.js';
import { isMalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { parseVerifierKey } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { DP_SQL, establishDp } from './budget-helpers.js';
import { makeParties, removeDir, tempDir, uniqueId, type Parties } from './helpers.js';

// The race of budget.test.ts carried through to the end: a server with its in-process sim enclave
// worker and a real encrypted dataset. Of 100 queries submitted at once against a budget that
// allows 10, exactly 10 run to a signed result, each recording the cost it was charged, and the
// books the log gives agree with the server's.

const MEASUREMENT = 'a9'.repeat(48);

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;
let agreement: Agreement;
const clientOf = (keys: PartyKeys) => createClient({ server: server.url, keys });

beforeAll(async () => {
  dataDir = tempDir('malus-budget-run-');
  work = tempDir('malus-budget-run-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, simMeasurement: MEASUREMENT, workerPollIntervalMs: 20 });
  parties = makeParties('Budget run ');
  agreement = await establishDp(server.url, parties, work, { id: uniqueId('budget-run'), measurements: [MEASUREMENT], rows: true });
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

describe('100 queries at once against a budget for 10, run by the enclave worker', () => {
  it('runs exactly 10 to a signed result that records its cost, refuses 90, and leaves books the log reproduces', async () => {
    const analyst = clientOf(parties.advertiser);
    const outcomes = await Promise.allSettled(Array.from({ length: 100 }, () => submitQuery(analyst, agreement.id, { sql: DP_SQL })));
    const accepted = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value.id);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown);
    expect(accepted).toHaveLength(10);
    for (const reason of refused) expect(isMalusError(reason, 'budget-exhausted'), String(reason)).toBe(true);

    const finished = [];
    for (const id of accepted) finished.push(await waitForJob(analyst, agreement.id, id, { timeoutMs: 60_000, intervalMs: 50 }));
    expect(finished.map((job) => [job.state, job.error])).toEqual(accepted.map(() => ['succeeded', null]));
    for (const job of finished) {
      const result = job.result as SignedStatement;
      expect(verifyStatementSignature(result), job.id).toBe(true);
      expect(result.statement).toMatchObject({ job: job.id, kind: 'query', enclave: { platform: 'sim', measurement: MEASUREMENT } });
      expect((result.statement.output.privacy as { cost?: unknown } | undefined)?.cost).toEqual({ epsilon: '1/10', delta: '1/100000' });
    }
    const events = (await server.store.log.entriesOf([agreement.id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as { type: string });
    expect(events.filter((e) => e.type === 'privacy.charged')).toHaveLength(10);
    expect(events.filter((e) => e.type === 'privacy.refunded')).toHaveLength(0);

    const budget = await getBudget(analyst, agreement.id);
    expect(budget.collaboration.spent.epsilon?.exact).toBe('1');
    expect(budget.collaboration.remaining.epsilon?.exact).toBe('0');
    const verifier = parseVerifierKey((await getLogKey(analyst)).verifierKey);
    if (verifier === undefined) throw new Error('no log key');
    const report = await runAudit(analyst, verifier);
    expect(report.problems).toEqual([]);
  }, 120_000);
});
