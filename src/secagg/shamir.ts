import { equalBytes, sha256 } from '../crypto/index.js';
import { concatBytes, lp, text } from './bytes.js';
import { add, bigIntToBytes, bytesToBigInt, FIELD_PRIME, inv, mul, randomElement, sub } from './field.js';
import { refusal } from './reasons.js';

// Shamir secret sharing of 32-byte secrets over GF(2^256 + 297), threshold t: any t shares give
// the secret back, t - 1 shares say nothing about it. A reconstruction is checked against a hash
// commitment to the secret, so too few or wrong shares fail loudly instead of yielding a wrong key.

export const SECRET_BYTES = 32;
const COMMITMENT_LABEL = text('malus.secagg/v1 shamir commitment');

/** One share: the point (x, f(x)) of the sharing polynomial f, x ≥ 1. */
export interface Share {
  readonly x: number;
  readonly y: bigint;
}

export interface SplitSecret {
  readonly shares: readonly Share[];
  /** SHA-256 over a label, the caller's context and the secret: safe to publish for a random secret. */
  readonly commitment: Uint8Array;
}

export function commitToSecret(secret: Uint8Array, context: Uint8Array): Uint8Array {
  return sha256(concatBytes([COMMITMENT_LABEL, lp(context), lp(secret)]));
}

function checkThreshold(threshold: number): void {
  if (!Number.isInteger(threshold) || threshold < 2) throw new RangeError('a Shamir threshold is an integer of at least 2');
}

function checkXs(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 0x7fffffff) throw new RangeError('a share x-coordinate is an integer from 1 to 2^31 - 1');
    if (seen.has(x)) throw new RangeError(`share x-coordinate ${x} appears twice`);
    seen.add(x);
  }
}

/** Splits a 32-byte secret into one share per x in `xs`; any `threshold` of them reconstruct it. */
export function splitSecret(secret: Uint8Array, threshold: number, xs: readonly number[], context: Uint8Array): SplitSecret {
  if (secret.length !== SECRET_BYTES) throw new RangeError(`a shared secret is ${SECRET_BYTES} bytes`);
  checkThreshold(threshold);
  checkXs(xs);
  if (xs.length < threshold) throw new RangeError('fewer share holders than the threshold');
  // f(x) = secret + c1·x + … + c_{t-1}·x^{t-1}, every c_i uniform in the field.
  const coefficients = [bytesToBigInt(secret)];
  for (let i = 1; i < threshold; i += 1) coefficients.push(randomElement());
  const shares = xs.map((x) => {
    const point = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i -= 1) y = add(mul(y, point), coefficients[i] ?? 0n);
    return { x, y };
  });
  return { shares, commitment: commitToSecret(secret, context) };
}

/** f(0) from exactly the given points, by Lagrange interpolation. */
function interpolateAtZero(points: readonly Share[]): bigint {
  let secret = 0n;
  for (const [i, pi] of points.entries()) {
    let numerator = 1n;
    let denominator = 1n;
    for (const [j, pj] of points.entries()) {
      if (i === j) continue;
      numerator = mul(numerator, BigInt(pj.x));
      denominator = mul(denominator, sub(BigInt(pj.x), BigInt(pi.x)));
    }
    secret = add(secret, mul(pi.y, mul(numerator, inv(denominator))));
  }
  return secret;
}

/**
 * Reconstructs a secret from at least `threshold` shares (the first `threshold` are used) and
 * checks it against its commitment. Refuses fewer shares, repeated x-coordinates, and any result
 * that does not match (too few genuine shares, or a wrong one among them).
 */
export function combineShares(shares: readonly Share[], threshold: number, commitment: Uint8Array, context: Uint8Array): Uint8Array {
  checkThreshold(threshold);
  if (shares.length < threshold) {
    throw refusal('invalid-input', 'secagg-too-few-shares', `${shares.length} shares cannot reconstruct a secret shared with threshold ${threshold}`);
  }
  const points = shares.slice(0, threshold);
  checkXs(points.map((s) => s.x));
  for (const share of points) {
    if (share.y < 0n || share.y >= FIELD_PRIME) throw refusal('invalid-input', 'secagg-malformed', 'a share is not a field element');
  }
  const value = interpolateAtZero(points);
  const secret = value >> 256n === 0n ? bigIntToBytes(value, SECRET_BYTES) : undefined;
  if (secret === undefined || !equalBytes(commitToSecret(secret, context), commitment)) {
    throw refusal('invalid-input', 'secagg-bad-reconstruction', 'the shares do not reconstruct the committed secret (too few genuine shares, or a wrong one)');
  }
  return secret;
}
