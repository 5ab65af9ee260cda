import { randomBytes } from 'node:crypto';
import { invert, mod } from '@noble/curves/abstract/modular.js';

// GF(p) for Shamir sharing, p = 2^256 + 297: the least prime above 2^256, so every 32-byte secret
// is a field element as it stands (no reduction, no lost bits). Elements travel as 33 bytes,
// big-endian. BigInt arithmetic is not constant-time; docs/secagg.md says what that means here.

export const FIELD_PRIME = (1n << 256n) + 297n;
export const ELEMENT_BYTES = 33;

export function add(a: bigint, b: bigint): bigint {
  return mod(a + b, FIELD_PRIME);
}

export function sub(a: bigint, b: bigint): bigint {
  return mod(a - b, FIELD_PRIME);
}

export function mul(a: bigint, b: bigint): bigint {
  return mod(a * b, FIELD_PRIME);
}

export function inv(a: bigint): bigint {
  return invert(a, FIELD_PRIME);
}

/** A uniform element by rejection from 257 random bits (about one draw in two is kept). */
export function randomElement(): bigint {
  for (;;) {
    const bytes = randomBytes(ELEMENT_BYTES);
    bytes[0] = (bytes[0] ?? 0) & 0x01;
    const value = bytesToBigInt(bytes);
    if (value < FIELD_PRIME) return value;
  }
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** Big-endian, exactly `size` bytes; throws if the value does not fit. */
export function bigIntToBytes(value: bigint, size: number): Uint8Array {
  if (value < 0n || value >> BigInt(8 * size) !== 0n) throw new RangeError(`value does not fit in ${size} bytes`);
  const out = new Uint8Array(size);
  let rest = value;
  for (let i = size - 1; i >= 0; i -= 1) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

/** Decodes a 33-byte element; undefined unless it is canonical (below p). */
export function decodeElement(bytes: Uint8Array): bigint | undefined {
  if (bytes.length !== ELEMENT_BYTES) return undefined;
  const value = bytesToBigInt(bytes);
  return value < FIELD_PRIME ? value : undefined;
}

export function encodeElement(value: bigint): Uint8Array {
  return bigIntToBytes(value, ELEMENT_BYTES);
}
