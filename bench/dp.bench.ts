// Differential-privacy sampler benchmarks (`npm run bench:dp`): discrete Laplace and discrete
// Gaussian samples per second at scales 1, 100 and 10,000, each next to the rate of
// crypto.randomBytes for the same number of 64-bit draws, measured in the same run.
//
// BENCH_SAMPLES changes how many samples each figure takes (default 50,000).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { discreteGaussian, discreteLaplace, rational } from '../src/dp/index.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 50_000);

function rate(fn: () => unknown, count: number): number {
  const started = performance.now();
  for (let i = 0; i < count; i += 1) fn();
  return count / ((performance.now() - started) / 1000);
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en');

// Warm up the JIT on every path first.
for (let i = 0; i < 2000; i += 1) {
  discreteLaplace(rational(3n));
  discreteGaussian(rational(3n));
  randomBytes(8);
}
const baseline = rate(() => randomBytes(8), SAMPLES);
console.log(`crypto.randomBytes(8): ${fmt(baseline)} draws/s (the baseline)\n`);
console.log('mechanism  scale     samples/s   ratio to 64-bit draws');
for (const [name, sampler] of [
  ['laplace', discreteLaplace],
  ['gaussian', discreteGaussian],
] as const) {
  for (const scale of [1n, 100n, 10_000n]) {
    const perSecond = rate(() => sampler(rational(scale)), SAMPLES);
    console.log(`${name.padEnd(10)} ${String(scale).padEnd(8)}  ${fmt(perSecond).padStart(10)}   ${(perSecond / baseline).toFixed(4)}x`);
  }
}
