import { signEd25519, verifyEd25519 } from '../crypto/index.js';
import { signingBytes } from './codec.js';
import { type PartyMessage, type RoundNumber, type SecAggMessage, type Unsigned } from './messages.js';
import type { Run } from './params.js';
import { refusal } from './reasons.js';

// The checks every received message goes through, on either side: the right run, a known sender,
// a signature that verifies, and the round the receiver is in (earlier: a replay; later: early).

export function signMessage<T extends PartyMessage>(unsigned: Unsigned<T>, identitySecretKey: Uint8Array): T {
  return { ...unsigned, signature: signEd25519(identitySecretKey, signingBytes(unsigned)) } as unknown as T;
}

export function checkRunOf(run: Run, m: SecAggMessage): void {
  // The version was checked when the message was decoded.
  if (m.collaboration !== run.params.collaboration || m.roundId !== run.params.roundId) {
    throw refusal('conflict', 'secagg-wrong-run', `the message belongs to collaboration ${m.collaboration}, round id ${m.roundId}, not this run`);
  }
}

/** The run, a sender that is a party of the run, and its signature. */
export function checkSigned(run: Run, m: PartyMessage): void {
  checkRunOf(run, m);
  const key = run.keyOf.get(m.sender);
  if (key === undefined) throw refusal('signature-not-party', 'secagg-unknown-party', `${m.sender} is not a party of this run`);
  if (!verifyEd25519(key, signingBytes(m), m.signature)) {
    throw refusal('signature-invalid', 'secagg-bad-signature', `the ${m.kind} message from ${m.sender} does not carry its valid signature`);
  }
}

/** Refuses a message for a round other than `expected`: a past round is a replay. */
export function checkRound(expected: RoundNumber, m: SecAggMessage): void {
  if (m.round < expected) throw refusal('conflict', 'secagg-stale-round', `a ${m.kind} message for round ${m.round} arrived in round ${expected}: refused as a replay`);
  if (m.round > expected) throw refusal('conflict', 'secagg-early', `a ${m.kind} message for round ${m.round} arrived in round ${expected}`);
}

/** Sorted, without repeats: the one form an id list may take on the wire. */
export function isCanonicalIdList(ids: readonly string[]): boolean {
  for (let i = 1; i < ids.length; i += 1) if ((ids[i - 1] ?? '') >= (ids[i] ?? '')) return false;
  return true;
}

export function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
