import { MalusError } from '../errors/index.js';
import { add, compare, formatRational, parseRational, rational, rationalOfNumber, sub, type Rational } from './rational.js';

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

/** A cost as people read it in messages: "epsilon 1/10, delta 1/1000000", or "nothing". */
export function describeCost(cost: PrivacyCost): string {
  return UNITS.filter((unit) => cost[unit] !== undefined).map((unit) => `${unit} ${cost[unit] ?? ''}`).join(', ') || 'nothing';
}

/** Whether two costs are the same amount in every unit (a unit left out is zero). */
export function equalCosts(a: PrivacyCost, b: PrivacyCost): boolean {
  return UNITS.every((unit) => compare(amount(a, unit), amount(b, unit)) === 0);
}

/** a − b, unit by unit. A negative result means the books are broken (a refund without its charge), so it is refused. */
export function subtractCosts(a: PrivacyCost, b: PrivacyCost): PrivacyCost {
  const out: Record<string, string> = {};
  for (const unit of UNITS) {
    if (a[unit] === undefined && b[unit] === undefined) continue;
    const difference = sub(amount(a, unit), amount(b, unit));
    if (difference.num < 0n) throw new MalusError('invalid-input', `cannot take ${b[unit] ?? '0'} ${unit} from ${a[unit] ?? '0'}`);
    out[unit] = formatRational(difference);
  }
  return out;
}

/** What is left of a budget after `spent`, in the units the budget names; zero, not negative, once it is used up. */
export function remainingBudget(budget: PrivacyCost, spent: PrivacyCost): PrivacyCost {
  const out: Record<string, string> = {};
  for (const unit of UNITS) {
    if (budget[unit] === undefined) continue;
    const left = sub(amount(budget, unit), amount(spent, unit));
    out[unit] = left.num < 0n ? '0' : formatRational(left);
  }
  return out;
}

/** A budget or cost as an agreement states it (JS numbers), exactly: 0.1 is 1/10, not the double nearest to it. */
export function costOfNumbers(amounts: { readonly epsilon?: number; readonly rho?: number; readonly delta?: number }): PrivacyCost {
  const out: Record<string, string> = {};
  for (const unit of UNITS) {
    const value = amounts[unit];
    if (value === undefined) continue;
    const exact = rationalOfNumber(value);
    if (exact.num < 0n) throw new MalusError('invalid-input', `a privacy ${unit} of ${value} is negative`);
    out[unit] = formatRational(exact);
  }
  return out;
}

/**
 * An amount for people to read: the decimal nearest to it with at most `digits` fraction digits
 * ("1/3" is "0.333333"). Display only; accounting uses the exact text.
 */
export function approximateDecimal(text: string, digits = 6): string {
  const value = text === '0' ? rational(0n) : parseRational(text);
  const scale = 10n ** BigInt(digits);
  const scaled = value.num * scale;
  let units = scaled / value.den;
  if (2n * (scaled % value.den) >= value.den) units += 1n;
  const whole = units / scale;
  const fraction = (units % scale).toString().padStart(digits, '0').replace(/0+$/, '');
  return fraction === '' ? `${whole}` : `${whole}.${fraction}`;
}
