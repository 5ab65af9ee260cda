import { randomBytes } from 'node:crypto';
import { fromBase64Url, toBase64Url } from '../crypto/index.js';
import type { ChallengeRecord, Store } from '../store/index.js';

// Challenges make evidence fresh: random, single use, and short-lived. An enclave binds one into
// its evidence; the service consumes it when the evidence arrives, so a recorded release request
// cannot be replayed.

export const CHALLENGE_TTL_SECONDS = 60;
export const CHALLENGE_BYTES = 32;
export type ChallengePurpose = 'release' | 'registration';

export async function issueChallenge(store: Pick<Store, 'keys'>, purpose: ChallengePurpose, now: Date): Promise<ChallengeRecord> {
  const record: ChallengeRecord = {
    challenge: toBase64Url(randomBytes(CHALLENGE_BYTES)),
    purpose,
    issuedAt: now,
    expiresAt: new Date(now.getTime() + CHALLENGE_TTL_SECONDS * 1000),
  };
  await store.keys.issueChallenge(record);
  return record;
}

/** Consumes a challenge: its bytes and issue time, or undefined when unknown, used, expired or malformed. */
export async function consumeChallenge(
  store: Pick<Store, 'keys'>,
  challenge: string,
  purpose: ChallengePurpose,
  now: Date,
): Promise<{ bytes: Uint8Array; issuedAt: Date } | undefined> {
  const bytes = fromBase64Url(challenge);
  if (bytes?.length !== CHALLENGE_BYTES) return undefined;
  const record = await store.keys.consumeChallenge(challenge, purpose, now);
  return record === undefined ? undefined : { bytes, issuedAt: record.issuedAt };
}
