import { MalusError } from '../errors/index.js';
import { compare, div, mul, rational, sub, type Rational } from './rational.js';

// Conversions between pure DP, zCDP and (ε, δ)-DP (Bun and Steinke, "Concentrated Differential
// Privacy", TCC 2016; Canonne, Kamath and Steinke 2020, Corollary 13), and the noise calibration
// the engine uses. Calibration is exact or rounded in BigInt, always in the private direction: a
// scale is rounded up, an ε spent from a ρ budget down. The (ε, δ) conversions are for reporting,
// not sampling, so they use floating point with a margin and round the result up.

function positive(value: Rational, name: string): Rational {
  if (value.num <= 0n || value.den <= 0n) throw new MalusError('invalid-input', `${name} must be positive`);
  return value;
}

function probability(value: Rational, name: string): Rational {
  if (value.num <= 0n || value.den <= 0n || value.num >= value.den) {
    throw new MalusError('invalid-input', `${name} must be strictly between 0 and 1`);
  }
  return value;
}

/** ⌊√n⌋ for n ≥ 0, by Newton's iteration from a start above the root. */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new MalusError('invalid-input', 'no square root of a negative number');
  if (n < 2n) return n;
  let x = 1n << BigInt((n.toString(2).length + 1) >> 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

const digits = (n: bigint): number => n.toString().length;

/**
 * √v rounded up or down to N/10^k with N ≥ 3·10⁹, so a relative error below 10⁻⁹: k makes
 * v·10^2k ≥ 10^19, as v ≥ 10^(digits(num) − digits(den) − 1).
 */
function sqrtRounded(v: Rational, up: boolean): Rational {
  const k = BigInt(Math.max(0, Math.ceil((20 - (digits(v.num) - digits(v.den))) / 2)));
  const scaled = v.num * 10n ** (2n * k);
  if (up) {
    // N² ≥ scaled/den ⟺ N² ≥ ⌈scaled/den⌉, as N² is an integer.
    const target = (scaled + v.den - 1n) / v.den;
    const root = isqrt(target);
    return rational(root * root === target ? root : root + 1n, 10n ** k);
  }
  return rational(isqrt(scaled / v.den), 10n ** k);
}

/** ε-DP implies (ε²/2)-zCDP (Bun and Steinke 2016): exact. */
export function rhoFromEpsilon(epsilon: Rational): Rational {
  positive(epsilon, 'epsilon');
  return mul(rational(1n, 2n), mul(epsilon, epsilon));
}

/**
 * √(2ρ) rounded down to a decimal (relative error below 10⁻⁹), for a Laplace measurement charged
 * to a zCDP budget: since ε²/2 ≤ ρ, ε-DP noise is ρ-zCDP.
 */
export function epsilonFromRho(rho: Rational): Rational {
  return sqrtRounded(mul(rational(2n), positive(rho, 'rho')), false);
}

/** The discrete Laplace scale b = Δ/ε that makes a query of L1 sensitivity Δ ε-DP: exact. */
export function laplaceScaleFor(sensitivityL1: Rational, epsilon: Rational): Rational {
  return div(positive(sensitivityL1, 'the sensitivity'), positive(epsilon, 'epsilon'));
}

/**
 * A decimal σ with σ² ≥ Δ²/(2ρ) and relative error below 10⁻⁹: the discrete Gaussian with it is
 * ρ-zCDP for a query of squared L2 sensitivity Δ² (CKS 2020): ρ = Δ²/(2σ²).
 */
export function gaussianSigmaFor(sensitivityL2Squared: Rational, rho: Rational): Rational {
  const variance = div(positive(sensitivityL2Squared, 'the squared sensitivity'), mul(rational(2n), positive(rho, 'rho')));
  return sqrtRounded(variance, true);
}

/** The ε of discrete Laplace noise of scale b on a query of L1 sensitivity Δ: Δ/b, exact. */
export function costOfLaplace(sensitivityL1: Rational, scale: Rational): Rational {
  return div(positive(sensitivityL1, 'the sensitivity'), positive(scale, 'the scale'));
}

/** The ρ of discrete Gaussian noise of parameter σ on a query of squared L2 sensitivity Δ²: Δ²/(2σ²), exact. */
export function costOfGaussian(sensitivityL2Squared: Rational, sigma: Rational): Rational {
  positive(sigma, 'sigma');
  return div(positive(sensitivityL2Squared, 'the squared sensitivity'), mul(rational(2n), mul(sigma, sigma)));
}

// Floating point, for the (ε, δ) reports only. A positive rational becomes a double with a
// relative error below 2⁻⁵², even when its numerator and denominator overflow a double.

const bitLength = (n: bigint): number => n.toString(2).length;

/** r as the nearest-ish double: 64 quotient bits, then one rounding (0 or ∞ outside the double range). */
export function toNumber(r: Rational): number {
  const shift = bitLength(r.num) - bitLength(r.den) - 64;
  const quotient = shift >= 0 ? r.num / (r.den << BigInt(shift)) : (r.num << BigInt(-shift)) / r.den;
  return Number(quotient) * 2 ** shift;
}

/** ρ as a double, refusing one that underflows or overflows (below 10⁻³⁰⁰ or above 10³⁰⁰, say). */
function rhoNumber(rho: Rational): number {
  const r = toNumber(positive(rho, 'rho'));
  if (!(r > 0 && Number.isFinite(r))) throw new MalusError('invalid-input', 'rho is out of the range of the conversion');
  return r;
}

/** ln(1/δ) for 0 < δ < 1, accurate to a few units in the last place also for δ near 1. */
function logInverse(delta: Rational): number {
  if (2n * delta.num >= delta.den) return -Math.log1p(-toNumber(sub(rational(1n), delta)));
  const lnBig = (n: bigint): number => {
    const drop = Math.max(0, bitLength(n) - 1000);
    return Math.log(Number(n >> BigInt(drop))) + drop * Math.LN2;
  };
  return lnBig(delta.den) - lnBig(delta.num);
}

/** The exact rational value of a finite double x ≥ 0, read from its bits. */
function exactOfDouble(x: number): Rational {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = Math.max(biased, 1) - 1075;
  return exponent >= 0 ? rational(mantissa << BigInt(exponent)) : rational(mantissa, 1n << BigInt(-exponent));
}

/**
 * A float upper bound made safe: the terms were computed with a relative error below 10⁻¹⁴ each
 * (a handful of correctly rounded operations and 1-ulp logarithms on inputs within 2⁻⁵² of the
 * exact ones), so adding 10⁻¹⁰ of the sum of their magnitudes covers it 10⁴ times over. Then the
 * exact value is rounded up to 12 significant digits.
 */
function safeUpper(terms: readonly number[]): Rational {
  const value = terms.reduce((a, b) => a + b, 0);
  const magnitude = terms.reduce((a, b) => a + Math.abs(b), 0);
  const upper = value + 1e-10 * magnitude;
  if (!Number.isFinite(upper)) throw new MalusError('invalid-input', 'the conversion is out of range');
  // CKS's ε can be negative when δ is near 1: then (0, δ)-DP already holds.
  if (upper <= 0) return rational(0n);
  const exact = exactOfDouble(upper);
  const k = 11 - Math.floor(Math.log10(upper));
  const unit = k >= 0 ? rational(1n, 10n ** BigInt(k)) : rational(10n ** BigInt(-k));
  const q = div(exact, unit);
  return mul(rational((q.num + q.den - 1n) / q.den), unit);
}

/**
 * ρ-zCDP implies (ρ + 2√(ρ ln(1/δ)), δ)-DP for every 0 < δ < 1 (Bun and Steinke
 * 2016): an upper bound of that ε, within 2·10⁻¹⁰ relative.
 */
export function zcdpToApproxDp(rho: Rational, delta: Rational): Rational {
  const r = rhoNumber(rho);
  const l = logInverse(probability(delta, 'delta'));
  return safeUpper([r, 2 * Math.sqrt(r * l)]);
}

/**
 * The tighter conversion of CKS 2020, Corollary 13: ρ-zCDP implies (ε, δ)-DP with
 * ε = ρα + (ln(1/δ) − ln α)/(α − 1) + ln(1 − 1/α) for every α > 1. Any α gives a valid ε, so α
 * is searched for in floating point and only its ε need be bounded safely; never above
 * zcdpToApproxDp.
 */
export function zcdpToApproxDpTight(rho: Rational, delta: Rational): Rational {
  const r = rhoNumber(rho);
  const l = logInverse(probability(delta, 'delta'));
  // With α a double in (1, 2⁵³), a = α − 1 is exact; each term is then a few accurate operations.
  const terms = (t: number): number[] => {
    const alpha = 1 + Math.exp(t);
    const a = alpha - 1;
    return [r * alpha, l / a, -Math.log1p(a) / a, -Math.log1p(1 / a)];
  };
  const value = (t: number): number => terms(t).reduce((x, y) => x + y, 0);
  // Golden-section search on t = ln(α − 1) around the minimiser of ρα + ln(1/δ)/(α − 1).
  const centre = 0.5 * Math.log(l / r);
  let lo = Math.max(centre - 20, Math.log(1e-12));
  let hi = Math.min(centre + 20, Math.log(1e12));
  const g = (Math.sqrt(5) - 1) / 2;
  for (let i = 0; i < 200; i += 1) {
    const m1 = hi - g * (hi - lo);
    const m2 = lo + g * (hi - lo);
    if (value(m1) <= value(m2)) hi = m2;
    else lo = m1;
  }
  const tight = safeUpper(terms((lo + hi) / 2));
  const standard = zcdpToApproxDp(rho, delta);
  return compare(tight, standard) <= 0 ? tight : standard;
}
