import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { fromBase64Url, toBase64Url } from '../crypto/index.js';

// X25519 with the private key held as a node:crypto KeyObject for the whole run: a party runs one
// Diffie-Hellman per other party per key, and rebuilding the key object each time (as the general
// helper in src/crypto does) costs six times the exchange itself.

export interface DhKeyPair {
  readonly publicKey: Uint8Array;
  /** The raw 32-byte scalar: what Shamir sharing splits. */
  readonly secretKey: Uint8Array;
  readonly handle: KeyObject;
}

function raw(value: string | undefined): Uint8Array {
  const bytes = value === undefined ? undefined : fromBase64Url(value);
  if (bytes?.length !== 32) throw new Error('node:crypto exported an unexpected X25519 JWK');
  return bytes;
}

export function generateDhKeyPair(): DhKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: raw(jwk.x), secretKey: raw(jwk.d), handle: privateKey };
}

/** A key object for a reconstructed scalar; the caller has checked it matches `publicKey`. */
export function dhHandle(secretKey: Uint8Array, publicKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: toBase64Url(secretKey), x: toBase64Url(publicKey) }, format: 'jwk' });
}

/** X25519(handle, peer); throws for a malformed peer key or a small-order one (all-zero output). */
export function dhShared(handle: KeyObject, peerPublicKey: Uint8Array): Uint8Array {
  if (peerPublicKey.length !== 32) throw new RangeError('an X25519 public key is 32 bytes');
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: toBase64Url(peerPublicKey) }, format: 'jwk' });
  const shared = new Uint8Array(diffieHellman({ privateKey: handle, publicKey }));
  if (shared.every((b) => b === 0)) throw new RangeError('X25519 gave the all-zero secret (a small-order key)');
  return shared;
}
