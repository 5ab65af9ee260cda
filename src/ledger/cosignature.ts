import { signEd25519, signingPublicKey, utf8, verifyEd25519 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { parseCheckpoint } from './checkpoint.js';
import { MAX_NOTE_SIGNATURES, isKeyName, noteKeyId, parseNote, parseSignatureLine, signNote, type NoteSigner, type NoteVerifier } from './note.js';

// C2SP tlog-cosignature, Ed25519 cosignature/v1: a cosigner (witness) signs with Ed25519 the message
// `cosignature/v1\ntime <POSIX seconds, decimal>\n` followed by the checkpoint's note text. The note
// signature is the timestamped_signature: the 8-byte big-endian timestamp, then the 64-byte
// signature. The key id uses signature type 0x04, so a cosignature never passes for an Ed25519 note
// signature (type 0x01) by the same key and name, nor the reverse; the message prefix separates
// them again should key ids ever be forged.

export const SIG_TYPE_COSIGNATURE = 0x04;
const TIMESTAMP_BYTES = 8;
const ED25519_SIGNATURE_BYTES = 64;
const COSIGNATURE_BYTES = TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES;

export interface CosignatureVerifier extends NoteVerifier {
  /** The timestamp (POSIX seconds) of a cosignature's signature bytes; throws unless they are 72 bytes with a safe timestamp. */
  timestampOf(signature: Uint8Array): number;
}

function misuse(message: string): MalusError {
  return new MalusError('invalid-input', message);
}

function checkName(name: string): void {
  if (!isKeyName(name)) throw misuse(`invalid cosigner name ${JSON.stringify(name)}`);
}

function checkTime(time: number): void {
  if (!Number.isSafeInteger(time) || time < 0) throw misuse('cosignature time must be a non-negative integer number of seconds');
}

/** `cosignature/v1\ntime <time>\n` followed by the checkpoint text. */
function cosignedMessage(checkpointText: Uint8Array, time: number): Uint8Array {
  const header = utf8(`cosignature/v1\ntime ${time}\n`);
  const message = new Uint8Array(header.length + checkpointText.length);
  message.set(header);
  message.set(checkpointText, header.length);
  return message;
}

export function cosignatureSigner(name: string, secretKey: Uint8Array, time: () => number): NoteSigner {
  checkName(name);
  if (secretKey.length !== 32) throw misuse('an Ed25519 secret key must be 32 bytes');
  const key = Uint8Array.from(secretKey);
  const keyId = noteKeyId(name, SIG_TYPE_COSIGNATURE, signingPublicKey(key));
  return {
    name,
    keyId,
    sign: (message) => {
      const t = time();
      checkTime(t);
      const out = new Uint8Array(COSIGNATURE_BYTES);
      new DataView(out.buffer).setBigUint64(0, BigInt(t));
      out.set(signEd25519(key, cosignedMessage(message, t)), TIMESTAMP_BYTES);
      return out;
    },
  };
}

/** Reads the timestamp of timestamped_signature bytes; undefined unless 72 bytes with a safe integer time. */
function readTimestamp(signature: Uint8Array): number | undefined {
  if (signature.length !== COSIGNATURE_BYTES) return undefined;
  const time = new DataView(signature.buffer, signature.byteOffset, TIMESTAMP_BYTES).getBigUint64(0);
  // The spec caps timestamps at 2^63 - 1 and lets verifiers refuse future ones; past 2^53 - 1 is refused.
  return time <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(time) : undefined;
}

export function cosignatureVerifier(name: string, publicKey: Uint8Array): CosignatureVerifier {
  checkName(name);
  if (publicKey.length !== 32) throw misuse('an Ed25519 public key must be 32 bytes');
  const key = Uint8Array.from(publicKey);
  const keyId = noteKeyId(name, SIG_TYPE_COSIGNATURE, key);
  return {
    name,
    keyId,
    timestampOf: (signature) => {
      const time = readTimestamp(signature);
      if (time === undefined) throw misuse('not a cosignature/v1 signature with a usable timestamp');
      return time;
    },
    verify: (message, signature) => {
      const time = readTimestamp(signature);
      if (time === undefined) return false;
      return verifyEd25519(key, cosignedMessage(message, time), signature.subarray(TIMESTAMP_BYTES));
    },
  };
}

/** One cosignature line (`— <name> <base64>`, no newline) over a checkpoint's note text. */
export function cosignatureLine(checkpointBody: string, name: string, secretKey: Uint8Array, time: number): string {
  checkTime(time);
  const checkpoint = parseCheckpoint(checkpointBody);
  if ('error' in checkpoint) throw misuse(`cannot cosign: ${checkpoint.error}`);
  const note = signNote(checkpointBody, [cosignatureSigner(name, secretKey, () => time)]);
  return note.slice(checkpointBody.length + 1, -1);
}

/**
 * Appends signature lines to a signed note, skipping lines it already carries (and repeats among
 * `lines`). Each line is one well-formed signature line, with or without its newline; nothing here
 * verifies it. Throws on a malformed note or line, or when the note would carry too many signatures.
 */
export function addCosignatures(note: string, lines: readonly string[]): string {
  const parsed = parseNote(note);
  if ('error' in parsed) throw misuse(`cannot add cosignatures to a malformed note: ${parsed.error}`);
  const present = new Set(parsed.signatures.map((s) => s.line));
  let out = note;
  for (const raw of lines) {
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (parseSignatureLine(line) === undefined) throw misuse(`not a signature line: ${JSON.stringify(raw.slice(0, 200))}`);
    if (present.has(line)) continue;
    if (present.size >= MAX_NOTE_SIGNATURES) throw misuse(`a note carries at most ${MAX_NOTE_SIGNATURES} signatures`);
    present.add(line);
    out += `${line}\n`;
  }
  const check = parseNote(out);
  if ('error' in check) throw misuse(`cannot add cosignatures: ${check.error}`);
  return out;
}
