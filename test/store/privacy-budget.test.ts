import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  approximateDecimal,
  budgetPeriod,
  budgetsOf,
  costOfNumbers,
  describeCost,
  equalCosts,
  isRefundable,
  remainingBudget,
  subtractCosts,
  type PrivacyCost,
} from '../../src/dp/index.js';
import { ERROR_CODES, isMalusError } from '../../src/errors/index.js';
import { decodeEvent, encodeEvent, leafHash, type LogEvent } from '../../src/ledger/index.js';
import { openSqliteStore, type JobRecord, type LogAppend, type PrivacyChargeInput, type PrivacyChargeRecord, type Store } from '../../src/store/index.js';
import { MIGRATIONS, migrate } from '../../src/store/sqlite/migrations.js';

// The privacy accountant in the store, on real SQLite files: charges checked against exact budgets
// in the transaction that queues the job, refunds in the one that ends it, and periods as keys.

const T0 = new Date('2026-03-01T12:00:00.000Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
const M1 = 'a1'.repeat(48);
const ALICE = '0123456789abcdef0123';
const BOB = 'fedcba9876543210fedc';
const COLLAB = 'collab-dp';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function freshFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'malus-budget-store-'));
  dirs.push(dir);
  return join(dir, 'malus.db');
}

let counter = 0;

function job(changes: Partial<JobRecord> = {}): JobRecord {
  counter += 1;
  return {
    id: `job-${counter.toString(16).padStart(32, '0')}`,
    collaborationId: COLLAB,
    agreementHash: `sha256:${'2'.repeat(64)}`,
    kind: 'query',
    spec: { kind: 'query', query: { sql: 'SELECT 1' }, tables: {} },
    datasets: ['d-1'],
    measurements: [M1],
    state: 'queued',
    submittedBy: ALICE,
    workerId: null,
    result: null,
    error: null,
    createdAt: T0.toISOString(),
    updatedAt: T0.toISOString(),
    ...changes,
  };
}

const append = (event: LogEvent): LogAppend => {
  const data = encodeEvent(event);
  return { data, leafHash: leafHash(data), collaborationId: event.collaboration, type: event.type };
};

const base = (time: Date) => ({ format: 'malus.event/v1' as const, collaboration: COLLAB, actor: { kind: 'server' as const, id: 'malus-budget' }, time: time.toISOString() });

function submitted(record: JobRecord): LogAppend {
  return append({ ...base(T0), actor: { kind: 'party', id: record.submittedBy }, type: 'job.submitted', job: record.id, kind: 'query', agreement: record.agreementHash, datasets: record.datasets });
}

function charge(record: JobRecord, cost: PrivacyCost, budget: PrivacyCost, options: { period?: string; analystBudget?: PrivacyCost } = {}): PrivacyChargeInput {
  const period = options.period ?? '2026-03';
  return {
    analyst: record.submittedBy,
    period,
    cost,
    budget,
    ...(options.analystBudget === undefined ? {} : { analystBudget: options.analystBudget }),
    event: append({ ...base(T0), type: 'privacy.charged', job: record.id, analyst: record.submittedBy, period, cost }),
  };
}

const refund = (code: string) => (c: PrivacyChargeRecord): LogAppend =>
  append({ ...base(at(5)), type: 'privacy.refunded', job: c.jobId, analyst: c.analyst, period: c.period, cost: c.cost, code });

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  return promise.then(
    () => ({ code: 'no error', message: '' }),
    (error: unknown) => {
      if (isMalusError(error)) return { code: error.code, message: error.message };
      throw error;
    },
  );
}

/** Queues a job charged `cost`; resolves with the job or the refusal's code. */
async function queue(store: Store, cost: PrivacyCost, budget: PrivacyCost, options: { submittedBy?: string; period?: string; analystBudget?: PrivacyCost } = {}) {
  const record = job(options.submittedBy === undefined ? {} : { submittedBy: options.submittedBy });
  const outcome = await rejection(store.jobs.create(record, [submitted(record)], charge(record, cost, budget, options)));
  return { record, code: outcome.code, message: outcome.message };
}

const spentOf = (rows: readonly PrivacyChargeRecord[], analyst?: string): string[] =>
  rows.filter((r) => analyst === undefined || r.analyst === analyst).map((r) => `${r.kind} ${r.cost.epsilon ?? r.cost.rho ?? ''}`);

