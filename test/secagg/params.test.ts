import { describe, expect, it } from 'vitest';
import { checkRun, dequantize, quantize, recommendedThreshold } from '../../src/secagg/index.js';
import { ALLOWED, makeParams, makeParties } from './helpers.js';

// The parameters on their own: thresholds, headroom in 2^32, and the fixed-point quantization.

function issuesOf(fn: () => unknown): { code: string; paths: string[] } {
  try {
    fn();
  } catch (error) {
    const e = error as { code: string; issues: { path: string }[] };
    return { code: e.code, paths: e.issues.map((i) => i.path) };
  }
  throw new Error('expected a refusal');
}

describe('secure aggregation parameters', () => {
  const parties = makeParties(4);

  it('accepts 2 ≤ t ≤ n and refuses t < 2 or t > n', () => {
    expect(checkRun(makeParams(parties, { threshold: 2 }), ALLOWED).ids).toHaveLength(4);
    expect(checkRun(makeParams(parties, { threshold: 4 }), ALLOWED).bound).toBe(4 << 16);
    for (const threshold of [1, 5, 2.5]) expect(issuesOf(() => checkRun(makeParams(parties, { threshold }), ALLOWED))).toEqual({ code: 'invalid-input', paths: ['threshold'] });
    expect(recommendedThreshold(100)).toBe(51);
  });

  it('refuses parameters that leave no headroom for the sum of n values in 2^32', () => {
    // 4 parties · 2^29 = 2^31: one over the int32 range.
    expect(issuesOf(() => checkRun(makeParams(parties, { clip: 1, scale: 2 ** 29 }), { ...ALLOWED, scale: { min: 1, max: 2 ** 30 } }))).toEqual({ code: 'invalid-input', paths: ['clip'] });
    expect(checkRun(makeParams(parties, { clip: 1, scale: 2 ** 29 - 1 }), { ...ALLOWED, scale: { min: 1, max: 2 ** 30 } }).bound).toBe(2 ** 29 - 1);
  });

  it('refuses repeated parties, ids that do not derive from their keys, and bad numbers', () => {
    const params = makeParams(parties);
    const twice = { ...params, parties: [...params.parties, params.parties[0]!] };
    expect(issuesOf(() => checkRun(twice, ALLOWED)).paths).toEqual(['parties[4].id']);
    const swapped = { ...params, parties: params.parties.map((p, i) => (i === 0 ? { ...p, signingKey: params.parties[1]!.signingKey } : p)) };
    expect(issuesOf(() => checkRun(swapped, ALLOWED)).paths).toEqual(['parties[0].id']);
    const bad = { ...params, roundId: 'no spaces', vectorLength: 0, clip: Number.NaN, scale: -1 };
    expect(issuesOf(() => checkRun(bad, ALLOWED)).paths).toEqual(['roundId', 'vectorLength', 'clip', 'scale']);
  });
});

describe('quantization', () => {
  const q = { vectorLength: 5, clip: 2, scale: 10 };

  it('clips, scales and rounds, storing negatives in two\'s complement', () => {
    const words = quantize([0.14, -0.15, 3, -100, 1.96], q);
    expect([...new Int32Array(words.buffer)]).toEqual([1, -1, 20, -20, 20]);
    expect([...dequantize(words, 10)]).toEqual([0.1, -0.1, 2, -2, 2]);
  });

  it('refuses a wrong length and non-finite entries', () => {
    expect(() => quantize([1, 2], q)).toThrow(/expects 5/);
    expect(() => quantize([0, 0, Number.NaN, 0, 0], q)).toThrow(/entry 2/);
    expect(() => quantize([0, Number.POSITIVE_INFINITY, 0, 0, 0], q)).toThrow(/entry 1/);
  });
});
