import type { Agreement } from '../agreement/index.js';
import type { BudgetView } from '../api/index.js';
import { addCosts, budgetPeriod, budgetsOf, describeCost, equalCosts, isRefundable, subtractCosts, withinBudget, type PrivacyCost } from '../dp/index.js';
import type { LogEvent } from '../ledger/index.js';

// The budget part of `malus log audit`: the spent budget recomputed from a collaboration's log
// entries alone (charges minus refunds, per period and per analyst), every charge and refund
// checked against the entries around it, and the result compared with what the server shows.

export interface PeriodSpent {
  period: string;
  spent: PrivacyCost;
  /** By analyst party id. */
  analysts: Record<string, PrivacyCost>;
}

export interface BudgetAudit {
  collaboration: string;
  charges: number;
  refunds: number;
  /** From the log alone, in the order the periods first appear. */
  periods: PeriodSpent[];
  /** The server's current period next to the log's figure for it; absent when the server shows no budget. */
  server?: { period: string; spent: PrivacyCost; log: PrivacyCost; matches: boolean };
}

interface Charge {
  readonly index: number;
  readonly analyst: string;
  readonly period: string;
  readonly cost: PrivacyCost;
}

const sameCharge = (a: Charge, b: Omit<Charge, 'index'>): boolean => a.analyst === b.analyst && a.period === b.period && equalCosts(a.cost, b.cost);

/**
 * Audits the budget of one collaboration from its entries in index order, the agreement versions
 * by hash, and the server's budget view read with no entry appended in between.
 */
