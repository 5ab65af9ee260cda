import { sha512 } from '@noble/hashes/sha2.js';
import { equalBytes, sha256, toBase64 } from '../crypto/index.js';
import { MAX_DIGEST_FIELD_LENGTH } from './profile.js';
import { parseSfDictionary } from './sf.js';

// RFC 9530 Content-Digest. Only the two algorithms the registry marks active are checked; the
// deprecated ones (md5, sha, ...) count as unknown and are skipped.
const HASHES = new Map<string, (data: Uint8Array) => Uint8Array>([
  ['sha-256', sha256],
  ['sha-512', sha512],
]);

/** `sha-256=:<base64>:` for `body`, empty bodies included. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${toBase64(sha256(body))}:`;
}

/**
 * Checks a Content-Digest field against `body`. Undefined when it holds, else the reason. Every
 * sha-256 and sha-512 entry must match and at least one must be present; others are ignored.
 */
export function checkContentDigest(header: string | undefined, body: Uint8Array): string | undefined {
  if (header === undefined || header.trim() === '') return 'Content-Digest is missing';
  if (header.length > MAX_DIGEST_FIELD_LENGTH) return 'Content-Digest is too long';
  const entries = parseSfDictionary(header);
  if (entries === undefined) return 'Content-Digest is not a structured dictionary';
  let known = 0;
  for (const [algorithm, member] of entries) {
    const hash = HASHES.get(algorithm);
    if (hash === undefined) continue;
    known++;
    const value = member.kind === 'item' ? member.item.value : undefined;
    if (!(value instanceof ArrayBuffer)) return `Content-Digest ${algorithm} is not a byte sequence`;
    if (!equalBytes(new Uint8Array(value), hash(body))) return `Content-Digest ${algorithm} does not match the body`;
  }
  return known === 0 ? 'Content-Digest has no sha-256 or sha-512 entry' : undefined;
}
