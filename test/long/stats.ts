// Statistics for the long sampler tests: the chi-square distribution's tail through the
// regularized incomplete gamma function (Numerical Recipes §6.2: a series below a + 1, Lentz's
// continued fraction above), and a goodness-of-fit test of integer draws against a pmf.

/** ln Γ(a) for a a positive multiple of 1/2 (chi-square degrees of freedom / 2), from Γ(1) = 1, Γ(1/2) = √π and Γ(a + 1) = aΓ(a). */
export function lnGammaHalf(a: number): number {
  if (!(a > 0 && Number.isInteger(2 * a))) throw new Error(`lnGammaHalf needs a positive multiple of 1/2, not ${a}`);
  let x = Number.isInteger(a) ? 1 : 0.5;
  let sum = Number.isInteger(a) ? 0 : 0.5 * Math.log(Math.PI);
  for (; x < a; x += 1) sum += Math.log(x);
  return sum;
}

/** The regularized upper incomplete gamma function Q(a, x) = Γ(a, x)/Γ(a), for a = k/2. */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGammaHalf(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 10_000 && Math.abs(term) > Math.abs(sum) * 1e-17; n += 1) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - front * sum;
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i += 1) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-16) break;
  }
  return front * h;
}

/** P(χ²_dof > x). */
export const chiSquareSurvival = (x: number, dof: number): number => gammaQ(dof / 2, x / 2);

/** The x with P(χ²_dof > x) = significance, by bisection to 1e-12 relative; rounded up, so a test at it is at most that significant. */
export function chiSquareCritical(dof: number, significance: number): number {
  let lo = 0;
  let hi = dof + 10;
  while (chiSquareSurvival(hi, dof) > significance) hi *= 2;
  while (hi - lo > 1e-12 * hi) {
    const mid = (lo + hi) / 2;
    if (chiSquareSurvival(mid, dof) > significance) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** A partition of the integers into intervals: bin i holds the x with uppers[i − 1] < x ≤ uppers[i]; the last upper is +∞. */
export interface Bins {
  readonly uppers: readonly number[];
}

/** The probabilities of x = −reach … reach under an unnormalised weight, normalised (the mass beyond ±reach must be negligible). */
export function massesOf(weight: (x: number) => number, reach: number): Float64Array {
  const masses = new Float64Array(2 * reach + 1);
  let total = 0;
  for (let x = -reach; x <= reach; x += 1) total += masses[x + reach] = weight(x);
  for (let i = 0; i < masses.length; i += 1) masses[i] = (masses[i] ?? 0) / total;
  return masses;
}

/**
 * Bins chosen from the pmf under test, before any draw is seen: consecutive integers merged from
 * the left until each bin expects at least minExpected of n draws; the tails pooled into the
 * first and last bins, the last merged into its neighbour if it would expect fewer.
 */
export function binsFor(masses: Float64Array, n: number, minExpected: number): Bins {
  const reach = (masses.length - 1) / 2;
  const uppers: number[] = [];
  let open = 0;
  for (let i = 0; i < masses.length; i += 1) {
    open += masses[i] ?? 0;
    if (open * n >= minExpected) {
      uppers.push(i - reach);
      open = 0;
    }
  }
  if (open * n < minExpected) uppers.pop();
  uppers.push(Infinity);
  return { uppers };
}

/** The probability of each bin under masses over −reach … reach. */
export function binProbabilities(masses: Float64Array, bins: Bins): number[] {
  const reach = (masses.length - 1) / 2;
  const probs = bins.uppers.map(() => 0);
  let bin = 0;
  for (let i = 0; i < masses.length; i += 1) {
    while (i - reach > (bins.uppers[bin] ?? Infinity)) bin += 1;
    probs[bin] = (probs[bin] ?? 0) + (masses[i] ?? 0);
  }
  return probs;
}

/** The index of the bin holding x, by bisection on the upper edges. */
function binOf(bins: Bins, x: number): number {
  let lo = 0;
  let hi = bins.uppers.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= (bins.uppers[mid] ?? Infinity)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Pearson's statistic Σ (observed − expected)²/expected of the draws against the bin probabilities. */
export function chiSquareStatistic(draws: ArrayLike<number>, bins: Bins, probs: readonly number[]): number {
  const counts = bins.uppers.map(() => 0);
  for (let i = 0; i < draws.length; i += 1) {
    const bin = binOf(bins, draws[i] ?? 0);
    counts[bin] = (counts[bin] ?? 0) + 1;
  }
  let statistic = 0;
  for (let bin = 0; bin < counts.length; bin += 1) {
    const expected = draws.length * (probs[bin] ?? 0);
    statistic += ((counts[bin] ?? 0) - expected) ** 2 / expected;
  }
  return statistic;
}

/**
 * The noncentrality λ = n Σ (p_true − p_test)²/p_test of the statistic when the draws follow
 * p_true but are tested against p_test: the statistic is then about χ²_dof(λ), of mean dof + λ
 * and variance 2(dof + 2λ).
 */
export function noncentrality(n: number, trueProbs: readonly number[], testProbs: readonly number[]): number {
  return n * testProbs.reduce((sum, p, i) => sum + ((trueProbs[i] ?? 0) - p) ** 2 / p, 0);
}

/** A 2-of-3 vote, stopping as soon as it is decided: the run it needs are evaluated in order. */
export function majority(run: (index: number) => boolean): boolean {
  let yes = 0;
  let no = 0;
  for (let i = 0; i < 3 && yes < 2 && no < 2; i += 1) {
    if (run(i)) yes += 1;
    else no += 1;
  }
  return yes >= 2;
}
