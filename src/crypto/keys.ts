import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { fromBase64Url, toBase64Url } from './encoding.js';

// Ed25519 (RFC 8032) for signatures, X25519 (RFC 7748) for key agreement. Keys travel as their raw
// 32 bytes; node:crypto does the arithmetic, @noble/curves only checks encodings node does not.

export interface KeyPair {
  readonly publicKey: Uint8Array;
  /** Ed25519: the 32-byte seed. X25519: the 32-byte scalar. */
  readonly secretKey: Uint8Array;
}

type Curve = 'Ed25519' | 'X25519';

function generate(curve: Curve): KeyPair {
  const { privateKey } = curve === 'Ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: decodeJwkField(jwk.x), secretKey: decodeJwkField(jwk.d) };
}

function decodeJwkField(value: string | undefined): Uint8Array {
  const bytes = value === undefined ? undefined : fromBase64Url(value);
  if (bytes?.length !== 32) throw new Error('node:crypto exported an unexpected JWK');
  return bytes;
}

// RFC 8410 PKCS #8 prefixes: the private key object is built from the 32-byte secret alone, so no
// public key has to be derived (in pure JavaScript) on every signature.
const PKCS8_PREFIX: Record<Curve, Buffer> = {
  Ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  X25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};

function privateKeyObject(curve: Curve, secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== 32) throw new RangeError(`${curve} secret key must be 32 bytes`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX[curve], secretKey]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(curve: Curve, publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new RangeError(`${curve} public key must be 32 bytes`);
  return createPublicKey({ key: { kty: 'OKP', crv: curve, x: toBase64Url(publicKey) }, format: 'jwk' });
}

function publicKeyFromSecret(curve: Curve, secretKey: Uint8Array): Uint8Array {
  return curve === 'Ed25519' ? ed25519.getPublicKey(secretKey) : x25519.getPublicKey(secretKey);
}

export function generateSigningKeyPair(): KeyPair {
  return generate('Ed25519');
}

export function generateEncryptionKeyPair(): KeyPair {
  return generate('X25519');
}

export function signingPublicKey(secretKey: Uint8Array): Uint8Array {
  return publicKeyFromSecret('Ed25519', secretKey);
}

export function encryptionPublicKey(secretKey: Uint8Array): Uint8Array {
  return publicKeyFromSecret('X25519', secretKey);
}

export function signEd25519(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return new Uint8Array(nodeSign(null, message, privateKeyObject('Ed25519', secretKey)));
}

/** Strict RFC 8032 verification; false for any malformed input rather than an exception. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64 || !isEd25519PublicKey(publicKey)) return false;
  try {
    return nodeVerify(null, message, publicKeyObject('Ed25519', publicKey), signature);
  } catch {
    return false;
  }
}

/** X25519 shared secret; throws on an all-zero result (a small-order peer key). */
export function x25519SharedSecret(secretKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  const shared = diffieHellman({
    privateKey: privateKeyObject('X25519', secretKey),
    publicKey: publicKeyObject('X25519', peerPublicKey),
  });
  return new Uint8Array(shared);
}

/** A valid Ed25519 public key: 32 bytes that decode to a point that is not of small order. */
export function isEd25519PublicKey(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  try {
    const point = ed25519.Point.fromBytes(bytes);
    return !point.isSmallOrder();
  } catch {
    return false;
  }
}

/** A usable X25519 public key: 32 bytes that are not one of the small-order u-coordinates. */
export function isX25519PublicKey(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  try {
    // A Diffie-Hellman with a throwaway key fails for keys whose shared secret would be all zeros.
    const probe = generate('X25519');
    const shared = x25519SharedSecret(probe.secretKey, bytes);
    return shared.some((b) => b !== 0);
  } catch {
    return false;
  }
}
