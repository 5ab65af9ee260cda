export {
  equalBytes,
  fromBase64,
  fromBase64Url,
  fromHex,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
} from './encoding.js';
export { sha256 } from './hash.js';
export {
  encryptionPublicKey,
  generateEncryptionKeyPair,
  generateSigningKeyPair,
  isEd25519PublicKey,
  isX25519PublicKey,
  signEd25519,
  signingPublicKey,
  verifyEd25519,
  x25519SharedSecret,
  type KeyPair,
} from './keys.js';
export { openWithPassphrase, sealWithPassphrase, type PassphraseSealed } from './passphrase.js';
export { hpkeOpen, hpkeSeal, type HpkeSealed } from './hpke.js';
