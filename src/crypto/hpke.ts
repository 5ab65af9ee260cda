import type { webcrypto } from 'node:crypto';
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';

// HPKE (RFC 9180) in base mode, one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
// Keys are the raw 32-byte X25519 keys Malus uses everywhere else. `info` names the protocol step
// (so a ciphertext sealed for one purpose cannot be opened as another) and `aad` binds the context
// (the collaboration, the dataset, the job).

export interface HpkeSealed {
  /** The encapsulated ephemeral public key (32 bytes). */
  readonly enc: Uint8Array;
  readonly ciphertext: Uint8Array;
}

type Aead = 'aes-256-gcm' | 'aes-128-gcm';

const suites = new Map<Aead, CipherSuite>();

/** The suite; AES-128-GCM exists only so that tests can replay the RFC 9180 A.1 vectors. */
export function hpkeSuite(aead: Aead = 'aes-256-gcm'): CipherSuite {
  let suite = suites.get(aead);
  if (suite === undefined) {
    suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: aead === 'aes-256-gcm' ? new Aes256Gcm() : new Aes128Gcm() });
    suites.set(aead, suite);
  }
  return suite;
}

const view = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

export async function hpkeSeal(recipientPublicKey: Uint8Array, plaintext: Uint8Array, info: string, aad: Uint8Array): Promise<HpkeSealed> {
  if (recipientPublicKey.length !== 32) throw new RangeError('HPKE recipient public key must be 32 bytes');
  const suite = hpkeSuite();
  // @hpke/core types its keys with the DOM's CryptoKey, which Node's types name webcrypto.CryptoKey.
  const key = (await suite.kem.deserializePublicKey(view(recipientPublicKey))) as unknown as webcrypto.CryptoKey;
  const sealed = await suite.seal({ recipientPublicKey: key, info: new TextEncoder().encode(info) }, view(plaintext), view(aad));
  return { enc: new Uint8Array(sealed.enc), ciphertext: new Uint8Array(sealed.ct) };
}

/** Opens a sealed message; undefined when anything (key, enc, ciphertext, info, aad) is wrong. */
export async function hpkeOpen(
  recipientSecretKey: Uint8Array,
  sealed: HpkeSealed,
  info: string,
  aad: Uint8Array,
  aead: Aead = 'aes-256-gcm',
): Promise<Uint8Array | undefined> {
  if (recipientSecretKey.length !== 32 || sealed.enc.length !== 32) return undefined;
  const suite = hpkeSuite(aead);
  try {
    const key = (await suite.kem.deserializePrivateKey(view(recipientSecretKey))) as unknown as webcrypto.CryptoKey;
    const opened = await suite.open({ recipientKey: key, enc: view(sealed.enc), info: new TextEncoder().encode(info) }, view(sealed.ciphertext), view(aad));
    return new Uint8Array(opened);
  } catch {
    return undefined;
  }
}
