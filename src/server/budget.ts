import type { Agreement } from '../agreement/index.js';
import type { BudgetAmounts, BudgetView } from '../api/index.js';
import {
  addCosts,
  approximateDecimal,
  budgetPeriod,
  budgetsOf,
  isRefundable,
  remainingBudget,
  subtractCosts,
  type Budgets,
  type PrivacyCost,
} from '../dp/index.js';
import { MalusError } from '../errors/index.js';
import type { LogEvent } from '../ledger/index.js';
import type { LogAppend, PrivacyChargeInput, PrivacyChargeRecord } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import { activeAgreementOf } from './collaborations.js';
import type { ServerContext } from './context.js';
import { toLogAppend } from './transparency.js';

// The privacy accountant's side of the server (docs/dp.md): what a query is charged as it is queued,
// what a failed job gets back, and the budget a member reads. The arithmetic and the atomicity are
// the store's (JobRepository.create and finish); this file decides the amounts and the entries.

const BUDGET_ACTOR = { kind: 'server', id: 'malus-budget' } as const;

const UNITS = ['epsilon', 'rho', 'delta'] as const;

interface AgreementBudgets extends Budgets {
  readonly settings: NonNullable<Agreement['privacy']>;
}

function budgetsOfAgreement(agreement: Agreement): AgreementBudgets | undefined {
  const settings = agreement.privacy;
  return settings === undefined ? undefined : { settings, ...budgetsOf(settings) };
}

/** The charge of a query job under the agreement it is queued under, with its privacy.charged entry. */
export function privacyCharge(agreement: Agreement, jobId: string, analyst: string, cost: PrivacyCost, now: Date): PrivacyChargeInput {
  const budgets = budgetsOfAgreement(agreement);
  if (budgets === undefined) throw new MalusError('agreement-invalid', 'the query has a privacy cost but the agreement sets no privacy budget');
  const exact = addCosts(cost);
  // Fail closed: a unit the query spends but the budget does not limit would be spent without bound.
  const unlimited = UNITS.filter((unit) => exact[unit] !== undefined && exact[unit] !== '0' && budgets.collaboration[unit] === undefined);
  if (unlimited.length > 0) throw new MalusError('agreement-invalid', `the query spends ${unlimited.join(' and ')}, which the agreement's budget does not limit`);
  const period = budgetPeriod(budgets.settings.refresh, now);
  const event: LogEvent = {
    format: 'malus.event/v1',
    type: 'privacy.charged',
    collaboration: agreement.id,
    actor: BUDGET_ACTOR,
    time: now.toISOString(),
    job: jobId,
    analyst,
    period: period.key,
    cost: exact,
  };
  const analystBudget = budgets.analyst(analyst);
  return {
    analyst,
    period: period.key,
    cost: exact,
    budget: budgets.collaboration,
    ...(analystBudget === undefined ? {} : { analystBudget }),
    event: toLogAppend(event),
  };
}

/** When the refused query's budget comes back, for the budget-exhausted detail. */
export function refreshNote(agreement: Agreement, now: Date): string {
  const refresh = agreement.privacy?.refresh ?? 'never';
  const next = budgetPeriod(refresh, now).next;
  return next === null ? 'this budget never refreshes' : `the budget refreshes at ${next.toISOString()}`;
}

/** The refund a failed job gets when its failure code is refundable (isRefundable): the entry the store appends with it. */
export function privacyRefund(code: string, now: Date): ((charge: PrivacyChargeRecord) => LogAppend) | undefined {
  if (!isRefundable(code)) return undefined;
  return (charge) =>
    toLogAppend({
      format: 'malus.event/v1',
      type: 'privacy.refunded',
      collaboration: charge.collaborationId,
      actor: BUDGET_ACTOR,
      time: now.toISOString(),
      job: charge.jobId,
      analyst: charge.analyst,
      period: charge.period,
      cost: charge.cost,
      code,
    });
}

/** Charges minus refunds. */
function spentOf(rows: readonly PrivacyChargeRecord[]): PrivacyCost {
  const sum = (kind: PrivacyChargeRecord['kind']): PrivacyCost => addCosts(...rows.filter((r) => r.kind === kind).map((r) => r.cost));
  return subtractCosts(sum('charge'), sum('refund'));
}

function amounts(cost: PrivacyCost): BudgetAmounts {
  const out: BudgetAmounts = {};
  for (const unit of UNITS) {
    const exact = cost[unit];
    if (exact !== undefined) out[unit] = { exact, decimal: approximateDecimal(exact) };
  }
  return out;
}

/** Spent, in the units spent and those the budget names (zero when nothing was spent of them). */
function spentIn(spent: PrivacyCost, budget: PrivacyCost | undefined): PrivacyCost {
  const zeros = Object.fromEntries(Object.keys(budget ?? {}).map((unit) => [unit, '0']));
  return addCosts(zeros, spent);
}

/** The current period's budget of a collaboration (members only), under its active agreement. */
export async function budgetOfCollaboration(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<BudgetView> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
  const now = ctx.now();
  const active = await activeAgreementOf(ctx, id, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${id} has no active agreement`);
  const budgets = budgetsOfAgreement(active.agreement);
  if (budgets === undefined) throw new MalusError('conflict', `the active agreement of collaboration ${id} sets no privacy budget`);
  const period = budgetPeriod(budgets.settings.refresh, now);
  const rows = await ctx.store.jobs.charges(id, period.key);
  const spent = spentIn(spentOf(rows), budgets.collaboration);
  const analysts = [
    ...new Set([
      ...active.agreement.parties.filter((p) => p.roles.includes('analyst')).map((p) => p.id),
      ...rows.map((r) => r.analyst),
    ]),
  ].sort();
  return {
    id,
    agreement: active.hash,
    accounting: budgets.settings.accounting,
    refresh: budgets.settings.refresh,
    period: period.key,
    nextRefresh: period.next === null ? null : period.next.toISOString(),
    collaboration: { budget: amounts(budgets.collaboration), spent: amounts(spent), remaining: amounts(remainingBudget(budgets.collaboration, spent)) },
    analysts: analysts.map((party) => {
      const own = budgets.analyst(party);
      const theirs = spentIn(spentOf(rows.filter((r) => r.analyst === party)), own ?? budgets.collaboration);
      return {
        party,
        ...(own === undefined ? {} : { budget: amounts(own), remaining: amounts(remainingBudget(own, theirs)) }),
        spent: amounts(theirs),
      };
    }),
  };
}
