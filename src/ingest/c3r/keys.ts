// Key material, as C3R derives it from the collaboration's shared secret and its id.
//   salt          = the collaboration id, as UTF-8 text of the canonical lower-case UUID
//   root key      = HKDF-SHA256(secret, salt, "c3r-encryption-primary-aes-gcm-256", 32 bytes)
//   cell key      = SHA-256(root key || row nonce)          (one AES-256-GCM key per row)
//   IV            = first 12 bytes of SHA-256(column label || row nonce)
//   HMAC key      = HKDF-SHA256(secret, salt, "c3r-hmac-sha256-col-" + column label, 32 bytes)
// With allowJoinsOnColumnsWithDifferentNames, C3R derives the HMAC key with the root key's info
// string instead of a per-column one, so it equals the root key (that is C3R's choice, kept here).
import { hash, hkdfSync } from 'node:crypto';
import { MalusError } from '../../errors/index.js';

export const C3R_ROOT_KEY_INFO = 'c3r-encryption-primary-aes-gcm-256';
export const C3R_COLUMN_HMAC_INFO_PREFIX = 'c3r-hmac-sha256-col-';
/** C3R's minimum shared secret length (KeyUtil.SHARED_SECRET_KEY_BYTE_LENGTH); C3R accepts longer ones. */
export const C3R_SECRET_MIN_BYTES = 32;
export const C3R_NONCE_BYTES = 32;
export const C3R_IV_BYTES = 12;

const KEY_BYTES = 32;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** The secret and salt of one collaboration, and the root key derived from them. */
export interface C3rKeys {
  readonly secret: Buffer;
  /** The collaboration id as C3R writes it (lower-case UUID), UTF-8. */
  readonly salt: Buffer;
  readonly rootKey: Buffer;
}

/**
 * Decodes the shared secret (standard base64, as C3R reads C3R_SHARED_SECRET). The value itself
 * never appears in a message; `source` names where it came from.
 */
export function parseC3rSharedSecret(base64: string | undefined, source = 'the shared secret'): Buffer {
  if (base64 === undefined || base64 === '') throw new MalusError('invalid-input', `${source} is not set (base64 of at least ${C3R_SECRET_MIN_BYTES} random bytes)`);
  const text = base64.trim();
  if (!BASE64_PATTERN.test(text)) throw new MalusError('invalid-input', `${source} is not valid base64`);
  const secret = Buffer.from(text, 'base64');
  if (secret.length < C3R_SECRET_MIN_BYTES) {
    throw new MalusError('invalid-input', `${source} decodes to ${secret.length} bytes; C3R needs at least ${C3R_SECRET_MIN_BYTES}`);
  }
  return secret;
}

/**
 * The collaboration id as C3R uses it for the salt. C3R parses --id as a UUID and uses its
 * canonical text, which is lower-case; so an upper-case id gives the same keys.
 */
export function normalizeCollaborationId(id: string): string {
  const canonical = id.trim().toLowerCase();
  if (!UUID_PATTERN.test(canonical)) {
    throw new MalusError('invalid-input', `collaboration id \`${id}\` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)`);
  }
  return canonical;
}

function hkdf(secret: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, Buffer.from(info, 'utf8'), KEY_BYTES));
}

export function deriveC3rKeys(secret: Uint8Array, collaborationId: string): C3rKeys {
  if (secret.length < C3R_SECRET_MIN_BYTES) {
    throw new MalusError('invalid-input', `the shared secret is ${secret.length} bytes; C3R needs at least ${C3R_SECRET_MIN_BYTES}`);
  }
  const secretBytes = Buffer.from(secret);
  const salt = Buffer.from(normalizeCollaborationId(collaborationId), 'utf8');
  return { secret: secretBytes, salt, rootKey: hkdf(secretBytes, salt, C3R_ROOT_KEY_INFO) };
}

// SHA-256 of two parts, in one call (these run for every row and every cell).
function sha256(first: Uint8Array, second: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([first, second]), 'buffer');
}

/** The AES-256-GCM key of every sealed cell in a row. */
export function deriveCellKey(rootKey: Buffer, nonce: Uint8Array): Buffer {
  return sha256(rootKey, nonce);
}

// Per column label, a reusable buffer holding the label followed by room for a nonce.
const ivInputs = new Map<string, Buffer>();

/** The GCM IV of one cell. C3R stores it in the cell, so decryption reads it rather than deriving it. */
export function deriveCellIv(columnLabel: string, nonce: Uint8Array): Buffer {
  if (nonce.length !== C3R_NONCE_BYTES) return sha256(Buffer.from(columnLabel, 'utf8'), nonce).subarray(0, C3R_IV_BYTES);
  let input = ivInputs.get(columnLabel);
  if (input === undefined) {
    const label = Buffer.from(columnLabel, 'utf8');
    input = Buffer.alloc(label.length + C3R_NONCE_BYTES);
    label.copy(input);
    if (ivInputs.size < 4096) ivInputs.set(columnLabel, input);
  }
  input.set(nonce, input.length - C3R_NONCE_BYTES);
  return hash('sha256', input, 'buffer').subarray(0, C3R_IV_BYTES);
}

/** The HMAC-SHA256 key of a fingerprint column. */
export function deriveFingerprintKey(keys: C3rKeys, columnLabel: string, allowJoinsOnColumnsWithDifferentNames: boolean): Buffer {
  return allowJoinsOnColumnsWithDifferentNames
    ? hkdf(keys.secret, keys.salt, C3R_ROOT_KEY_INFO)
    : hkdf(keys.secret, keys.salt, C3R_COLUMN_HMAC_INFO_PREFIX + columnLabel);
}
