import { MalusError } from '../errors/index.js';
import { toNumber } from './conversions.js';
import type { Rational } from './rational.js';

// The half-width of a confidence interval for the NOISE a mechanism adds: the smallest integer w
// with P(|X| ≤ w) ≥ level for X the discrete Laplace or discrete Gaussian noise. It says nothing
// about the sampling error of the data. Computed in floating point (not the sampling path) and
// made conservative: w is never too small; it is at most one too large for the Laplace (b ≤ 10⁹)
// and the Gaussian with σ ≤ 4096, and at most two for larger σ.

/** The tail α = 1 − level is shrunk by this relative margin, which covers every float error below. */
const MARGIN = 1e-9;

/** Up to this σ the discrete Gaussian's mass is summed term by term; above it, bounded by erfc. */
const SUM_LIMIT = 4096;

function tail(level: number): number {
  if (!(level > 0 && level < 1)) throw new MalusError('invalid-input', 'the confidence level must be strictly between 0 and 1');
  return (1 - level) * (1 - MARGIN);
}

function scaleOf(scale: Rational): number {
  if (scale.num <= 0n || scale.den <= 0n) throw new MalusError('invalid-input', 'the scale must be positive');
  return toNumber(scale);
}

/**
 * erfc(x), with a relative error below 10⁻¹³ for the x used here (tested against 30-digit
 * values): for x < 2 as 1 − erf(x) from the series (2/√π)e^(−x²) Σ 2ⁿx^(2n+1)/(2n+1)!!, whose
 * terms are all positive; for x ≥ 2 the continued fraction of Abramowitz and Stegun 7.1.14,
 * which 100 levels make exact to the last bit there.
 */
export function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) {
    let term = x;
    let sum = x;
    for (let n = 0; term > sum * 1e-17; n += 1) {
      term *= (2 * x * x) / (2 * n + 3);
      sum += term;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
  }
  let t = x;
  for (let k = 100; k >= 1; k -= 1) t = x + k / 2 / t;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * t);
}

/**
 * The discrete Laplace of scale b has P(|X| > w) = 2q^(w+1)/(1 + q) with q = e^(−1/b), so w is
 * the least integer with w + 1 ≥ b·(ln(2/(1 + q)) + ln(1/α)). The float error of that product
 * (about 10⁻¹⁵ relative) is far below the b·10⁻⁹ that MARGIN adds to it.
 */
export function laplaceHalfWidth(scale: Rational, level = 0.95): number {
  const b = scaleOf(scale);
  const alpha = tail(level);
  const x = b * (-Math.log1p(Math.expm1(-1 / b) / 2) - Math.log(alpha));
  return Math.max(0, Math.ceil(x) - 1);
}

/**
 * Summed from the far end, where the terms are smallest, to 12σ + 2 (the rest is below e⁻⁷²
 * of the total): fewer than 50,000 terms, so a rounding error below 10⁻¹¹ relative.
 */
function gaussianBySum(sigma: number, alpha: number): number {
  const last = Math.ceil(12 * sigma) + 2;
  const twoVariance = 2 * sigma * sigma;
  const above = new Float64Array(last + 1);
  let sum = 0;
  for (let x = last; x >= 0; x -= 1) {
    above[x] = sum;
    sum += x === 0 ? 1 : Math.exp(-(x * x) / twoVariance);
  }
  const total = 2 * sum - 1;
  let w = 0;
  while (w < last && (2 * (above[w] ?? 0)) / total > alpha) w += 1;
  return w;
}

/**
 * For a decreasing f, Σ_{x>w} f(x) ≤ ∫_w^∞ f and Σ_x f(x) ≥ ∫ f − f(0), so
 * P(|X| > w) ≤ erfc(w/(σ√2))·s/(s − 1) with s = σ√(2π); the smallest w meeting that bound is found
 * by bisection. The same bounds the other way show it exceeds the exact w by at most two.
 */
function gaussianByBound(sigma: number, alpha: number): number {
  const s = sigma * Math.sqrt(2 * Math.PI);
  const bound = (w: number): number => (erfc(w / (sigma * Math.SQRT2)) * s) / (s - 1);
  let lo = 0;
  let hi = Math.ceil(10 * sigma);
  while (bound(hi) > alpha) hi *= 2;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (bound(mid) <= alpha) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The half-width for discrete Gaussian noise of parameter σ (P(x) ∝ exp(−x²/2σ²)). */
export function gaussianHalfWidth(sigma: Rational, level = 0.95): number {
  const s = scaleOf(sigma);
  const alpha = tail(level);
  return s <= SUM_LIMIT ? gaussianBySum(s, alpha) : gaussianByBound(s, alpha);
}

/** The half-width for either mechanism, as the engine reports it with each noisy column. */
export function noiseHalfWidth(mechanism: 'laplace' | 'gaussian', scale: Rational, level = 0.95): number {
  return mechanism === 'laplace' ? laplaceHalfWidth(scale, level) : gaussianHalfWidth(scale, level);
}