describe('the privacy accountant in the store', () => {
  let store: Store;
  beforeEach(() => {
    store = openSqliteStore({ path: freshFile() });
  });
  afterEach(async () => {
    await store.close();
  });

  it('fits exactly ten charges of 1/10 into a budget of 1 and refuses the eleventh, writing nothing for it', async () => {
    const budget = costOfNumbers({ epsilon: 1 });
    const tenth = costOfNumbers({ epsilon: 0.1 });
    expect(tenth).toEqual({ epsilon: '1/10' });
    for (let i = 0; i < 10; i += 1) expect((await queue(store, tenth, budget)).code).toBe('no error');
    const size = await store.log.size();
    const refused = await queue(store, tenth, budget);
    expect(refused.code).toBe('budget-exhausted');
    expect(ERROR_CODES['budget-exhausted'].status).toBe(409);
    expect(refused.message).toContain('period 2026-03 has epsilon 0 left; this query costs epsilon 1/10');
    expect(await store.jobs.get(refused.record.id)).toBeUndefined();
    expect(await store.log.size()).toBe(size);
    const rows = await store.jobs.charges(COLLAB, '2026-03');
    expect(rows).toHaveLength(10);
    expect(rows.every((r) => r.kind === 'charge' && r.cost.epsilon === '1/10')).toBe(true);
  });

  it('records each charge with its privacy.charged entry, appended after the job events in the same transaction', async () => {
    const queued = await queue(store, { epsilon: '1/4', delta: '1/1000000' }, { epsilon: '1', delta: '1/100000' });
    const [row] = await store.jobs.charges(COLLAB);
    expect(row).toEqual({
      collaborationId: COLLAB,
      jobId: queued.record.id,
      kind: 'charge',
      analyst: ALICE,
      period: '2026-03',
      cost: { epsilon: '1/4', delta: '1/1000000' },
      entry: 1,
      createdAt: T0.toISOString(),
    });
    const entries = await store.log.entries(0, 2);
    expect(entries.map((e) => e.type)).toEqual(['job.submitted', 'privacy.charged']);
    const decoded = decodeEvent(entries[1]?.data ?? new Uint8Array());
    expect(decoded.ok && decoded.event).toMatchObject({ type: 'privacy.charged', job: queued.record.id, cost: { epsilon: '1/4', delta: '1/1000000' } });
  });

  it('adds thirds exactly: three of 1/3 fit a budget of 1, a fourth does not', async () => {
    for (let i = 0; i < 3; i += 1) expect((await queue(store, { epsilon: '1/3' }, { epsilon: '1' })).code).toBe('no error');
    expect((await queue(store, { epsilon: '1/3' }, { epsilon: '1' })).code).toBe('budget-exhausted');
  });

  it('limits every unit the budget names: delta runs out while epsilon is left', async () => {
    const budget = { epsilon: '100', delta: '1/100000' };
    const cost = { epsilon: '1', delta: '1/1000000' };
    for (let i = 0; i < 10; i += 1) expect((await queue(store, cost, budget)).code).toBe('no error');
    const refused = await queue(store, cost, budget);
    expect(refused.code).toBe('budget-exhausted');
    expect(refused.message).toContain('epsilon 90, delta 0 left');
  });

  it("keeps an analyst within their own budget while others still spend from the collaboration's", async () => {
    const budget = { rho: '1' };
    const own = { rho: '3/10' };
    for (let i = 0; i < 3; i += 1) expect((await queue(store, { rho: '1/10' }, budget, { analystBudget: own })).code).toBe('no error');
    const refused = await queue(store, { rho: '1/10' }, budget, { analystBudget: own });
    expect(refused.code).toBe('budget-exhausted');
    expect(refused.message).toContain("the analyst's privacy budget");
    for (let i = 0; i < 7; i += 1) expect((await queue(store, { rho: '1/10' }, budget, { submittedBy: BOB })).code).toBe('no error');
    expect((await queue(store, { rho: '1/10' }, budget, { submittedBy: BOB })).code).toBe('budget-exhausted');
    const rows = await store.jobs.charges(COLLAB);
    expect(spentOf(rows, ALICE)).toEqual(['charge 1/10', 'charge 1/10', 'charge 1/10']);
    expect(spentOf(rows, BOB)).toHaveLength(7);
  });

  it('gives a refundable failure its charge back once, in the transaction that ends the job, so the budget can be spent again', async () => {
    const budget = { epsilon: '1/5' };
    const first = await queue(store, { epsilon: '1/10' }, budget);
    await queue(store, { epsilon: '1/10' }, budget);
    expect((await queue(store, { epsilon: '1/10' }, budget)).code).toBe('budget-exhausted');
    await store.jobs.claim('worker-1', M1, at(1));
    const finishedEvent = append({ ...base(at(5)), actor: { kind: 'enclave', id: 'worker-1' }, type: 'job.finished', job: first.record.id, outcome: 'failed', result: null, code: 'key-release-denied' });
    const done = await store.jobs.finish(first.record.id, 'worker-1', { state: 'failed', error: 'key-release-denied: no' }, at(5), [finishedEvent], refund('key-release-denied'));
    const size = await store.log.size();
    const [finished, refunded] = await store.log.entries(size - 2, size);
    expect(finished?.type).toBe('job.finished');
    expect(done.finishedEntry).toBe(finished?.index);
    expect(refunded?.type).toBe('privacy.refunded');
    const rows = await store.jobs.charges(COLLAB, '2026-03');
    expect(rows.filter((r) => r.jobId === first.record.id)).toEqual([
      expect.objectContaining({ kind: 'charge' }),
      { collaborationId: COLLAB, jobId: first.record.id, kind: 'refund', analyst: ALICE, period: '2026-03', cost: { epsilon: '1/10' }, entry: refunded?.index, createdAt: at(5).toISOString() },
    ]);
    expect((await queue(store, { epsilon: '1/10' }, budget)).code).toBe('no error');
    expect((await queue(store, { epsilon: '1/10' }, budget)).code).toBe('budget-exhausted');
  });

  it('refunds nothing without a refund, for a success, or for a job that was never charged', async () => {
    const budget = { epsilon: '1' };
    const charged = [await queue(store, { epsilon: '1/10' }, budget), await queue(store, { epsilon: '1/10' }, budget)];
    const free = job();
    await store.jobs.create(free, [submitted(free)]);
    // Three workers, one job each (a worker holding a job is given that one again).
    for (let i = 0; i < 3; i += 1) await store.jobs.claim(`worker-${i}`, M1, at(1));
    const size = await store.log.size();
    await store.jobs.finish(charged[0]?.record.id ?? '', 'worker-0', { state: 'failed', error: 'query-failed: x' }, at(2));
    await store.jobs.finish(charged[1]?.record.id ?? '', 'worker-1', { state: 'succeeded', result: { ok: true } }, at(2), [], refund('invalid-input'));
    await store.jobs.finish(free.id, 'worker-2', { state: 'failed', error: 'invalid-input: x' }, at(2), [], refund('invalid-input'));
    expect(await store.log.size()).toBe(size);
    expect((await store.jobs.charges(COLLAB)).map((r) => r.kind)).toEqual(['charge', 'charge']);
  });

  it('counts a period on its own: a new day or month starts with the whole budget, and a refund goes to its own period', async () => {
    const budget = { epsilon: '1' };
    const lastDay = budgetPeriod('daily', new Date('2026-03-31T23:59:59.999Z'));
    const nextDay = budgetPeriod('daily', new Date('2026-04-01T00:00:00.000Z'));
    expect(lastDay).toEqual({ key: '2026-03-31', next: new Date('2026-04-01T00:00:00.000Z') });
    expect(nextDay.key).toBe('2026-04-01');
    const march = await queue(store, { epsilon: '1' }, budget, { period: lastDay.key });
    expect((await queue(store, { epsilon: '1/10' }, budget, { period: lastDay.key })).code).toBe('budget-exhausted');
    expect((await queue(store, { epsilon: '1' }, budget, { period: nextDay.key })).code).toBe('no error');
    await store.jobs.claim('worker-1', M1, at(1));
    await store.jobs.finish(march.record.id, 'worker-1', { state: 'failed', error: 'forbidden: x' }, at(2), [], refund('forbidden'));
    expect((await store.jobs.charges(COLLAB, lastDay.key)).map((r) => r.kind)).toEqual(['charge', 'refund']);
    expect((await queue(store, { epsilon: '1' }, budget, { period: lastDay.key })).code).toBe('no error');
    expect((await queue(store, { epsilon: '1/10' }, budget, { period: nextDay.key })).code).toBe('budget-exhausted');
  });

  it('writes neither job nor charge when the charge entry cannot be appended', async () => {
    const record = job();
    const broken = { ...charge(record, { epsilon: '1/10' }, { epsilon: '1' }), event: { ...submitted(record), leafHash: new Uint8Array(31) } };
    expect((await rejection(store.jobs.create(record, [submitted(record)], broken))).code).toBe('invalid-input');
    expect(await store.jobs.get(record.id)).toBeUndefined();
    expect(await store.jobs.charges(COLLAB)).toEqual([]);
    expect(await store.log.size()).toBe(0);
  });

  it('refuses a charge of nothing, or of an amount that is not a rational', async () => {
    for (const cost of [{}, { epsilon: '0.1e3' }, { epsilon: '-1' }]) {
      const record = job();
      const input = { ...charge(record, { epsilon: '1/10' }, { epsilon: '1' }), cost };
      expect((await rejection(store.jobs.create(record, [], input))).code, JSON.stringify(cost)).toBe('invalid-input');
    }
    expect(await store.log.size()).toBe(0);
  });
});

