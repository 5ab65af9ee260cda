import { MalusError } from '../errors/index.js';
import { costOfNumbers, withinBudget, type PrivacyCost } from './cost.js';

// The accountant's rules that the server and an auditor must apply alike (docs/dp.md): budget
// periods and which failures give a charge back.
//
// An agreement's budget refreshes never, daily or monthly, on UTC calendar boundaries. Charges are
// kept under the key of the period they were made in, so the spent amount of a period is the sum
// of its rows, and a refresh needs no job to run at midnight.

export type RefreshPolicy = 'never' | 'daily' | 'monthly';

export interface BudgetPeriod {
  /** `all` (never), `YYYY-MM-DD` (daily) or `YYYY-MM` (monthly), in UTC. */
  readonly key: string;
  /** When the next period starts (its budget is whole again); null when it never refreshes. */
  readonly next: Date | null;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The period `now` falls in under a refresh policy, and when the next one starts. */
export function budgetPeriod(refresh: RefreshPolicy, now: Date): BudgetPeriod {
  if (Number.isNaN(now.getTime())) throw new MalusError('invalid-input', 'the time of a budget period is not a valid date');
  const [y, m, d] = [now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()];
  switch (refresh) {
    case 'never':
      return { key: 'all', next: null };
    case 'daily':
      return { key: `${pad(y, 4)}-${pad(m + 1)}-${pad(d)}`, next: new Date(Date.UTC(y, m, d + 1)) };
    case 'monthly':
      return { key: `${pad(y, 4)}-${pad(m + 1)}`, next: new Date(Date.UTC(y, m + 1, 1)) };
    default:
      throw new MalusError('invalid-input', `unknown budget refresh policy ${JSON.stringify(refresh)}`);
  }
}

/**
 * Failure codes a worker reports only before its query ran on data: the agreement, the job, the
 * analyst, the key release or a dataset's own checks refused it. Their charge is refunded. Any other
 * code is not: query-failed, query-timeout and result-too-large come from running the query, and
 * whether a query fails on the data is itself something learnt about the data; internal,
 * enclave-error and the server's own codes can happen after the run, and an unknown reason is
 * treated as the worst case. Enclave code must not raise these codes once the sandbox has run.
 */
export const REFUNDABLE_FAILURES: readonly string[] = [
  'agreement-mismatch',
  'agreement-invalid',
  'forbidden',
  'query-denied',
  'key-release-denied',
  'attestation-refused',
  'invalid-input',
  // Withdrawn by its submitter while queued: no enclave took it.
  'cancelled',
];

/** Whether a job that failed with this code gets its charge back. */
export const isRefundable = (code: string): boolean => REFUNDABLE_FAILURES.includes(code);

/** An agreement's privacy settings, as far as budgets go (structurally: dp does not import agreements). */
export interface BudgetSettings {
  readonly budget: { readonly epsilon?: number; readonly rho?: number; readonly delta?: number };
  readonly analystBudgets?: readonly { readonly party: string; readonly epsilon?: number; readonly rho?: number }[];
}

export interface Budgets {
  /** The collaboration's budget for a period, exactly. */
  readonly collaboration: PrivacyCost;
  /** An analyst's own budget; undefined when the agreement gives it none (only the collaboration's limits it). */
  analyst(party: string): PrivacyCost | undefined;
}

/** The smallest of several budgets, unit by unit: two entries for one analyst both hold. */
function tightest(budgets: readonly PrivacyCost[]): PrivacyCost | undefined {
  if (budgets.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const budget of budgets) {
    for (const [unit, value] of Object.entries(budget) as [keyof PrivacyCost, string][]) {
      const current = out[unit];
      if (current === undefined || withinBudget({ [unit]: value }, { [unit]: current })) out[unit] = value;
    }
  }
  return out;
}

/** The exact budgets an agreement's privacy settings give. */
export function budgetsOf(settings: BudgetSettings): Budgets {
  const collaboration = costOfNumbers(settings.budget);
  const entries = settings.analystBudgets ?? [];
  return {
    collaboration,
    analyst: (party) =>
      tightest(
        entries
          .filter((b) => b.party === party)
          .map((b) => costOfNumbers({ ...(b.epsilon === undefined ? {} : { epsilon: b.epsilon }), ...(b.rho === undefined ? {} : { rho: b.rho }) })),
      ),
  };
}
