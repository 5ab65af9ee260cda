import { signEd25519, signingPublicKey, toBase64, verifyEd25519 } from '../crypto/index.js';
import { noteKeyId, parseNote, type NoteSigner, type NoteVerifier } from './note.js';

// C2SP tlog-cosignature, cosignature/v1: a witness signs, with Ed25519, the message
// `cosignature/v1\ntime <unix seconds>\n` followed by the checkpoint body. The note signature is
// the 8-byte big-endian timestamp followed by the 64-byte signature; the key id uses type 0x04, so
// a cosignature can never pass for a log signature by the same key, nor the reverse.

export const SIG_TYPE_COSIGNATURE = 0x04;

function cosignedMessage(checkpointBody: Uint8Array, time: number): Uint8Array {
  const header = new TextEncoder().encode(`cosignature/v1\ntime ${time}\n`);
  const out = new Uint8Array(header.length + checkpointBody.length);
  out.set(header);
  out.set(checkpointBody, header.length);
  return out;
}

function timestampBytes(time: number): Uint8Array {
  if (!Number.isSafeInteger(time) || time < 0) throw new RangeError('cosignature time must be a non-negative integer');
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(time));
  return bytes;
}

export function cosignatureSigner(name: string, secretKey: Uint8Array, time: () => number): NoteSigner {
  const keyId = noteKeyId(name, SIG_TYPE_COSIGNATURE, signingPublicKey(secretKey));
  return {
    name,
    keyId,
    sign: (message) => {
      const t = time();
      return Uint8Array.of(...timestampBytes(t), ...signEd25519(secretKey, cosignedMessage(message, t)));
    },
  };
}

export function cosignatureVerifier(name: string, publicKey: Uint8Array): NoteVerifier & { timestampOf(signature: Uint8Array): number } {
  const keyId = noteKeyId(name, SIG_TYPE_COSIGNATURE, publicKey);
  const timestampOf = (signature: Uint8Array): number =>
    Number(new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0));
  return {
    name,
    keyId,
    timestampOf,
    verify: (message, signature) => {
      if (signature.length !== 72) return false;
      const time = timestampOf(signature);
      if (!Number.isSafeInteger(time)) return false;
      return verifyEd25519(publicKey, cosignedMessage(message, time), signature.subarray(8));
    },
  };
}

/** One cosignature line over a checkpoint body (the note text). */
export function cosignatureLine(checkpointBody: string, name: string, secretKey: Uint8Array, time: number): string {
  const signer = cosignatureSigner(name, secretKey, () => time);
  const signature = signer.sign(new TextEncoder().encode(checkpointBody));
  return `\u2014 ${name} ${toBase64(Uint8Array.of(...signer.keyId, ...signature))}`;
}

/** Appends signature lines to a signed note, skipping lines already present. */
export function addCosignatures(note: string, lines: readonly string[]): string {
  const parsed = parseNote(note);
  if ('error' in parsed) throw new RangeError(`cannot add cosignatures: ${parsed.error}`);
  const present = new Set(parsed.signatures.map((s) => s.line));
  let out = note;
  for (const raw of lines) {
    const line = raw.trim();
    if (present.has(line)) continue;
    present.add(line);
    out += `${line}\n`;
  }
  return out;
}

