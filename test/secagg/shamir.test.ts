import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { combineShares, commitToSecret, splitSecret, type Share } from '../../src/secagg/index.js';
import { refusal } from './helpers.js';

// Shamir sharing over GF(2^256 + 297): any t shares reconstruct, t - 1 never do (the commitment
// catches a wrong value), and a wrong share is caught the same way.

const context = new TextEncoder().encode('test context');
const xs = [1, 2, 3, 4, 5, 6, 7];

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = randomBytes(1)[0]! % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('Shamir secret sharing', () => {
  it('reconstructs from any t of n shares, the extreme secrets included', () => {
    for (const secret of [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(randomBytes(32))]) {
      const { shares, commitment } = splitSecret(secret, 4, xs, context);
      expect(commitment).toEqual(commitToSecret(secret, context));
      for (let trial = 0; trial < 10; trial += 1) {
        const subset = shuffled(shares).slice(0, 4 + (trial % 4));
        expect(combineShares(subset, 4, commitment, context)).toEqual(secret);
      }
    }
  });

  it('refuses t - 1 shares', () => {
    const secret = new Uint8Array(randomBytes(32));
    const { shares, commitment } = splitSecret(secret, 4, xs, context);
    expect(refusal(() => combineShares(shares.slice(0, 3), 4, commitment, context))).toMatchObject({ code: 'invalid-input', reason: 'secagg-too-few-shares' });
  });

  it('detects the wrong value t - 1 shares interpolate to, rather than returning it', () => {
    const secret = new Uint8Array(randomBytes(32));
    const { shares, commitment } = splitSecret(secret, 4, xs, context);
    for (let trial = 0; trial < 5; trial += 1) {
      const subset = shuffled(shares).slice(0, 3);
      // Claiming threshold 3 forces the interpolation of a degree-3 polynomial from 3 points.
      expect(refusal(() => combineShares(subset, 3, commitment, context))).toMatchObject({ reason: 'secagg-bad-reconstruction' });
    }
  });

  it('detects a wrong share and a commitment under another context', () => {
    const secret = new Uint8Array(randomBytes(32));
    const { shares, commitment } = splitSecret(secret, 3, xs, context);
    const bad: Share[] = shares.slice(0, 3).map((s, i) => (i === 1 ? { x: s.x, y: s.y ^ 1n } : s));
    expect(refusal(() => combineShares(bad, 3, commitment, context))).toMatchObject({ reason: 'secagg-bad-reconstruction' });
    expect(refusal(() => combineShares(shares, 3, commitment, new Uint8Array(1)))).toMatchObject({ reason: 'secagg-bad-reconstruction' });
  });

  it('draws fresh coefficients on every split', () => {
    // With t = 2 one share is the secret plus a uniform field element: the same secret and x
    // must give a different share every time.
    const secret = new Uint8Array(32);
    const ys = new Set(Array.from({ length: 20 }, () => splitSecret(secret, 2, [1, 2], context).shares[0]!.y));
    expect(ys.size).toBe(20);
  });

  it('refuses bad arguments', () => {
    const secret = new Uint8Array(32);
    expect(() => splitSecret(secret, 1, xs, context)).toThrow(RangeError);
    expect(() => splitSecret(secret, 8, xs, context)).toThrow(RangeError);
    expect(() => splitSecret(secret, 2, [1, 1, 2], context)).toThrow(RangeError);
    expect(() => splitSecret(secret, 2, [0, 1], context)).toThrow(RangeError);
    expect(() => splitSecret(new Uint8Array(31), 2, xs, context)).toThrow(RangeError);
    const { shares, commitment } = splitSecret(secret, 2, xs, context);
    expect(() => combineShares([shares[0]!, shares[0]!], 2, commitment, context)).toThrow(RangeError);
  });
});