describe('budget periods', () => {
  it.each([
    ['never', '2026-03-14T10:00:00.000Z', 'all', null],
    ['daily', '2026-03-14T10:00:00.000Z', '2026-03-14', '2026-03-15T00:00:00.000Z'],
    ['daily', '2028-02-28T23:00:00.000Z', '2028-02-28', '2028-02-29T00:00:00.000Z'],
    ['monthly', '2026-03-14T10:00:00.000Z', '2026-03', '2026-04-01T00:00:00.000Z'],
    ['monthly', '2026-12-31T23:59:59.999Z', '2026-12', '2027-01-01T00:00:00.000Z'],
    ['monthly', '2027-01-01T00:00:00.000Z', '2027-01', '2027-02-01T00:00:00.000Z'],
  ] as const)('%s at %s is period %s, refreshing at %s (UTC)', (refresh, now, key, next) => {
    const period = budgetPeriod(refresh, new Date(now));
    expect(period.key).toBe(key);
    expect(period.next === null ? null : period.next.toISOString()).toBe(next);
  });

  it('refuses an invalid date', () => {
    expect(() => budgetPeriod('daily', new Date('nope'))).toThrow(/not a valid date/);
  });
});

describe('migration of a version-5 file', () => {
  it('adds the charges table and keeps the jobs queued before it', async () => {
    const path = freshFile();
    const old = new Database(path);
    migrate(old, MIGRATIONS.slice(0, 5), () => T0);
    old.close();
    const store = openSqliteStore({ path });
    try {
      const { code } = await queue(store, { epsilon: '1/2' }, { epsilon: '1' });
      expect(code).toBe('no error');
      expect(await store.jobs.charges(COLLAB)).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});

describe('exact amounts (src/dp)', () => {
  it('reads agreement numbers as the decimals they show, never as doubles', () => {
    expect(costOfNumbers({ epsilon: 0.1, rho: 1e-7, delta: 0 })).toEqual({ epsilon: '1/10', rho: '1/10000000', delta: '0' });
    expect(() => costOfNumbers({ epsilon: -1 })).toThrow(/negative/);
  });

  it('subtracts, refusing to go below zero, and leaves what remains of a budget at zero once it is spent', () => {
    expect(subtractCosts({ epsilon: '1', delta: '1/1000' }, { epsilon: '3/10' })).toEqual({ epsilon: '7/10', delta: '1/1000' });
    expect(() => subtractCosts({ epsilon: '1/10' }, { epsilon: '1/5' })).toThrow(/cannot take/);
    expect(remainingBudget({ epsilon: '1', delta: '1/100' }, { epsilon: '3/2', rho: '5' })).toEqual({ epsilon: '0', delta: '1/100' });
  });

  it('compares costs with absent units as zero, and describes them', () => {
    expect(equalCosts({ epsilon: '2/20' }, { epsilon: '1/10', delta: '0' })).toBe(true);
    expect(equalCosts({ epsilon: '1/10' }, { epsilon: '1/10', delta: '1/1000000' })).toBe(false);
    expect(describeCost({ delta: '1/2', epsilon: '1' })).toBe('epsilon 1, delta 1/2');
    expect(describeCost({})).toBe('nothing');
  });

  it('rounds for display only', () => {
    expect(approximateDecimal('1/3')).toBe('0.333333');
    expect(approximateDecimal('2/3')).toBe('0.666667');
    expect(approximateDecimal('7/2')).toBe('3.5');
    expect(approximateDecimal('0')).toBe('0');
    expect(approximateDecimal('1/10000000')).toBe('0');
    expect(approximateDecimal('12')).toBe('12');
  });

  it("takes an analyst's tightest budget when the agreement names them twice, and none when it does not name them", () => {
    const budgets = budgetsOf({ budget: { epsilon: 2, delta: 0.00001 }, analystBudgets: [{ party: ALICE, epsilon: 0.5 }, { party: ALICE, epsilon: 0.3, rho: 1 }] });
    expect(budgets.collaboration).toEqual({ epsilon: '2', delta: '1/100000' });
    expect(budgets.analyst(ALICE)).toEqual({ epsilon: '3/10', rho: '1' });
    expect(budgets.analyst(BOB)).toBeUndefined();
  });

  it('refunds only failures that happen before the query runs on data', () => {
    for (const code of ['key-release-denied', 'agreement-mismatch', 'invalid-input', 'query-denied']) expect(isRefundable(code), code).toBe(true);
    for (const code of ['query-failed', 'query-timeout', 'result-too-large', 'internal', 'enclave-error', 'signature-invalid', 'server-unreachable']) {
      expect(isRefundable(code), code).toBe(false);
    }
  });
});
