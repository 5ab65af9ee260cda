import { describe, expect, it } from 'vitest';
import {
  encryptionPublicKey,
  fromHex,
  generateEncryptionKeyPair,
  generateSigningKeyPair,
  isEd25519PublicKey,
  isX25519PublicKey,
  signEd25519,
  signingPublicKey,
  toHex,
  utf8,
  verifyEd25519,
  x25519SharedSecret,
} from '../../src/crypto/index.js';

const hex = (text: string): Uint8Array => {
  const bytes = fromHex(text);
  if (bytes === undefined) throw new Error(`bad hex in test: ${text}`);
  return bytes;
};

/** Little-endian 32-byte encoding of an integer, as both curves encode field elements. */
const le32 = (value: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return out;
};

const flip = (bytes: Uint8Array, index: number, mask = 0x01): Uint8Array => {
  const copy = new Uint8Array(bytes);
  copy[index] = (copy[index] ?? 0) ^ mask;
  return copy;
};

const P = 2n ** 255n - 19n;
/** The order of the Ed25519 base point (RFC 8032 §5.1, "L"). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

// RFC 8032 §7.1, Ed25519 TEST 1 (empty message) and TEST 2 (one byte, 0x72).
const TEST1 = {
  secretKey: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  message: '',
  signature:
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
};
const TEST2 = {
  secretKey: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
  publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
  message: '72',
  signature:
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
};

// RFC 7748 §6.1, the X25519 Diffie-Hellman example.
const ALICE_SECRET = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const ALICE_PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const BOB_SECRET = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
const BOB_PUBLIC = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

describe('Ed25519 (RFC 8032 §7.1)', () => {
  it.each([
    ['TEST 1', TEST1],
    ['TEST 2', TEST2],
  ])('%s: derives the public key, reproduces the signature and verifies it', (_name, v) => {
    const secret = hex(v.secretKey);
    const message = hex(v.message);
    expect(toHex(signingPublicKey(secret))).toBe(v.publicKey);
    expect(toHex(signEd25519(secret, message))).toBe(v.signature);
    expect(verifyEd25519(hex(v.publicKey), message, hex(v.signature))).toBe(true);
    expect(isEd25519PublicKey(hex(v.publicKey))).toBe(true);
  });

  it('is false for a flipped bit anywhere in the signature (R half and S half)', () => {
    const signature = hex(TEST2.signature);
    for (const index of [0, 17, 31, 32, 50, 62]) {
      expect(verifyEd25519(hex(TEST2.publicKey), hex(TEST2.message), flip(signature, index))).toBe(false);
    }
  });

  it('is false for a different message', () => {
    expect(verifyEd25519(hex(TEST2.publicKey), hex('73'), hex(TEST2.signature))).toBe(false);
    expect(verifyEd25519(hex(TEST1.publicKey), hex('00'), hex(TEST1.signature))).toBe(false);
  });

  it('is false under the wrong public key', () => {
    expect(verifyEd25519(hex(TEST1.publicKey), hex(TEST2.message), hex(TEST2.signature))).toBe(false);
    expect(verifyEd25519(hex(TEST2.publicKey), hex(TEST1.message), hex(TEST1.signature))).toBe(false);
  });

  it('is false, not an exception, for wrong lengths', () => {
    const pub = hex(TEST2.publicKey);
    const msg = hex(TEST2.message);
    const sig = hex(TEST2.signature);
    expect(verifyEd25519(pub, msg, sig.subarray(0, 63))).toBe(false);
    expect(verifyEd25519(pub, msg, Uint8Array.of(...sig, 0))).toBe(false);
    expect(verifyEd25519(pub, msg, new Uint8Array())).toBe(false);
    expect(verifyEd25519(pub.subarray(0, 31), msg, sig)).toBe(false);
    expect(verifyEd25519(Uint8Array.of(...pub, 0), msg, sig)).toBe(false);
  });

  it('refuses a malleated signature whose S is not reduced (S + L)', () => {
    const signature = hex(TEST1.signature);
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i] ?? 0);
    expect(s < L).toBe(true);
    const malleated = Uint8Array.of(...signature.subarray(0, 32), ...le32(s + L));
    expect(verifyEd25519(hex(TEST1.publicKey), hex(TEST1.message), malleated)).toBe(false);
  });

  it('refuses the small-order key forgery (A = R = identity, S = 0 "verifies" any message without the check)', () => {
    const identity = le32(1n);
    const forged = Uint8Array.of(...identity, ...new Uint8Array(32));
    expect(verifyEd25519(identity, utf8('pay mallory'), forged)).toBe(false);
  });

  it('signs and verifies with a freshly generated key pair', () => {
    const pair = generateSigningKeyPair();
    const other = generateSigningKeyPair();
    expect(pair.publicKey).toHaveLength(32);
    expect(pair.secretKey).toHaveLength(32);
    expect(signingPublicKey(pair.secretKey)).toEqual(pair.publicKey);
    expect(toHex(pair.publicKey)).not.toBe(toHex(other.publicKey));
    const message = utf8('malus');
    const signature = signEd25519(pair.secretKey, message);
    expect(signature).toHaveLength(64);
    expect(verifyEd25519(pair.publicKey, message, signature)).toBe(true);
    expect(verifyEd25519(other.publicKey, message, signature)).toBe(false);
  });

  it('refuses a secret key that is not 32 bytes', () => {
    expect(() => signEd25519(new Uint8Array(31), utf8('x'))).toThrow(new RangeError('Ed25519 secret key must be 32 bytes'));
    expect(() => signEd25519(new Uint8Array(64), utf8('x'))).toThrow(new RangeError('Ed25519 secret key must be 32 bytes'));
  });
});

describe('isEd25519PublicKey', () => {
  it('accepts generated keys', () => {
    expect(isEd25519PublicKey(generateSigningKeyPair().publicKey)).toBe(true);
  });

  it.each([
    ['the identity point (order 1), 0100…00', le32(1n)],
    ['the point (0, -1) of order 2', le32(P - 1n)],
    ['a point of order 8', hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')],
    ['the identity with the x sign bit set (x = 0 cannot be negative)', Uint8Array.of(1, ...new Uint8Array(30), 0x80)],
    ['a non-canonical y (y = p + 1, another spelling of the identity)', le32(P + 1n)],
    ['y = 2, which is not on the curve', le32(2n)],
    ['31 bytes', hex(TEST1.publicKey).subarray(0, 31)],
    ['33 bytes', Uint8Array.of(...hex(TEST1.publicKey), 0)],
    ['no bytes', new Uint8Array()],
  ])('is false for %s', (_label, bytes) => {
    expect(isEd25519PublicKey(bytes)).toBe(false);
  });
});

describe('X25519 (RFC 7748)', () => {
  it('§6.1: both public keys and the shared secret, in both directions', () => {
    expect(toHex(encryptionPublicKey(hex(ALICE_SECRET)))).toBe(ALICE_PUBLIC);
    expect(toHex(encryptionPublicKey(hex(BOB_SECRET)))).toBe(BOB_PUBLIC);
    expect(toHex(x25519SharedSecret(hex(ALICE_SECRET), hex(BOB_PUBLIC)))).toBe(SHARED);
    expect(toHex(x25519SharedSecret(hex(BOB_SECRET), hex(ALICE_PUBLIC)))).toBe(SHARED);
    expect(isX25519PublicKey(hex(ALICE_PUBLIC))).toBe(true);
    expect(isX25519PublicKey(hex(BOB_PUBLIC))).toBe(true);
  });

  it('§5.2: the first single-multiplication vector', () => {
    const scalar = hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
    const u = hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c');
    expect(toHex(x25519SharedSecret(scalar, u))).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  });

  it('agrees on a secret between two generated key pairs', () => {
    const a = generateEncryptionKeyPair();
    const b = generateEncryptionKeyPair();
    expect(encryptionPublicKey(a.secretKey)).toEqual(a.publicKey);
    const ab = x25519SharedSecret(a.secretKey, b.publicKey);
    expect(ab).toHaveLength(32);
    expect(ab).toEqual(x25519SharedSecret(b.secretKey, a.publicKey));
    expect(isX25519PublicKey(a.publicKey)).toBe(true);
  });

  it('throws rather than return the all-zero secret for a small-order peer key', () => {
    expect(() => x25519SharedSecret(hex(ALICE_SECRET), new Uint8Array(32))).toThrow(/failed during derivation/);
    expect(() => x25519SharedSecret(hex(ALICE_SECRET), le32(1n))).toThrow(/failed during derivation/);
  });

  it('refuses keys that are not 32 bytes', () => {
    expect(() => x25519SharedSecret(hex(ALICE_SECRET), hex(BOB_PUBLIC).subarray(1))).toThrow(
      new RangeError('X25519 public key must be 32 bytes'),
    );
    expect(() => x25519SharedSecret(hex(ALICE_SECRET).subarray(1), hex(BOB_PUBLIC))).toThrow(
      new RangeError('X25519 secret key must be 32 bytes'),
    );
  });
});

describe('isX25519PublicKey', () => {
  it.each([
    ['all zeros (u = 0)', new Uint8Array(32)],
    ['u = 1', le32(1n)],
    ['a point of order 8', hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')],
    ['the other point of order 8', hex('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157')],
    ['u = p - 1 (order 2)', le32(P - 1n)],
    ['u = p (non-canonical zero)', le32(P)],
    ['u = p + 1 (non-canonical one)', le32(P + 1n)],
    ['31 bytes', hex(ALICE_PUBLIC).subarray(0, 31)],
    ['33 bytes', Uint8Array.of(...hex(ALICE_PUBLIC), 0)],
  ])('is false for %s', (_label, bytes) => {
    expect(isX25519PublicKey(bytes)).toBe(false);
  });
});
