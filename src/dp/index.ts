export { cryptoBytes, uniformBelow, type RandomBytes } from './random.js';
export { parseRational, rational, type Rational } from './rational.js';
export { bernoulli, bernoulliExp, discreteGaussian, discreteLaplace } from './samplers.js';
