import { describe, expect, it } from 'vitest';
import { isqrt } from '../../src/dp/conversions.js';
import {
  costOfGaussian,
  costOfLaplace,
  epsilonFromRho,
  gaussianSigmaFor,
  laplaceScaleFor,
  rational,
  rhoFromEpsilon,
  zcdpToApproxDp,
  zcdpToApproxDpTight,
  type Rational,
} from '../../src/dp/index.js';
import { isMalusError } from '../../src/errors/index.js';

// Exact checks in rational arithmetic: each rounding is in the private direction and within its
// stated relative error. The (ε, δ) references are 30-digit values computed with mpmath.

/** A decimal or a fraction of any length (parseRational caps each part at 30 digits). */
function q(text: string): Rational {
  const [whole, fraction = ''] = text.split('/')[0]!.split('.');
  const value = rational(BigInt(`${whole!}${fraction}`), 10n ** BigInt(fraction.length));
  const over = text.split('/')[1];
  return over === undefined ? value : rational(value.num, value.den * BigInt(over));
}
const mul = (a: Rational, b: Rational): Rational => rational(a.num * b.num, a.den * b.den);
const cmp = (a: Rational, b: Rational): number => {
  const d = a.num * b.den - b.num * a.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
};
const sq = (a: Rational): Rational => mul(a, a);
const onePlus = (text: string): Rational => rational(q(text).num + q(text).den, q(text).den);
const oneMinus = (text: string): Rational => rational(q(text).den - q(text).num, q(text).den);

function refuses(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    return isMalusError(error, 'invalid-input');
  }
  return false;
}

describe('isqrt', () => {
  it('is the floor of the square root', () => {
    expect([0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n].map(isqrt)).toEqual([0n, 1n, 1n, 1n, 2n, 3n, 4n, 4n]);
    const big = 10n ** 40n + 12345n;
    expect(isqrt(big * big)).toBe(big);
    expect(isqrt(big * big - 1n)).toBe(big - 1n);
    for (let n = 1n; n < 3000n; n += 7n) {
      const r = isqrt(n);
      expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
    }
  });
});

describe('pure DP and zCDP', () => {
  it('turns ε into ρ = ε²/2 exactly', () => {
    expect(rhoFromEpsilon(q('1'))).toEqual(rational(1n, 2n));
    expect(rhoFromEpsilon(q('0.1'))).toEqual(rational(1n, 200n));
    expect(rhoFromEpsilon(q('7/3'))).toEqual(rational(49n, 18n));
  });

  it('spends ε ≤ √(2ρ) from a ρ budget, within 10⁻⁹, exactly when √(2ρ) is a short decimal', () => {
    expect(epsilonFromRho(q('0.5'))).toEqual(rational(1n));
    expect(epsilonFromRho(q('2'))).toEqual(rational(2n));
    expect(epsilonFromRho(q('0.005'))).toEqual(rational(1n, 10n));
    for (const text of ['1', '1/3', '7/3', '0.000001', '1/1000000000000000000000000000000', '123456789012345678901234567890']) {
      const rho = q(text);
      const epsilon = epsilonFromRho(rho);
      expect(cmp(sq(epsilon), mul(rational(2n), rho))).toBeLessThanOrEqual(0);
      expect(cmp(sq(epsilon), mul(mul(rational(2n), rho), sq(oneMinus('1/1000000000'))))).toBeGreaterThan(0);
      expect(cmp(rhoFromEpsilon(epsilon), rho)).toBeLessThanOrEqual(0);
    }
  });
});

describe('noise calibration', () => {
  it('gives the Laplace scale Δ/ε exactly, and its cost back', () => {
    expect(laplaceScaleFor(q('1'), q('0.1'))).toEqual(rational(10n));
    expect(laplaceScaleFor(q('3'), q('7/2'))).toEqual(rational(6n, 7n));
    expect(costOfLaplace(q('1'), q('10'))).toEqual(rational(1n, 10n));
    expect(costOfLaplace(q('3'), laplaceScaleFor(q('3'), q('7/2')))).toEqual(rational(7n, 2n));
  });

  it('gives a σ with σ² ≥ Δ²/(2ρ) exactly, within 10⁻⁹ relative', () => {
    expect(gaussianSigmaFor(q('1'), q('0.5'))).toEqual(rational(1n));
    expect(gaussianSigmaFor(q('1'), q('1/8'))).toEqual(rational(2n));
    expect(gaussianSigmaFor(q('4'), q('0.02'))).toEqual(rational(10n));
    const cases = [['1', '1'], ['1', '1/3'], ['2', '0.1'], ['7/3', '0.0001'], ['100000000000000000000', '1/1000000000000000000000000000000'], ['1', '98765432109876543210']];
    for (const [delta2, rhoText] of cases) {
      const sensitivity = q(delta2 as string);
      const rho = q(rhoText as string);
      const sigma = gaussianSigmaFor(sensitivity, rho);
      const variance = rational(sensitivity.num * rho.den, sensitivity.den * 2n * rho.num);
      expect(cmp(sq(sigma), variance)).toBeGreaterThanOrEqual(0);
      expect(cmp(sq(sigma), mul(variance, sq(onePlus('1/1000000000'))))).toBeLessThan(0);
      // The round trip: the noise costs at most ρ, and not much less.
      const cost = costOfGaussian(sensitivity, sigma);
      expect(cmp(cost, rho)).toBeLessThanOrEqual(0);
      expect(cmp(cost, mul(rho, oneMinus('3/1000000000')))).toBeGreaterThan(0);
    }
  });

  it('prices Gaussian noise as Δ²/(2σ²) exactly', () => {
    expect(costOfGaussian(q('1'), q('1'))).toEqual(rational(1n, 2n));
    expect(costOfGaussian(q('4'), q('2'))).toEqual(rational(1n, 2n));
    expect(costOfGaussian(q('1'), q('5/2'))).toEqual(rational(2n, 25n));
  });
});

