export { addCosts, approximateDecimal, costOfNumbers, describeCost, equalCosts, remainingBudget, subtractCosts, withinBudget, type PrivacyCost } from './cost.js';
export { laplaceHalfWidth, gaussianHalfWidth, noiseHalfWidth } from './intervals.js';
export { costOfGaussian, costOfLaplace, epsilonFromRho, gaussianSigmaFor, isqrt, laplaceScaleFor, rhoFromEpsilon, zcdpToApproxDp, zcdpToApproxDpTight } from './conversions.js';
export { REFUNDABLE_FAILURES, budgetPeriod, budgetsOf, isRefundable, type BudgetPeriod, type BudgetSettings, type Budgets, type RefreshPolicy } from './budget.js';
export { cryptoBytes, uniformBelow, type RandomBytes } from './random.js';
export { div, formatRational, mul, parseRational, rational, rationalOfNumber, unitsAsDecimal, type Rational } from './rational.js';
export { bernoulli, bernoulliExp, discreteGaussian, discreteLaplace } from './samplers.js';
