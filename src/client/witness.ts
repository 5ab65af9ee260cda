import { equalBytes, fromBase64 } from '../crypto/index.js';
import {
  cosignatureLine,
  openCheckpoint,
  verifyConsistency,
  witnessName,
  type Checkpoint,
  type NoteVerifier,
} from '../ledger/index.js';
import type { PartyKeys } from '../identity/index.js';
import type { MalusClient } from './client.js';
import { getCheckpoint, getConsistencyProof, postCosignature } from './log.js';
import { MalusError } from '../errors/index.js';

// A party witnessing the log: take the newest checkpoint, prove it extends the last one this
// witness cosigned (or find a fork), and only then cosign it (C2SP tlog-cosignature/v1).

export type WitnessOutcome =
  | { ok: true; checkpoint: Checkpoint; note: string; witness: string; added: boolean }
  | { ok: false; reason: string; seen: string; shown: string };

export interface WitnessParameters {
  readonly keys: PartyKeys;
  readonly log: NoteVerifier;
  /** The signed note of the last checkpoint this witness cosigned, if any. */
  readonly lastCosigned?: string;
  /** Unix seconds for the cosignature timestamp. */
  readonly now: number;
}

export async function witnessLog(client: MalusClient, parameters: WitnessParameters): Promise<WitnessOutcome> {
  const { log } = parameters;
  const note = await getCheckpoint(client);
  const opened = openCheckpoint(note, log, log.name);
  if (!opened.ok) throw new MalusError('signature-invalid', `the server's checkpoint does not verify: ${opened.reason}`);
  const current = opened.checkpoint;
  const seen = parameters.lastCosigned;
  if (seen !== undefined) {
    const before = openCheckpoint(seen, log, log.name);
    if (!before.ok) throw new MalusError('invalid-input', `the last cosigned checkpoint does not verify: ${before.reason}`);
    const old = before.checkpoint;
    const fork = (reason: string): WitnessOutcome => ({ ok: false, reason, seen, shown: note });
    if (current.size < old.size) return fork(`the log shrank from ${old.size} to ${current.size}`);
    if (current.size === old.size && !equalBytes(current.root, old.root)) return fork(`two different roots for size ${old.size}`);
    if (current.size > old.size && old.size > 0) {
      const { proof } = await getConsistencyProof(client, old.size, current.size);
      const hashes = proof.map((p) => fromBase64(p) ?? new Uint8Array());
      const consistent = verifyConsistency({ size1: old.size, size2: current.size, root1: old.root, root2: current.root, proof: hashes });
      if (!consistent.ok) return fork(`no valid consistency proof from ${old.size} to ${current.size} (${consistent.reason})`);
    }
  }
  const name = witnessName(parameters.keys.identity.id);
  const line = cosignatureLine(opened.note.text, name, parameters.keys.signingSecret, parameters.now);
  const result = await postCosignature(client, current.size, line);
  return { ok: true, checkpoint: current, note, witness: name, added: result.added };
}