export function auditBudget(
  collaboration: string,
  entries: readonly { index: number; event: LogEvent }[],
  agreements: ReadonlyMap<string, Agreement>,
  view: BudgetView | undefined,
): { audit: BudgetAudit; problems: string[] } {
  const problems: string[] = [];
  const submitted = new Map<string, { index: number; analyst: string; agreement: string; kind: string; datasets: readonly string[] }>();
  const tableOf = new Map<string, string>();
  const finished = new Map<string, { index: number; outcome: string; code: string | undefined }>();
  const charges = new Map<string, Charge>();
  const refunded = new Set<string>();
  const started = new Set<string>();
  const periods = new Map<string, PeriodSpent>();
  let chargeCount = 0;
  let refundCount = 0;

  const periodOf = (key: string): PeriodSpent => {
    let found = periods.get(key);
    if (found === undefined) periods.set(key, (found = { period: key, spent: {}, analysts: {} }));
    return found;
  };
  const move = (charge: Omit<Charge, 'index'>, sign: 1 | -1): void => {
    const p = periodOf(charge.period);
    const step = (from: PrivacyCost): PrivacyCost => (sign === 1 ? addCosts(from, charge.cost) : subtractCosts(from, charge.cost));
    p.spent = step(p.spent);
    p.analysts[charge.analyst] = step(p.analysts[charge.analyst] ?? {});
  };

  for (const { index, event } of entries) {
    if (event.type === 'dataset.registered') {
      tableOf.set(event.dataset, event.table);
    } else if (event.type === 'job.submitted') {
      if (event.actor.kind === 'party') submitted.set(event.job, { index, analyst: event.actor.id, agreement: event.agreement, kind: event.kind, datasets: event.datasets });
    } else if (event.type === 'job.started') {
      started.add(event.job);
    } else if (event.type === 'job.finished') {
      // Only the submitter cancels, and only a job no enclave took: else "cancelled" would be a
      // refund for a query that ran.
      if (event.code === 'cancelled') {
        const job = submitted.get(event.job);
        if (started.has(event.job)) problems.push(`${collaboration}: entry ${index} cancels job ${event.job}, which an enclave had taken`);
        if (event.actor.kind !== 'party' || event.actor.id !== job?.analyst) problems.push(`${collaboration}: entry ${index} cancels job ${event.job} for someone other than its submitter`);
      }
      // A job ends once: a second end could turn a delivered result into a refundable failure.
      const first = finished.get(event.job);
      if (first !== undefined) problems.push(`${collaboration}: entry ${index} finishes job ${event.job} a second time (first at entry ${first.index}, ${first.outcome})`);
      else finished.set(event.job, { index, outcome: event.outcome, code: event.code });
    } else if (event.type === 'privacy.charged') {
      chargeCount += 1;
      const charge: Charge = { index, analyst: event.analyst, period: event.period, cost: event.cost };
      const first = charges.get(event.job);
      if (first !== undefined) problems.push(`${collaboration}: entry ${index} charges job ${event.job} a second time (first at entry ${first.index})`);
      else charges.set(event.job, charge);
      const job = submitted.get(event.job);
      if (job === undefined) problems.push(`${collaboration}: entry ${index} charges job ${event.job}, which has no earlier job.submitted entry`);
      else if (job.analyst !== event.analyst) problems.push(`${collaboration}: entry ${index} charges ${event.analyst} for job ${event.job}, submitted by ${job.analyst}`);
      // Counted even when it is wrong: the log says it was spent.
      move(charge, 1);
      const settings = job === undefined ? undefined : agreements.get(job.agreement)?.privacy;
      if (job !== undefined && settings === undefined) problems.push(`${collaboration}: entry ${index} charges job ${event.job}, whose agreement sets no privacy budget`);
      if (settings !== undefined) {
        const expected = budgetPeriod(settings.refresh, new Date(event.time)).key;
        if (expected !== event.period) problems.push(`${collaboration}: entry ${index} charges period ${event.period}, but at ${event.time} the period is ${expected}`);
        const budgets = budgetsOf(settings);
        // As the server charges: some amount, and only in units the budget limits.
        const amounts = Object.entries(event.cost) as [keyof PrivacyCost, string][];
        if (amounts.length === 0) problems.push(`${collaboration}: entry ${index} charges job ${event.job} nothing (no amount in any unit)`);
        const unlimited = amounts.filter(([unit, amount]) => amount !== '0' && budgets.collaboration[unit] === undefined).map(([unit]) => unit);
        if (unlimited.length > 0) problems.push(`${collaboration}: entry ${index} charges job ${event.job} ${unlimited.join(' and ')}, which the budget does not limit`);
        const p = periodOf(event.period);
        if (!withinBudget(p.spent, budgets.collaboration)) {
          problems.push(`${collaboration}: after entry ${index}, period ${event.period} has spent ${describeCost(p.spent)}, over the budget of ${describeCost(budgets.collaboration)}`);
        }
        const own = budgets.analyst(event.analyst);
        const theirs = p.analysts[event.analyst] ?? {};
        if (own !== undefined && !withinBudget(theirs, own)) {
          problems.push(`${collaboration}: after entry ${index}, analyst ${event.analyst} has spent ${describeCost(theirs)} in period ${event.period}, over their budget of ${describeCost(own)}`);
        }
      }
    } else if (event.type === 'privacy.refunded') {
      refundCount += 1;
      const charge = charges.get(event.job);
      const end = finished.get(event.job);
      if (charge === undefined) {
        problems.push(`${collaboration}: entry ${index} refunds job ${event.job}, which was never charged`);
        continue;
      }
      if (refunded.has(event.job)) {
        problems.push(`${collaboration}: entry ${index} refunds job ${event.job} a second time`);
        continue;
      }
      if (!sameCharge(charge, event)) {
        problems.push(`${collaboration}: entry ${index} refunds job ${event.job} something other than its charge at entry ${charge.index}`);
        continue;
      }
      if (end?.outcome !== 'failed' || end.code !== event.code || !isRefundable(event.code)) {
        problems.push(`${collaboration}: entry ${index} refunds job ${event.job}, which did not fail before its query ran (${end === undefined ? 'not finished' : `${end.outcome} ${end.code ?? ''}`.trim()})`);
      }
      refunded.add(event.job);
      move(charge, -1);
    }
  }
  // A query job binds exactly the tables its query reads (the enclave refuses it otherwise), and a
  // query reading a table whose privacy policy is required is charged when it is queued: such a
  // job without a charge is spending the log does not show. (A template's own policy cannot be
  // seen from the log; the enclave-signed statement of each result records its cost.)
  for (const [job, { index, agreement, kind, datasets }] of submitted) {
    if (kind !== 'query' || charges.has(job)) continue;
    const required = (agreements.get(agreement)?.privacy?.policies ?? []).filter((policy) => policy.required && policy.table !== undefined).map((policy) => policy.table);
    const read = datasets.map((dataset) => tableOf.get(dataset)).filter((table) => table !== undefined && required.includes(table));
    if (read.length > 0) problems.push(`${collaboration}: job ${job} (entry ${index}) reads ${[...new Set(read)].join(', ')}, whose privacy policy is required, but it was never charged`);
  }
  for (const [job, charge] of charges) {
    const end = finished.get(job);
    if (end?.outcome === 'failed' && end.code !== undefined && isRefundable(end.code) && !refunded.has(job)) {
      problems.push(`${collaboration}: job ${job} failed before its query ran (${end.code}) but its charge at entry ${charge.index} was not refunded`);
    }
  }

  const audit: BudgetAudit = { collaboration, charges: chargeCount, refunds: refundCount, periods: [...periods.values()] };
  if (view !== undefined) {
    const exact = (amounts: BudgetView['collaboration']['spent']): PrivacyCost =>
      Object.fromEntries(Object.entries(amounts).map(([unit, amount]) => [unit, amount.exact]));
    const logged = periods.get(view.period);
    const spent = exact(view.collaboration.spent);
    const log = logged?.spent ?? {};
    const matches = equalCosts(spent, log);
    audit.server = { period: view.period, spent, log, matches };
    if (!matches) problems.push(`${collaboration}: the server shows ${describeCost(spent)} spent in period ${view.period}, the log ${describeCost(log)}`);
    const parties = new Set([...view.analysts.map((a) => a.party), ...Object.keys(logged?.analysts ?? {})]);
    for (const party of [...parties].sort()) {
      const shown = view.analysts.find((a) => a.party === party);
      const theirs = exact(shown?.spent ?? {});
      const fromLog = logged?.analysts[party] ?? {};
      if (!equalCosts(theirs, fromLog)) {
        problems.push(`${collaboration}: the server shows analyst ${party} spent ${describeCost(theirs)} in period ${view.period}, the log ${describeCost(fromLog)}`);
      }
    }
  }
  return { audit, problems };
}
