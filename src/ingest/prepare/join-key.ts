import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { fromBase64 } from '../../crypto/index.js';
import { MalusError } from '../../errors/index.js';

// The join key: HMAC-SHA256 key under which every provider pseudonymizes identity and join
// columns, so equal identifiers stay equal across tables while the operator, who never holds the
// providers' shared secret, cannot test a guess (docs/dataset-preparation.md).

export const JOIN_SECRET_BYTES = 32;
const SALT = 'malus.join-key/v1';

export function parseJoinSecret(text: string, source: string): Uint8Array {
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(text.trim()) ? fromBase64(text.trim()) : undefined;
  if (bytes?.length !== JOIN_SECRET_BYTES) {
    throw new MalusError('invalid-input', `${source} must hold the base64 of exactly ${JOIN_SECRET_BYTES} bytes`);
  }
  return bytes;
}

/** HKDF-SHA256(secret, salt "malus.join-key/v1", info = collaboration id): one key per collaboration. */
export function deriveJoinKey(secret: Uint8Array, collaborationId: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, SALT, collaborationId, 32));
}

/** What the agreement records (`joinKey.commitment`) so a provider holding another secret is stopped. */
export function joinKeyCommitment(joinKey: Uint8Array, collaborationId: string): string {
  const tag = createHmac('sha256', joinKey).update(`malus.join-key-commitment/v1\0${collaborationId}`).digest();
  return `sha256:${createHash('sha256').update(tag).digest('hex')}`;
}

/** The pseudonym of one normalized value: lower-case hex of HMAC-SHA256(join key, UTF-8 value). */
export function pseudonym(joinKey: Uint8Array, value: string): string {
  return createHmac('sha256', joinKey).update(value, 'utf8').digest('hex');
}

/**
 * The same HMAC as a DuckDB expression over a VARCHAR (RFC 2104, built from DuckDB's sha256), so
 * a million rows are pseudonymized inside the engine, in parallel, without crossing into JavaScript.
 */
export function pseudonymSql(joinKey: Uint8Array, x: string): string {
  const block = Buffer.alloc(64);
  Buffer.from(joinKey).copy(block);
  const pad = (byte: number): string => Buffer.from(block.map((b) => b ^ byte)).toString('hex');
  return `sha256(unhex('${pad(0x5c)}') || unhex(sha256(unhex('${pad(0x36)}') || encode(${x}))))`;
}
