import { sha256, toHex } from '../crypto/index.js';

/**
 * A party id is self-certifying: the first 10 bytes (80 bits) of SHA-256 over the raw Ed25519
 * public key, as 20 lower-case hex characters. Nobody can claim another party's id without its key.
 */
export function partyIdFor(signingKey: Uint8Array): string {
  return toHex(sha256(signingKey).subarray(0, 10));
}

export const PARTY_ID_PATTERN = /^[0-9a-f]{20}$/;
