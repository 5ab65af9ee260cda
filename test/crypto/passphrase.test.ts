import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  fromBase64Url,
  openWithPassphrase,
  sealWithPassphrase,
  toBase64Url,
  utf8,
  type PassphraseSealed,
} from '../../src/crypto/index.js';

const PLAINTEXT = utf8('{"signingKey":"s","encryptionKey":"e"}');
const PASSPHRASE = 'correct horse battery staple';
const AAD = utf8('malus.key/v1\nparty\nname');

/**
 * Seals the way the documented format says (scrypt → AES-256-GCM, ciphertext then tag), with any
 * scrypt parameters: cheap parameters keep the tests fast, hostile ones test the limits.
 */
function sealManually(
  plaintext: Uint8Array,
  passphrase: string,
  aad: Uint8Array,
  params: { N: number; r: number; p: number },
): PassphraseSealed {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = scryptSync(passphrase.normalize('NFKC'), salt, 32, { ...params, maxmem: 512 * 1024 * 1024 });
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { kdf: 'scrypt', ...params, salt: toBase64Url(salt), cipher: 'aes-256-gcm', iv: toBase64Url(iv), ciphertext: toBase64Url(body) };
}

function withCiphertextBit(sealed: PassphraseSealed, index: number): PassphraseSealed {
  const body = fromBase64Url(sealed.ciphertext)!;
  body[index] = (body[index] ?? 0) ^ 0x01;
  return { ...sealed, ciphertext: toBase64Url(body) };
}

describe('sealWithPassphrase / openWithPassphrase (default parameters, N = 2^17)', () => {
  let sealed: PassphraseSealed;
  beforeAll(() => {
    sealed = sealWithPassphrase(PLAINTEXT, PASSPHRASE, AAD);
  });

  it('writes the documented format: scrypt N=2^17 r=8 p=1, 16-byte salt, 12-byte IV, ciphertext + 16-byte tag', () => {
    expect(sealed).toEqual({
      kdf: 'scrypt',
      N: 131072,
      r: 8,
      p: 1,
      salt: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      cipher: 'aes-256-gcm',
      iv: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
      ciphertext: expect.any(String),
    });
    expect(fromBase64Url(sealed.salt)).toHaveLength(16);
    expect(fromBase64Url(sealed.iv)).toHaveLength(12);
    expect(fromBase64Url(sealed.ciphertext)).toHaveLength(PLAINTEXT.length + 16);
  });

  it('does not contain the plaintext', () => {
    const body = Buffer.from(fromBase64Url(sealed.ciphertext)!);
    expect(body.includes(Buffer.from('signingKey'))).toBe(false);
  });

  it('round-trips with the right passphrase and AAD', () => {
    expect(openWithPassphrase(sealed, PASSPHRASE, AAD)).toEqual(PLAINTEXT);
  });

  it('is readable by an independent scrypt + AES-256-GCM implementation of the documented format', () => {
    const key = scryptSync(PASSPHRASE, fromBase64Url(sealed.salt)!, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 });
    const body = fromBase64Url(sealed.ciphertext)!;
    const decipher = createDecipheriv('aes-256-gcm', key, fromBase64Url(sealed.iv)!);
    decipher.setAAD(AAD);
    decipher.setAuthTag(body.subarray(body.length - 16));
    const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    expect(new Uint8Array(plain)).toEqual(PLAINTEXT);
  });

  it('returns undefined for a wrong passphrase', () => {
    expect(openWithPassphrase(sealed, `${PASSPHRASE}!`, AAD)).toBeUndefined();
  });

  it('returns undefined for a different AAD', () => {
    expect(openWithPassphrase(sealed, PASSPHRASE, utf8('malus.key/v1\nparty\nNAME'))).toBeUndefined();
  });

  it('returns undefined when a ciphertext byte is flipped', () => {
    expect(openWithPassphrase(withCiphertextBit(sealed, 0), PASSPHRASE, AAD)).toBeUndefined();
  });
});

describe('openWithPassphrase (cheap parameters, N = 2^14)', () => {
  const cheap = { N: 2 ** 14, r: 8, p: 1 };

  it('opens a file sealed with any allowed parameters', () => {
    expect(openWithPassphrase(sealManually(PLAINTEXT, PASSPHRASE, AAD, cheap), PASSPHRASE, AAD)).toEqual(PLAINTEXT);
    const edge = { N: 2 ** 14, r: 16, p: 4 };
    expect(openWithPassphrase(sealManually(PLAINTEXT, PASSPHRASE, AAD, edge), PASSPHRASE, AAD)).toEqual(PLAINTEXT);
  });

  it('normalizes the passphrase to NFKC (composed and decomposed é, the ﬁ ligature)', () => {
    const sealed = sealManually(PLAINTEXT, 'caf\u00e9 \ufb01ne', AAD, cheap);
    expect(openWithPassphrase(sealed, 'cafe\u0301 fine', AAD)).toEqual(PLAINTEXT);
  });

  it('detects a flipped tag byte and a truncated body', () => {
    const sealed = sealManually(PLAINTEXT, PASSPHRASE, AAD, cheap);
    const length = fromBase64Url(sealed.ciphertext)!.length;
    expect(openWithPassphrase(withCiphertextBit(sealed, length - 1), PASSPHRASE, AAD)).toBeUndefined();
    const truncated = toBase64Url(fromBase64Url(sealed.ciphertext)!.subarray(0, 15));
    expect(openWithPassphrase({ ...sealed, ciphertext: truncated }, PASSPHRASE, AAD)).toBeUndefined();
  });

  it('returns undefined for malformed salt, IV or ciphertext encodings', () => {
    const sealed = sealManually(PLAINTEXT, PASSPHRASE, AAD, cheap);
    expect(openWithPassphrase({ ...sealed, salt: `${sealed.salt}=` }, PASSPHRASE, AAD)).toBeUndefined();
    expect(openWithPassphrase({ ...sealed, iv: toBase64Url(new Uint8Array(16)) }, PASSPHRASE, AAD)).toBeUndefined();
    expect(openWithPassphrase({ ...sealed, ciphertext: `${sealed.ciphertext}!` }, PASSPHRASE, AAD)).toBeUndefined();
  });

  it.each([
    ['N below 2^14 (too weak)', { N: 2 ** 13, r: 8, p: 1 }],
    ['r above 16', { N: 2 ** 14, r: 17, p: 1 }],
    ['p above 4', { N: 2 ** 14, r: 8, p: 5 }],
  ])('refuses %s even with the right passphrase', (_label, params) => {
    const sealed = sealManually(PLAINTEXT, PASSPHRASE, AAD, params);
    expect(openWithPassphrase(sealed, PASSPHRASE, AAD)).toBeUndefined();
  });

  it.each([
    ['an absurd N (2^40, 1 TiB of memory)', { N: 2 ** 40 }],
    ['N not a power of two', { N: 3 * 2 ** 14 }],
    ['N = 0', { N: 0 }],
    ['N not a number', { N: Number.NaN }],
    ['r = 0', { r: 0 }],
    ['a fractional r', { r: 1.5 }],
    ['a fractional p', { p: 1.5 }],
    ['p = 0', { p: 0 }],
  ])('refuses %s with undefined, not an exception', (_label, params) => {
    const sealed = { ...sealManually(PLAINTEXT, PASSPHRASE, AAD, cheap), ...params };
    expect(openWithPassphrase(sealed, PASSPHRASE, AAD)).toBeUndefined();
  });
});
