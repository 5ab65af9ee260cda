import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { bloomBuild, bloomFalsePositiveRate, bloomHas, bloomShape } from '../../src/psi/bloom.js';
import { gcsBuild, gcsFalsePositiveRate, gcsHas, gcsValues } from '../../src/psi/gcs.js';
import { psiGroup, type PsiGroup } from '../../src/psi/group.js';

// False-positive rates on large random sets, checked against the stated rate with bounds six
// standard deviations wide (a spurious failure about once in 10^9 runs).

const digest = (): bigint => BigInt(`0x${randomBytes(16).toString('hex')}`);
const digests = (n: number): bigint[] => Array.from({ length: n }, digest);
const within = (observed: number, trials: number, rate: number): void => {
  const mean = trials * rate;
  const sd = Math.sqrt(trials * rate * (1 - rate));
  expect(observed).toBeGreaterThanOrEqual(mean - 6 * sd);
  expect(observed).toBeLessThanOrEqual(mean + 6 * sd);
};

let group: PsiGroup;
beforeAll(async () => {
  group = await psiGroup();
});

describe('Golomb-coded set', () => {
  it('finds every member, and reads back the sorted values', () => {
    const members = digests(5000);
    const gcs = gcsBuild(members, 20);
    expect(gcsHas(gcs, members).every(Boolean)).toBe(true);
    const values = [...gcsValues(gcs)];
    expect(values).toHaveLength(5000);
    expect(values.every((v, i) => i === 0 || v >= (values[i - 1] ?? 0n))).toBe(true);
  });

  it('costs about k + 1.6 bits per member', () => {
    for (const k of [8, 20, 40, 64]) {
      const gcs = gcsBuild(digests(20_000), k);
      const perMember = (gcs.bits.length * 8) / 20_000;
      expect(perMember).toBeGreaterThan(k + 1.4);
      expect(perMember).toBeLessThan(k + 1.8);
    }
  });

  it('keeps false positives at the stated rate (2^-8 on 20,000 members, 200,000 lookups)', () => {
    const gcs = gcsBuild(digests(20_000), 8);
    const rate = gcsFalsePositiveRate(20_000, 8);
    // 1 - (1 - 1/N)^n = 1 - e^(-2^-8), just under 2^-8.
    expect(rate).toBeLessThan(2 ** -8);
    expect(rate).toBeGreaterThan(2 ** -8 * 0.99);
    const hits = gcsHas(gcs, digests(200_000)).filter(Boolean).length;
    within(hits, 200_000, rate);
  });

  it('keeps false positives at the stated rate (2^-10 on 2,000 members, 200,000 lookups)', () => {
    const gcs = gcsBuild(digests(2000), 10);
    const hits = gcsHas(gcs, digests(200_000)).filter(Boolean).length;
    within(hits, 200_000, gcsFalsePositiveRate(2000, 10));
  });

  it('handles the empty set and repeated members', () => {
    const empty = gcsBuild([], 30);
    expect(empty.bits.length).toBe(0);
    expect(gcsHas(empty, digests(10))).toEqual(new Array(10).fill(false));
    const d = digest();
    const twice = gcsBuild([d, d], 10);
    expect(gcsHas(twice, [d])).toEqual([true]);
  });

  it('refuses a set whose coding is cut, padded with ones, followed by bytes or out of range', () => {
    const gcs = gcsBuild(digests(100), 16);
    expect(() => gcsHas({ ...gcs, bits: gcs.bits.slice(0, -3) }, [1n])).toThrow(/ends inside a code/);
    expect(() => gcsHas({ ...gcs, bits: Uint8Array.of(...gcs.bits, 0) }, [1n])).toThrow(/bytes after the last code/);
    expect(() => gcsHas({ ...gcs, count: 99 }, [1n])).toThrow(/malformed/);
    const ones = gcsBuild([0n], 8); // one code: "0" then eight zero bits, padded with seven zeros
    expect(() => gcsHas({ ...ones, bits: Uint8Array.of(0x00, 0x01) }, [1n])).toThrow(/padding/);
    expect(() => gcsHas({ count: 1, riceBits: 8, bits: Uint8Array.of(0xff, 0x00, 0x00) }, [1n])).toThrow(/outside the range/);
    expect(() => gcsBuild([], 0)).toThrow(/remainder bits/);
    expect(() => gcsBuild([], 65)).toThrow(/remainder bits/);
  });
});

describe('Bloom filter', () => {
  const elements = (n: number): Uint8Array[] => Array.from({ length: n }, () => new Uint8Array(randomBytes(32)));

  it('finds every member', () => {
    const members = elements(2000);
    const bloom = bloomBuild(group.sha512, members, 20);
    expect(members.every((m) => bloomHas(group.sha512, bloom, m))).toBe(true);
  });

  it('takes k hashes and n k / ln 2 bits', () => {
    expect(bloomShape(10_000, 8)).toEqual({ hashes: 8, bitCount: Math.ceil((10_000 * 8) / Math.LN2 / 8) * 8 });
    expect(bloomShape(0, 30).bitCount).toBe(8);
    expect(() => bloomShape(10, 0)).toThrow();
    expect(() => bloomShape(10, 65)).toThrow();
    expect(() => bloomShape(100_000_000, 64)).toThrow(/2\^32 bits/);
  });

  it('keeps false positives at the stated rate (2^-8 on 10,000 members, 100,000 lookups)', () => {
    const bloom = bloomBuild(group.sha512, elements(10_000), 8);
    const rate = bloomFalsePositiveRate(bloom);
    expect(rate).toBeGreaterThan(2 ** -8 * 0.95);
    expect(rate).toBeLessThan(2 ** -8 * 1.05);
    const hits = elements(100_000).filter((e) => bloomHas(group.sha512, bloom, e)).length;
    within(hits, 100_000, rate);
  });
});
