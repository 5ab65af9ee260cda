import { z } from 'zod';

// Wire schema of a collaboration's privacy budget (docs/dp.md): what the accountant holds for the
// current period, exactly (rational text) and as a decimal for people to read.

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const partyId = z.string().regex(/^[0-9a-f]{20}$/);
const rationalText = z.string().regex(/^(?:0|[1-9][0-9]{0,29}(?:\/[1-9][0-9]{0,29})?)$/, 'expected a rational: n or a/b');

const amount = z.strictObject({
  exact: rationalText,
  /** Rounded to 6 fraction digits: for display, never for accounting. */
  decimal: z.string(),
});

/** Amounts per unit; a unit neither budgeted nor spent is left out. */
export const budgetAmounts = z.strictObject({ epsilon: amount.optional(), rho: amount.optional(), delta: amount.optional() });

export const budgetView = z.strictObject({
  id: z.string(),
  /** The active agreement whose privacy settings apply now. */
  agreement: hash,
  accounting: z.enum(['pure', 'zcdp']),
  refresh: z.enum(['never', 'daily', 'monthly']),
  /** The current period's key: `all`, `YYYY-MM-DD` or `YYYY-MM` (UTC). */
  period: z.string(),
  /** When the budget is whole again (RFC 3339), or null when it never refreshes. */
  nextRefresh: z.string().nullable(),
  collaboration: z.strictObject({ budget: budgetAmounts, spent: budgetAmounts, remaining: budgetAmounts }),
  /** Every analyst of the agreement, and anyone else who spent in this period; budget and remaining only for those with a budget of their own. */
  analysts: z.array(
    z.strictObject({ party: partyId, budget: budgetAmounts.optional(), spent: budgetAmounts, remaining: budgetAmounts.optional() }),
  ),
});

export type BudgetAmounts = z.infer<typeof budgetAmounts>;
export type BudgetView = z.infer<typeof budgetView>;
