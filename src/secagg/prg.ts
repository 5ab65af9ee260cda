import { createCipheriv } from 'node:crypto';
import { endianness } from 'node:os';

// The mask generator: the ChaCha20 keystream (RFC 8439, through node:crypto's OpenSSL) under a
// 32-byte key, read as little-endian uint32 words. Every key is derived for one stream only (one
// pair or one self-mask seed, in one run), so the nonce and the initial counter are fixed at zero.

const ZERO_IV = new Uint8Array(16); // OpenSSL's chacha20 IV: 4-byte counter, then the 12-byte nonce
const LITTLE_ENDIAN = endianness() === 'LE';
let zeros = new Uint8Array(0);

function zeroBytes(size: number): Uint8Array {
  if (zeros.length < size) zeros = new Uint8Array(size);
  return zeros.subarray(0, size);
}

/** The first `length` words of the keystream under `key`. */
export function maskWords(key: Uint8Array, length: number): Uint32Array {
  if (key.length !== 32) throw new RangeError('a mask key is 32 bytes');
  const stream = createCipheriv('chacha20', key, ZERO_IV).update(zeroBytes(4 * length));
  if (LITTLE_ENDIAN && stream.byteOffset % 4 === 0) return new Uint32Array(stream.buffer, stream.byteOffset, length);
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i += 1) out[i] = view.getUint32(4 * i, true);
  return out;
}

/** target += sign · mask(key), word by word mod 2^32 (the Uint32Array store reduces). */
export function applyMask(target: Uint32Array, key: Uint8Array, sign: 1 | -1): void {
  const mask = maskWords(key, target.length);
  if (sign === 1) for (let i = 0; i < target.length; i += 1) target[i] = (target[i] ?? 0) + (mask[i] ?? 0);
  else for (let i = 0; i < target.length; i += 1) target[i] = (target[i] ?? 0) - (mask[i] ?? 0);
}

/** Words as little-endian bytes (the wire form of a masked vector). */
export function wordsToBytes(words: Uint32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
  const out = new Uint8Array(4 * words.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < words.length; i += 1) view.setUint32(4 * i, words[i] ?? 0, true);
  return out;
}

export function bytesToWords(bytes: Uint8Array): Uint32Array {
  if (bytes.length % 4 !== 0) throw new RangeError('a word vector is a multiple of 4 bytes');
  if (LITTLE_ENDIAN) return new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i += 1) out[i] = view.getUint32(4 * i, true);
  return out;
}
