// A Bloom filter (the other compressed form OpenMined PSI offers). For a per-lookup false-positive
// rate of 2^-k it takes k hash functions and n * k / ln 2 bits, about 1.44 k bits per member
// against the Golomb-coded set's k + 1.6, so it is larger; it is here for peers that want it.
// The k bit positions come from SHA-512 blocks over the element, 48 bits each, so they are
// independent: double hashing (h1 + i h2) would cap the rate near n / m^2, far above 2^-40.
import { MalusError } from '../errors/index.js';

export interface Bloom {
  /** Members inserted. */
  readonly count: number;
  /** Hash functions (bit positions per member). */
  readonly hashes: number;
  /** The filter; its length in bits, a multiple of 8, is the filter size m. */
  readonly bits: Uint8Array;
}

export const MAX_BLOOM_HASHES = 64;
export const MAX_BLOOM_BITS = 2 ** 32;

const TAG = new TextEncoder().encode('MALUS-PSI-V1-bloom');
const WORDS_PER_BLOCK = 10; // 10 x 48 bits of each 64-byte block

/** The filter size and hash count for `count` members and a per-lookup rate of 2^-perLookupBits. */
export function bloomShape(count: number, perLookupBits: number): { hashes: number; bitCount: number } {
  if (!Number.isInteger(perLookupBits) || perLookupBits < 1 || perLookupBits > MAX_BLOOM_HASHES) {
    throw new MalusError('invalid-input', `a Bloom filter takes 1 to ${MAX_BLOOM_HASHES} hash functions (not ${perLookupBits})`);
  }
  const bitCount = Math.max(8, Math.ceil((count * perLookupBits) / Math.LN2 / 8) * 8);
  if (bitCount > MAX_BLOOM_BITS) throw new MalusError('invalid-input', `a Bloom filter for ${count} members at 2^-${perLookupBits} would exceed 2^32 bits`);
  return { hashes: perLookupBits, bitCount };
}

/** (1 - e^(-k n / m))^k: the chance that one element outside the filter is reported as a member. */
export function bloomFalsePositiveRate(bloom: Pick<Bloom, 'count' | 'hashes' | 'bits'>): number {
  return (-Math.expm1((-bloom.hashes * bloom.count) / (bloom.bits.length * 8))) ** bloom.hashes;
}

function positions(sha512: (m: Uint8Array) => Uint8Array, element: Uint8Array, hashes: number, bitCount: number): number[] {
  const input = new Uint8Array(TAG.length + 1 + element.length);
  input.set(TAG);
  input.set(element, TAG.length + 1);
  const out: number[] = [];
  for (let block = 0; out.length < hashes; block++) {
    input[TAG.length] = block;
    const digest = sha512(input);
    for (let w = 0; w < WORDS_PER_BLOCK && out.length < hashes; w++) {
      let word = 0;
      for (let b = 0; b < 6; b++) word = word * 256 + (digest[w * 6 + b] ?? 0);
      // floor(word / 2^48 * m): below m for m <= 2^32, and the same IEEE arithmetic on both sides.
      out.push(Math.min(bitCount - 1, Math.floor((word / 2 ** 48) * bitCount)));
    }
  }
  return out;
}

export function bloomBuild(sha512: (m: Uint8Array) => Uint8Array, elements: readonly Uint8Array[], perLookupBits: number): Bloom {
  const { hashes, bitCount } = bloomShape(elements.length, perLookupBits);
  const bits = new Uint8Array(bitCount / 8);
  for (const element of elements) {
    for (const p of positions(sha512, element, hashes, bitCount)) bits[p >>> 3] = (bits[p >>> 3] ?? 0) | (1 << (p & 7));
  }
  return { count: elements.length, hashes, bits };
}

export function bloomHas(sha512: (m: Uint8Array) => Uint8Array, bloom: Bloom, element: Uint8Array): boolean {
  const bitCount = bloom.bits.length * 8;
  return positions(sha512, element, bloom.hashes, bitCount).every((p) => (((bloom.bits[p >>> 3] ?? 0) >>> (p & 7)) & 1) === 1);
}
