import { add, compare, formatRational, parseRational, rational, type Rational } from './rational.js';

// What a query spends from a privacy budget, exactly: each amount is the text of a rational
// ("1/10", "2"), so that adding a thousand charges of 0.1 lands exactly on 100, never a hair above.

/** A privacy cost or budget: epsilon under pure accounting, rho under zCDP; delta when the query selects groups by a noisy threshold. */
export interface PrivacyCost {
  readonly epsilon?: string;
  readonly rho?: string;
  readonly delta?: string;
}

const UNITS = ['epsilon', 'rho', 'delta'] as const;

const amount = (cost: PrivacyCost, unit: (typeof UNITS)[number]): Rational => {
  const text = cost[unit];
  return text === undefined || text === '0' ? rational(0n) : parseRational(text);
};

/** The sum of costs, unit by unit; a unit absent from every term stays absent. */
export function addCosts(...costs: readonly PrivacyCost[]): PrivacyCost {
  const out: Record<string, string> = {};
  for (const unit of UNITS) {
    if (!costs.some((c) => c[unit] !== undefined)) continue;
    out[unit] = formatRational(costs.reduce((sum, c) => add(sum, amount(c, unit)), rational(0n)));
  }
  return out;
}

/** True when `spent` is at most `budget` in every unit the budget names (a unit the budget leaves out is not limited). */
export function withinBudget(spent: PrivacyCost, budget: PrivacyCost): boolean {
  return UNITS.every((unit) => budget[unit] === undefined || compare(amount(spent, unit), amount(budget, unit)) <= 0);
}
