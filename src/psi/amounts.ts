// The values the sum mode adds are non-negative integers: exponential ElGamal adds exponents, and
// the bounded discrete logarithm only finds small non-negative ones. Decimal amounts are scaled to
// an integer count of their smallest unit first (cents: 2 decimals), exactly, from their text.
import { MalusError, type Issue } from '../errors/index.js';

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/** "12.34" at 2 decimals is 1234n. Refuses signs, exponents, and more decimals than the scale keeps (no silent rounding). */
export function parseAmount(text: string, decimals: number): bigint {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 18) throw new MalusError('invalid-input', `an amount scale takes 0 to 18 decimals (not ${decimals})`);
  const match = DECIMAL.exec(text);
  if (match === null) throw new MalusError('invalid-input', `${JSON.stringify(text)} is not a non-negative decimal amount`);
  const whole = match[1] ?? '0';
  const fraction = match[2] ?? '';
  if (fraction.length > decimals && /[^0]/.test(fraction.slice(decimals))) {
    throw new MalusError('invalid-input', `${JSON.stringify(text)} has more than ${decimals} decimals; scale it or round it first`);
  }
  return BigInt(whole + fraction.slice(0, decimals).padEnd(decimals, '0'));
}

/** The values as BigInts, or a MalusError listing every one that is not a non-negative integer. */
export function checkValues(values: readonly (number | bigint)[], path: string): bigint[] {
  const issues: Issue[] = [];
  const out = values.map((value, i) => {
    if (typeof value === 'bigint') {
      if (value >= 0n) return value;
    } else if (Number.isSafeInteger(value) && value >= 0) {
      return BigInt(value);
    }
    issues.push({ path: `${path}[${i}]`, message: 'must be a non-negative integer (a number below 2^53, or a bigint); scale decimal amounts with parseAmount' });
    return 0n;
  });
  if (issues.length > 0) throw new MalusError('invalid-input', `${issues.length} sum value(s) are not non-negative integers`, { issues: issues.slice(0, 20) });
  return out;
}