describe('zCDP to (ε, δ)', () => {
  // [ρ, δ, ρ + 2√(ρ ln(1/δ)), the CKS 2020 Corollary 13 value]
  const references = [
    ['1/2', '1/1000000', '5.75652176975693197863012135810', '5.22153444453016904422096144444'],
    ['1', `1/1${'0'.repeat(400)}`, '61.697085175405854034518895742', '61.5510395540904267288904546061'],
    ['7/3', '1/3', '5.53547553727051801512555131469', '3.78013456024274373369404381604'],
    ['0.000001', '0.000001', '0.00743484437769967689390481352261', '0.00449649398064861169073867267179'],
    ['1000000', '0.000001', '1007433.84437769967689390481352', '1007427.2475952043383455139804'],
    ['1/100', '1/1000000000', '0.920456277631087810517783436130', '0.810174467867534163810004944561'],
  ] as const;

  it.each(references)('ρ = %s, δ = %s: an upper bound within 10⁻⁹ of each ε', (rho, delta, standard, tight) => {
    const up = zcdpToApproxDp(q(rho), q(delta));
    expect(cmp(up, q(standard))).toBeGreaterThanOrEqual(0);
    expect(cmp(up, mul(q(standard), onePlus('1/1000000000')))).toBeLessThan(0);
    const better = zcdpToApproxDpTight(q(rho), q(delta));
    expect(cmp(better, q(tight))).toBeGreaterThanOrEqual(0);
    expect(cmp(better, mul(q(tight), onePlus('1/1000000000')))).toBeLessThan(0);
    expect(cmp(better, up)).toBeLessThanOrEqual(0);
  });

  it('keeps δ near 1 accurate, and reports (0, δ) when the tight ε would be negative', () => {
    const delta = oneMinus('1/1000000000000');
    const up = zcdpToApproxDp(q('1'), delta);
    expect(cmp(up, q('1.0000020000000000005'))).toBeGreaterThanOrEqual(0);
    expect(cmp(up, q('1.000002001'))).toBeLessThan(0);
    expect(zcdpToApproxDpTight(q('1'), delta)).toEqual(rational(0n));
  });

  it('reads the ρ = 0.5, δ = 10⁻⁶ example as about 5.7565', () => {
    const up = zcdpToApproxDp(q('0.5'), q('0.000001'));
    expect(Number(up.num) / Number(up.den)).toBeCloseTo(5.756521769757, 8);
  });
});

describe('invalid inputs', () => {
  const zero = rational(0n);
  const negative = rational(-1n, 2n);
  it.each([
    ['rhoFromEpsilon(0)', () => rhoFromEpsilon(zero)],
    ['rhoFromEpsilon(-1/2)', () => rhoFromEpsilon(negative)],
    ['epsilonFromRho(0)', () => epsilonFromRho(zero)],
    ['laplaceScaleFor(0, 1)', () => laplaceScaleFor(zero, q('1'))],
    ['laplaceScaleFor(1, 0)', () => laplaceScaleFor(q('1'), zero)],
    ['laplaceScaleFor(1, -1/2)', () => laplaceScaleFor(q('1'), negative)],
    ['gaussianSigmaFor(0, 1)', () => gaussianSigmaFor(zero, q('1'))],
    ['gaussianSigmaFor(1, -1/2)', () => gaussianSigmaFor(q('1'), negative)],
    ['costOfLaplace(1, 0)', () => costOfLaplace(q('1'), zero)],
    ['costOfGaussian(1, 0)', () => costOfGaussian(q('1'), zero)],
    ['costOfGaussian(-1/2, 1)', () => costOfGaussian(negative, q('1'))],
    ['zcdpToApproxDp(0, 1/2)', () => zcdpToApproxDp(zero, q('1/2'))],
    ['zcdpToApproxDp(1, 0)', () => zcdpToApproxDp(q('1'), zero)],
    ['zcdpToApproxDp(1, 1)', () => zcdpToApproxDp(q('1'), q('1'))],
    ['zcdpToApproxDp(1, 2)', () => zcdpToApproxDp(q('1'), q('2'))],
    ['zcdpToApproxDpTight(-1/2, 1/2)', () => zcdpToApproxDpTight(negative, q('1/2'))],
    ['zcdpToApproxDpTight(1, 1)', () => zcdpToApproxDpTight(q('1'), q('1'))],
    ['a hand-made rational with a zero denominator', () => laplaceScaleFor({ num: 1n, den: 0n }, q('1'))],
    ['isqrt(-1)', () => isqrt(-1n)],
  ])('refuses %s', (_name, fn) => {
    expect(refuses(fn)).toBe(true);
  });
});
