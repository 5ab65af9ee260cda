import { randomBytes } from 'node:crypto';

// Uniform integers from the operating system's CSPRNG (node:crypto), by rejection: no modulo bias.

export type RandomBytes = (size: number) => Uint8Array;

/** A source of random bytes: node:crypto by default; tests may pass another. */
export const cryptoBytes: RandomBytes = (size) => randomBytes(size);

/** A uniform integer in [0, n), n ≥ 1. */
export function uniformBelow(n: bigint, bytes: RandomBytes = cryptoBytes): bigint {
  if (n <= 1n) return 0n;
  const bits = (n - 1n).toString(2).length;
  const size = Math.ceil(bits / 8);
  const excess = BigInt(size * 8 - bits);
  for (;;) {
    let value = 0n;
    for (const byte of bytes(size)) value = (value << 8n) | BigInt(byte);
    value >>= excess;
    if (value < n) return value;
  }
}
