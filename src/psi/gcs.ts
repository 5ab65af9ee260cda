// A Golomb-coded set (Putze, Sanders and Singler 2007; as OpenMined PSI sends the server set): n
// 128-bit digests are mapped onto [0, n * 2^k), sorted, and their gaps Rice-coded with parameter k
// (the quotient in unary, the remainder in k bits). A digest outside the set lands on a member with
// probability about 2^-k, and the set costs about k + 1.6 bits per member.
import { MalusError } from '../errors/index.js';

export interface Gcs {
  /** Members coded (a digest collision still counts twice). */
  readonly count: number;
  /** The Rice parameter k: the range is count * 2^k and a lookup errs with probability about 2^-k. */
  readonly riceBits: number;
  readonly bits: Uint8Array;
}

export const MAX_RICE_BITS = 64;

/** The value a 128-bit digest takes in the set's range: floor(digest * range / 2^128), which is uniform on the range. */
export function gcsValue(count: number, riceBits: number, digest: bigint): bigint {
  return (digest * (BigInt(count) << BigInt(riceBits))) >> 128n;
}

/** The chance that one digest outside the set is reported as a member: 1 - (1 - 1/range)^count. */
export function gcsFalsePositiveRate(count: number, riceBits: number): number {
  return -Math.expm1(count * Math.log1p(-(2 ** -riceBits) / Math.max(count, 1)));
}

function checkRiceBits(riceBits: number): void {
  if (!Number.isInteger(riceBits) || riceBits < 1 || riceBits > MAX_RICE_BITS) {
    throw new MalusError('invalid-input', `a Golomb-coded set takes 1 to ${MAX_RICE_BITS} remainder bits (not ${riceBits})`);
  }
}

const compare = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/** Codes the 128-bit digests of the members. */
export function gcsBuild(digests: readonly bigint[], riceBits: number): Gcs {
  checkRiceBits(riceBits);
  const count = digests.length;
  const values = digests.map((d) => gcsValue(count, riceBits, d)).sort(compare);
  const mask = (1n << BigInt(riceBits)) - 1n;
  // The expected size is count * (k + 1.58) bits; grow when a run of large gaps needs more.
  let out = new Uint8Array(Math.ceil((count * (riceBits + 2)) / 8) + 16);
  let bitLength = 0;
  const pushBit = (bit: number): void => {
    if (bitLength >>> 3 >= out.length) {
      const grown = new Uint8Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    if (bit !== 0) out[bitLength >>> 3] = (out[bitLength >>> 3] ?? 0) | (0x80 >>> (bitLength & 7));
    bitLength++;
  };
  let previous = 0n;
  for (const value of values) {
    const gap = value - previous;
    previous = value;
    for (let q = gap >> BigInt(riceBits); q > 0n; q--) pushBit(1);
    pushBit(0);
    // The remainder as two 32-bit halves, so the bit loop runs on numbers, not BigInts.
    const remainder = gap & mask;
    const high = Number(remainder >> 32n);
    const low = Number(remainder & 0xffffffffn);
    for (let b = riceBits - 1; b >= 0; b--) pushBit(b >= 32 ? (high >>> (b - 32)) & 1 : (low >>> b) & 1);
  }
  return { count, riceBits, bits: out.slice(0, Math.ceil(bitLength / 8)) };
}

function malformed(detail: string): MalusError {
  return new MalusError('invalid-input', `the sender's Golomb-coded set is malformed: ${detail}`, {
    issues: [{ path: 'reply.senderSet.bits', message: detail }],
  });
}

/** Reads the members back in ascending order; throws unless the coding is exact (count codes, zero padding, values in range). */
export function* gcsValues(gcs: Gcs): Generator<bigint, void, undefined> {
  checkRiceBits(gcs.riceBits);
  const { bits, count, riceBits } = gcs;
  const totalBits = bits.length * 8;
  const range = BigInt(count) << BigInt(riceBits);
  let at = 0;
  const readBit = (): number => {
    if (at >= totalBits) throw malformed('it ends inside a code');
    const bit = ((bits[at >>> 3] ?? 0) >>> (7 - (at & 7))) & 1;
    at++;
    return bit;
  };
  let value = 0n;
  for (let i = 0; i < count; i++) {
    let quotient = 0;
    while (readBit() === 1) quotient++;
    let high = 0;
    for (let b = 32; b < riceBits; b++) high = ((high << 1) | readBit()) >>> 0;
    let low = 0;
    for (let b = 0; b < Math.min(riceBits, 32); b++) low = ((low << 1) | readBit()) >>> 0;
    value += (BigInt(quotient) << BigInt(riceBits)) | (BigInt(high) << 32n) | BigInt(low);
    if (value >= range) throw malformed(`member ${i} is outside the range`);
    yield value;
  }
  if (totalBits - at >= 8) throw malformed('it has bytes after the last code');
  while (at < totalBits) if (readBit() !== 0) throw malformed('its padding is not zero');
}

/** For each query digest, whether it is (probably) a member. Reads the whole set, so a malformed one always throws. */
export function gcsHas(gcs: Gcs, digests: readonly bigint[]): boolean[] {
  const queries = digests.map((d) => gcsValue(gcs.count, gcs.riceBits, d));
  const order = queries.map((_, i) => i).sort((a, b) => compare(queries[a] ?? 0n, queries[b] ?? 0n));
  const found = new Array<boolean>(queries.length).fill(false);
  const members = gcsValues(gcs);
  let current = members.next();
  for (const i of order) {
    const query = queries[i] ?? 0n;
    while (current.done !== true && current.value < query) current = members.next();
    if (current.done === true) break;
    found[i] = current.value === query;
  }
  while (current.done !== true) current = members.next();
  return found;
}
