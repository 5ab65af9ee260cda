import { z } from 'zod';
import { fromBase64, toBase64 } from '../crypto/index.js';
import { openCheckpoint, type Checkpoint } from './checkpoint.js';
import { decodeEvent, type LogEvent } from './entries.js';
import { leafHash, verifyInclusion } from './merkle.js';
import { NO_KNOWN_SIGNER, verifyNote, type NoteVerifier } from './note.js';

// A receipt (`malus.receipt/v1`) proves, offline, that an entry is in the log: the entry's bytes,
// its index, a checkpoint signed by the log (and cosigned by witnesses) that includes it, and the
// inclusion proof. Verification is a pipeline of named steps over trust material given by the
// caller: the log key and, optionally, witness keys and how many of them must have cosigned.

export const RECEIPT_FORMAT = 'malus.receipt/v1';

const b64url = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9_-]*$/, 'expected base64url without padding');
const key32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes as base64url');

/**
 * The worker's registration evidence a job receipt carries, as the server received it. Only its
 * shape is checked here; src/engine's verifyJobReceipt verifies and appraises it.
 */
export const receiptEnclaveSchema = z.strictObject({
  platform: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  /** Evidence documents are at most 64 KiB; base64url makes that 87,382 characters. */
  evidence: b64url(90_000).min(1),
  certificates: z.array(b64url(16_384).min(1)).max(8),
  encryptionKey: key32,
  challenge: key32,
});

export const receiptSchema = z.strictObject({
  format: z.literal(RECEIPT_FORMAT),
  /** The entry exactly as logged: RFC 8785 canonical JSON text. */
  entry: z.string().max(65535),
  index: z.number().int().min(0),
  /** The signed checkpoint note, with the cosignatures the log held when the receipt was made. */
  checkpoint: z.string().max(1024 * 1024),
  /** Base64 hashes, leaf to root. */
  inclusionProof: z.array(z.string()).max(64),
  // A job receipt (docs/log.md) adds what proves the result. The ledger knows neither statements
  // nor agreements (they are of higher layers): src/engine's verifyJobReceipt validates them.
  /** The enclave-signed result statement whose hash the job.finished entry records. */
  statement: z.record(z.string(), z.unknown()).optional(),
  enclave: receiptEnclaveSchema.optional(),
  /** The agreement the job ran under. */
  agreement: z.record(z.string(), z.unknown()).optional(),
});

export type Receipt = z.infer<typeof receiptSchema>;

export function buildReceipt(parts: {
  entry: Uint8Array;
  index: number;
  checkpointNote: string;
  inclusionProof: readonly Uint8Array[];
}): Receipt {
  return {
    format: RECEIPT_FORMAT,
    entry: new TextDecoder().decode(parts.entry),
    index: parts.index,
    checkpoint: parts.checkpointNote,
    inclusionProof: parts.inclusionProof.map(toBase64),
  };
}

export interface ReceiptPolicy {
  /** The log's key; its name is the log's origin. */
  readonly log: NoteVerifier;
  /** Witnesses whose cosignatures count. */
  readonly witnesses?: readonly NoteVerifier[];
  /** How many of `witnesses` must have cosigned the checkpoint (default 0). */
  readonly minCosignatures?: number;
}

export type ReceiptVerdict =
  | { ok: true; event: LogEvent; index: number; checkpoint: Checkpoint; cosignedBy: string[] }
  | { ok: false; step: ReceiptStep; reason: string };

export type ReceiptStep = 'shape' | 'checkpoint' | 'entry' | 'inclusion' | 'cosignatures';

/** Verifies a receipt against the given trust material. Never throws on hostile input. */
export function verifyReceipt(input: unknown, policy: ReceiptPolicy): ReceiptVerdict {
  const fail = (step: ReceiptStep, reason: string): ReceiptVerdict => ({ ok: false, step, reason });

  const shape = receiptSchema.safeParse(input);
  if (!shape.success) return fail('shape', `not a ${RECEIPT_FORMAT} document`);
  const receipt = shape.data;

  const opened = openCheckpoint(receipt.checkpoint, policy.log, policy.log.name);
  if (!opened.ok) return fail('checkpoint', opened.reason);
  const { checkpoint } = opened;

  const bytes = new TextEncoder().encode(receipt.entry);
  const decoded = decodeEvent(bytes);
  if (!decoded.ok) return fail('entry', decoded.reason);

  const proof: Uint8Array[] = [];
  for (const text of receipt.inclusionProof) {
    const hash = fromBase64(text);
    if (hash === undefined) return fail('inclusion', 'a proof hash is not canonical base64');
    proof.push(hash);
  }
  const included = verifyInclusion({
    index: receipt.index,
    size: checkpoint.size,
    leafHash: leafHash(bytes),
    proof,
    root: checkpoint.root,
  });
  if (!included.ok) return fail('inclusion', `${included.reason}: ${included.detail}`);

  const witnesses = policy.witnesses ?? [];
  let cosignedBy: string[] = [];
  if (witnesses.length > 0) {
    const checked = verifyNote(receipt.checkpoint, witnesses);
    // A listed witness whose cosignature does not verify is tampering, whatever the minimum.
    if (!checked.ok && checked.reason !== NO_KNOWN_SIGNER) return fail('cosignatures', checked.reason);
    cosignedBy = checked.ok ? checked.verified : [];
  }
  const needed = policy.minCosignatures ?? 0;
  if (cosignedBy.length < needed) {
    return fail('cosignatures', `${cosignedBy.length} of the required ${needed} witness cosignatures`);
  }
  return { ok: true, event: decoded.event, index: receipt.index, checkpoint, cosignedBy };
}
