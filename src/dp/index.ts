export { addCosts, withinBudget, type PrivacyCost } from './cost.js';
export { cryptoBytes, uniformBelow, type RandomBytes } from './random.js';
export { formatRational, parseRational, rational, rationalOfNumber, type Rational } from './rational.js';
export { bernoulli, bernoulliExp, discreteGaussian, discreteLaplace } from './samplers.js';
