import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { fromBase64Url, toBase64Url } from './encoding.js';

// Secrets at rest under a passphrase: scrypt (RFC 7914) derives an AES-256-GCM key.
// N = 2^17, r = 8, p = 1 follows current OWASP guidance (128 MiB, a fraction of a second).

export interface PassphraseSealed {
  readonly kdf: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: string;
  readonly cipher: 'aes-256-gcm';
  readonly iv: string;
  /** base64url of ciphertext followed by the 16-byte tag. */
  readonly ciphertext: string;
}

const DEFAULT_PARAMS = { N: 2 ** 17, r: 8, p: 1 } as const;
const MAX_N = 2 ** 20;

function deriveKey(passphrase: string, salt: Uint8Array, N: number, r: number, p: number): Buffer {
  return scryptSync(passphrase.normalize('NFKC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
}

export function sealWithPassphrase(plaintext: Uint8Array, passphrase: string, aad: Uint8Array): PassphraseSealed {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const { N, r, p } = DEFAULT_PARAMS;
  const key = deriveKey(passphrase, salt, N, r, p);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  key.fill(0);
  return {
    kdf: 'scrypt',
    N,
    r,
    p,
    salt: toBase64Url(salt),
    cipher: 'aes-256-gcm',
    iv: toBase64Url(iv),
    ciphertext: toBase64Url(body),
  };
}

/** Returns the plaintext, or undefined when the passphrase (or the sealed data, or the AAD) is wrong. */
export function openWithPassphrase(
  sealed: PassphraseSealed,
  passphrase: string,
  aad: Uint8Array,
): Uint8Array | undefined {
  const salt = fromBase64Url(sealed.salt);
  const iv = fromBase64Url(sealed.iv);
  const body = fromBase64Url(sealed.ciphertext);
  if (salt === undefined || iv?.length !== 12 || body === undefined || body.length < 16) return undefined;
  // Refuse parameters that would let a hostile file exhaust memory.
  if (!Number.isInteger(Math.log2(sealed.N)) || sealed.N < 2 ** 14 || sealed.N > MAX_N) return undefined;
  if (!Number.isInteger(sealed.r) || sealed.r < 1 || sealed.r > 16) return undefined;
  if (!Number.isInteger(sealed.p) || sealed.p < 1 || sealed.p > 4) return undefined;
  const key = deriveKey(passphrase, salt, sealed.N, sealed.r, sealed.p);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(body.subarray(body.length - 16));
    const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    return new Uint8Array(plain);
  } catch {
    return undefined;
  } finally {
    key.fill(0);
  }
}
