import type { Agreement } from '../agreement/index.js';
import { sha256, signEd25519, toHex, utf8, verifyEd25519 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { decodeSigningKey, type PartyKeys } from '../identity/index.js';

// PSI messages carry no authentication of their own, so each one is signed end to end with the
// party's identity key, over the run, the step, its direction and the message's hash, and checked
// against the key the agreement holds for the other party. Neither the relay's operator nor anyone
// on the direct path can alter a message, or move one into another run or step, unnoticed.

const LABEL = 'malus.psi-message/v1';
export const SIGNATURE_BYTES = 64;

export type Direction = 'request' | 'answer';

function signedText(runId: string, step: number, direction: Direction, body: Uint8Array): Uint8Array {
  return utf8(`${LABEL}\n${runId}\n${step}\n${direction}\n${toHex(sha256(body))}`);
}

export function signPsiMessage(keys: PartyKeys, runId: string, step: number, direction: Direction, body: Uint8Array): Uint8Array {
  return signEd25519(keys.signingSecret, signedText(runId, step, direction, body));
}

export function verifiesPsiMessage(key: Uint8Array, signature: Uint8Array | undefined, runId: string, step: number, direction: Direction, body: Uint8Array): boolean {
  return signature !== undefined && signature.byteLength === SIGNATURE_BYTES && verifyEd25519(key, signedText(runId, step, direction, body), signature);
}

/** The signing key the agreement holds for a party. */
export function agreedSigningKey(agreement: Agreement, partyId: string): Uint8Array {
  const party = agreement.parties.find((p) => p.id === partyId);
  const decoded = party === undefined ? undefined : decodeSigningKey(party.signingKey);
  if (decoded === undefined || !('key' in decoded)) throw new MalusError('agreement-invalid', `the agreement holds no signing key for party ${partyId}`);
  return decoded.key;
}

/** The message with its signature in front, as the relay carries it. */
export function sealPsiMessage(keys: PartyKeys, runId: string, step: number, direction: Direction, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNATURE_BYTES + body.byteLength);
  out.set(signPsiMessage(keys, runId, step, direction, body));
  out.set(body, SIGNATURE_BYTES);
  return out;
}

/** The message without its signature, or MalusError('signature-invalid') when it is not the other party's. */
export function openPsiMessage(key: Uint8Array, runId: string, step: number, direction: Direction, data: Uint8Array): Uint8Array {
  const body = data.subarray(SIGNATURE_BYTES);
  if (data.byteLength < SIGNATURE_BYTES || !verifiesPsiMessage(key, data.subarray(0, SIGNATURE_BYTES), runId, step, direction, body)) {
    throw new MalusError('signature-invalid', `the ${direction} of step ${step} in run ${runId} is not signed by the party the agreement names`);
  }
  return body;
}

