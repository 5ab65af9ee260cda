import { fromBase64Url, isEd25519PublicKey, isX25519PublicKey } from '../crypto/index.js';
import { MalusError, type Issue } from '../errors/index.js';
import { partyIdFor } from './party-id.js';

/** What a party shows the world: its id, its name and its two public keys (raw 32 bytes, base64url). */
export interface PublicIdentity {
  readonly format: 'malus.identity/v1';
  readonly id: string;
  readonly name: string;
  readonly signingKey: string;
  readonly encryptionKey: string;
}

/** Decodes a base64url Ed25519 public key, or explains why it is not one. */
export function decodeSigningKey(text: string): { key: Uint8Array } | { problem: string } {
  const key = fromBase64Url(text);
  if (key === undefined) return { problem: 'expected unpadded base64url' };
  if (key.length !== 32) return { problem: `expected 32 bytes, got ${key.length}` };
  if (!isEd25519PublicKey(key)) return { problem: 'not a valid Ed25519 public key' };
  return { key };
}

/** Decodes a base64url X25519 public key, or explains why it is not one. */
export function decodeEncryptionKey(text: string): { key: Uint8Array } | { problem: string } {
  const key = fromBase64Url(text);
  if (key === undefined) return { problem: 'expected unpadded base64url' };
  if (key.length !== 32) return { problem: `expected 32 bytes, got ${key.length}` };
  if (!isX25519PublicKey(key)) return { problem: 'not a usable X25519 public key (small order)' };
  return { key };
}

/** Checks the keys and that the id derives from the signing key; returns every problem found. */
export function checkPublicIdentity(identity: Omit<PublicIdentity, 'format'>, path = ''): Issue[] {
  const at = (field: string): string => (path === '' ? field : `${path}.${field}`);
  const issues: Issue[] = [];
  const signing = decodeSigningKey(identity.signingKey);
  if ('problem' in signing) {
    issues.push({ path: at('signingKey'), message: signing.problem });
  } else if (partyIdFor(signing.key) !== identity.id) {
    issues.push({ path: at('id'), message: `does not match signingKey (expected ${partyIdFor(signing.key)})` });
  }
  const encryption = decodeEncryptionKey(identity.encryptionKey);
  if ('problem' in encryption) issues.push({ path: at('encryptionKey'), message: encryption.problem });
  return issues;
}

export function assertPublicIdentity(identity: Omit<PublicIdentity, 'format'>): void {
  const issues = checkPublicIdentity(identity);
  if (issues.length > 0) throw new MalusError('invalid-input', 'public identity is invalid', { issues });
}
