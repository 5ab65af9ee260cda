// expand_message_xmd, RFC 9380 §5.3.1, for a 64-byte hash with a 128-byte block (SHA-512).
// The hash is a parameter so the tests can run the same code over libsodium's and noble's SHA-512.
import { MalusError } from '../errors/index.js';

export type Sha512 = (message: Uint8Array) => Uint8Array;

const B_IN_BYTES = 64;
const S_IN_BYTES = 128;

/** DST_prime = DST || I2OSP(len(DST), 1). RFC 9380 §3.1: a tag is 1 to 255 bytes. */
export function dstPrime(dst: Uint8Array): Uint8Array {
  if (dst.length === 0 || dst.length > 255) {
    throw new MalusError('invalid-input', `a hash-to-group domain separation tag must be 1 to 255 bytes (it is ${dst.length})`);
  }
  const out = new Uint8Array(dst.length + 1);
  out.set(dst);
  out[dst.length] = dst.length;
  return out;
}

/** uniform_bytes of `length` bytes from `message` under the tag whose DST_prime is given. */
export function expandMessageXmd(sha512: Sha512, message: Uint8Array, tagPrime: Uint8Array, length: number): Uint8Array {
  const ell = Math.ceil(length / B_IN_BYTES);
  if (!Number.isInteger(length) || length < 1 || ell > 255 || length > 65535) {
    throw new MalusError('invalid-input', `expand_message_xmd cannot produce ${length} bytes with SHA-512`);
  }
  // msg_prime = Z_pad || msg || I2OSP(len_in_bytes, 2) || I2OSP(0, 1) || DST_prime
  const first = new Uint8Array(S_IN_BYTES + message.length + 3 + tagPrime.length);
  first.set(message, S_IN_BYTES);
  let at = S_IN_BYTES + message.length;
  first[at++] = length >>> 8;
  first[at++] = length & 0xff;
  first[at++] = 0;
  first.set(tagPrime, at);
  const b0 = sha512(first);

  const out = new Uint8Array(ell * B_IN_BYTES);
  // b_i = H(strxor(b_0, b_(i-1)) || I2OSP(i, 1) || DST_prime), with b_0 standing in for strxor(b_0, b_0 ^ b_0) at i = 1.
  const block = new Uint8Array(B_IN_BYTES + 1 + tagPrime.length);
  block.set(tagPrime, B_IN_BYTES + 1);
  let previous: Uint8Array = new Uint8Array(B_IN_BYTES);
  for (let i = 1; i <= ell; i++) {
    for (let j = 0; j < B_IN_BYTES; j++) block[j] = (b0[j] ?? 0) ^ (previous[j] ?? 0);
    block[B_IN_BYTES] = i;
    previous = sha512(block);
    out.set(previous, (i - 1) * B_IN_BYTES);
  }
  return out.length === length ? out : out.slice(0, length);
}
