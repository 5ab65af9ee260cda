import { MalusError } from '../errors/index.js';
import { cryptoBytes, uniformBelow, type RandomBytes } from './random.js';
import { compare, div, floor, mul, rational, sub, type Rational } from './rational.js';

// Exact samplers after Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential
// Privacy" (2020), Algorithms 1 to 3: integer and rational arithmetic only, randomness from a
// CSPRNG. Floating-point noise leaks through the gaps between doubles (Mironov 2012); these have
// none. Expected costs (CKS §5): Bernoulli(exp(-γ)) uses O(1 + γ) Bernoulli draws; the discrete
// Laplace with scale t/s an expected O(1) loop (a rejection rate below 1 - 1/e per round, plus a
// geometric count of about 1/(e - 1) per unit of U); the discrete Gaussian an expected number of
// rounds below 1.6 for any σ.

/** Bernoulli(p) for a rational 0 ≤ p ≤ 1. */
export function bernoulli(p: Rational, bytes: RandomBytes = cryptoBytes): boolean {
  if (p.num <= 0n) return false;
  if (p.num >= p.den) return true;
  return uniformBelow(p.den, bytes) < p.num;
}

/** Bernoulli(exp(-γ)) for a rational γ ≥ 0 (CKS Algorithm 1). */
export function bernoulliExp(gamma: Rational, bytes: RandomBytes = cryptoBytes): boolean {
  if (gamma.num < 0n) throw new MalusError('invalid-input', 'γ must not be negative');
  if (compare(gamma, rational(1n)) <= 0) {
    let k = 1n;
    for (;;) {
      if (!bernoulli(div(gamma, rational(k)), bytes)) break;
      k += 1n;
    }
    return k % 2n === 1n;
  }
  const whole = floor(gamma);
  for (let i = 0n; i < whole; i += 1n) if (!bernoulliExp(rational(1n), bytes)) return false;
  return bernoulliExp(sub(gamma, rational(whole)), bytes);
}

/**
 * The discrete Laplace distribution with scale b (P(x) ∝ exp(-|x|/b)) for a rational b > 0 (CKS
 * Algorithm 2, with b = t/s).
 */
export function discreteLaplace(scale: Rational, bytes: RandomBytes = cryptoBytes): bigint {
  if (scale.num <= 0n) throw new MalusError('invalid-input', 'the scale must be positive');
  const t = scale.num;
  const s = scale.den;
  for (;;) {
    const u = uniformBelow(t, bytes);
    if (!bernoulliExp(rational(u, t), bytes)) continue;
    let v = 0n;
    while (bernoulliExp(rational(1n), bytes)) v += 1n;
    const y = (u + t * v) / s;
    const negative = bernoulli(rational(1n, 2n), bytes);
    if (negative && y === 0n) continue;
    return negative ? -y : y;
  }
}

/** The discrete Gaussian with parameter σ (P(x) ∝ exp(-x²/2σ²)) for a rational σ > 0 (CKS Algorithm 3). */
export function discreteGaussian(sigma: Rational, bytes: RandomBytes = cryptoBytes): bigint {
  if (sigma.num <= 0n) throw new MalusError('invalid-input', 'σ must be positive');
  const variance = mul(sigma, sigma);
  const t = floor(sigma) + 1n;
  const lap = rational(t);
  const varianceOverT = div(variance, lap);
  const twoVariance = mul(rational(2n), variance);
  for (;;) {
    const y = discreteLaplace(lap, bytes);
    const distance = sub(rational(y < 0n ? -y : y), varianceOverT);
    if (bernoulliExp(div(mul(distance, distance), twoVariance), bytes)) return y;
  }
}
