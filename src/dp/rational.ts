import { MalusError } from '../errors/index.js';

// Non-negative rationals as BigInt pairs: the samplers never touch a floating-point number.

export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a < 0n ? -a : a, b < 0n ? -b : b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

export function rational(num: bigint, den = 1n): Rational {
  if (den === 0n) throw new MalusError('invalid-input', 'a rational needs a non-zero denominator');
  const sign = den < 0n ? -1n : 1n;
  const g = gcd(num, den) || 1n;
  return { num: (sign * num) / g, den: (sign * den) / g };
}

/**
 * A scale given as a decimal ("2.5", "100") or a fraction ("7/3"): exactly, never through a
 * float. It must be positive.
 */
export function parseRational(text: string): Rational {
  const fraction = /^(\d{1,100})\/(\d{1,100})$/.exec(text);
  const decimal = /^(\d{1,100})(?:\.(\d{1,100}))?$/.exec(text);
  let value: Rational;
  if (fraction !== null) value = rational(BigInt(fraction[1] as string), BigInt(fraction[2] as string));
  else if (decimal !== null) {
    const digits = decimal[2] ?? '';
    value = rational(BigInt(`${decimal[1] as string}${digits}`), 10n ** BigInt(digits.length));
  } else if (/^-\d/.test(text)) throw new MalusError('invalid-input', `${text} is not positive`);
  else throw new MalusError('invalid-input', `${JSON.stringify(text)} is not a decimal or a fraction a/b`);
  if (value.num <= 0n) throw new MalusError('invalid-input', `${text} is not positive`);
  return value;
}

export const add = (a: Rational, b: Rational): Rational => rational(a.num * b.den + b.num * a.den, a.den * b.den);
export const sub = (a: Rational, b: Rational): Rational => rational(a.num * b.den - b.num * a.den, a.den * b.den);
export const mul = (a: Rational, b: Rational): Rational => rational(a.num * b.num, a.den * b.den);
export const div = (a: Rational, b: Rational): Rational => rational(a.num * b.den, a.den * b.num);
export const floor = (a: Rational): bigint => (a.num >= 0n ? a.num / a.den : -((-a.num + a.den - 1n) / a.den));
export const compare = (a: Rational, b: Rational): number => {
  const d = a.num * b.den - b.num * a.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
};

/** The canonical text of a rational: "n" for an integer, else "a/b" in lowest terms. parseRational reads it back. */
export const formatRational = (a: Rational): string => (a.den === 1n ? `${a.num}` : `${a.num}/${a.den}`);

/**
 * A number from a document (an agreement's epsilon) as the exact decimal its shortest text shows:
 * 0.1 is 1/10, not the binary double nearest to it. Exponents (1e-7) are read too.
 */
export function rationalOfNumber(value: number): Rational {
  const m = Number.isFinite(value) ? /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(value)) : null;
  if (m === null) throw new MalusError('invalid-input', `${value} is not a finite number`);
  const digits = m[3] ?? '';
  const exponent = Number(m[4] ?? '0') - digits.length;
  const mantissa = BigInt(`${m[1] as string}${m[2] as string}${digits}`);
  return exponent >= 0 ? rational(mantissa * 10n ** BigInt(exponent)) : rational(mantissa, 10n ** BigInt(-exponent));
}

/** An integer count of units of 10^-decimals as decimal text: 12345 units, 2 decimals → "123.45". */
export function unitsAsDecimal(units: bigint, decimals: number): string {
  if (decimals === 0) return units.toString();
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}
