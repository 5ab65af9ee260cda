import { createHash } from 'node:crypto';
import { equalBytes, fromBase64, signEd25519, signingPublicKey, toBase64, verifyEd25519 } from '../crypto/index.js';

// C2SP signed-note: a UTF-8 text ending in a newline, a blank line, then one signature line per
// signer, `— <name> <base64(key id ‖ signature)>`. The key id is the first 4 bytes of
// SHA-256(name ‖ "\n" ‖ signature type ‖ public key); Ed25519 notes use type 0x01.

export const SIG_TYPE_ED25519 = 0x01;
const MAX_NOTE_BYTES = 1024 * 1024;
const MAX_SIGNATURES = 100;
const DASH = '\u2014';

export interface NoteSigner {
  readonly name: string;
  readonly keyId: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: Uint8Array;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly signature: Uint8Array;
  /** The line as it appears in the note, without its newline. */
  readonly line: string;
}

export interface ParsedNote {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A key name: non-empty, no whitespace, no '+'. */
export function isKeyName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && !/[\s+]/u.test(name);
}

export function noteKeyId(name: string, sigType: number, publicKey: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(name).update('\n').update(Uint8Array.of(sigType)).update(publicKey).digest();
  return new Uint8Array(digest.subarray(0, 4));
}

export function ed25519NoteSigner(name: string, secretKey: Uint8Array): NoteSigner {
  if (!isKeyName(name)) throw new RangeError(`invalid note key name ${JSON.stringify(name)}`);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, signingPublicKey(secretKey));
  return { name, keyId, sign: (message) => signEd25519(secretKey, message) };
}

export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (!isKeyName(name)) throw new RangeError(`invalid note key name ${JSON.stringify(name)}`);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, publicKey);
  return { name, keyId, verify: (message, signature) => verifyEd25519(publicKey, message, signature) };
}

/** `<name>+<hex key id>+<base64(0x01 ‖ public key)>`. */
export function verifierKeyString(name: string, publicKey: Uint8Array): string {
  const keyId = Buffer.from(noteKeyId(name, SIG_TYPE_ED25519, publicKey)).toString('hex');
  return `${name}+${keyId}+${toBase64(Uint8Array.of(SIG_TYPE_ED25519, ...publicKey))}`;
}

/** Parses an Ed25519 verifier key string; undefined unless every part is well-formed and consistent. */
export function parseVerifierKey(text: string): NoteVerifier | undefined {
  // Only the first two '+' separate fields: the base64 key may itself contain '+'.
  const first = text.indexOf('+');
  const second = text.indexOf('+', first + 1);
  if (first < 0 || second < 0) return undefined;
  const name = text.slice(0, first);
  const hexId = text.slice(first + 1, second);
  const keyText = text.slice(second + 1);
  if (!isKeyName(name) || !/^[0-9a-f]{8}$/.test(hexId)) return undefined;
  const key = fromBase64(keyText);
  if (key?.length !== 33 || key[0] !== SIG_TYPE_ED25519) return undefined;
  const verifier = ed25519NoteVerifier(name, key.subarray(1));
  return Buffer.from(verifier.keyId).toString('hex') === hexId ? verifier : undefined;
}

function checkText(text: string): string | undefined {
  if (text.length === 0 || !text.endsWith('\n')) return 'note text must end with a newline';
  if (text.includes('\n\n')) return 'note text must not contain a blank line';
  // Control characters other than newline make a note ambiguous to display.
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if ((code < 0x20 && code !== 0x0a) || code === 0x7f) return 'note text must not contain control characters';
  }
  return undefined;
}

export function signNote(text: string, signers: readonly NoteSigner[]): string {
  const problem = checkText(text);
  if (problem !== undefined) throw new RangeError(problem);
  const message = new TextEncoder().encode(text);
  const lines = signers.map((s) => `${DASH} ${s.name} ${toBase64(Uint8Array.of(...s.keyId, ...s.sign(message)))}\n`);
  return `${text}\n${lines.join('')}`;
}

export function parseNote(note: string): ParsedNote | { error: string } {
  if (Buffer.byteLength(note) > MAX_NOTE_BYTES) return { error: 'note is too large' };
  const split = note.lastIndexOf('\n\n');
  if (split < 0) return { error: 'note has no signature block' };
  const text = note.slice(0, split + 1);
  const problem = checkText(text);
  if (problem !== undefined) return { error: problem };
  const block = note.slice(split + 2);
  if (!block.endsWith('\n')) return { error: 'signature block must end with a newline' };
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) return { error: 'note has too many signatures' };
  const signatures: NoteSignature[] = [];
  for (const [i, line] of lines.entries()) {
    const match = /^\u2014 (\S+) (\S+)$/u.exec(line);
    const name = match?.[1] ?? '';
    const bytes = fromBase64(match?.[2] ?? '');
    if (match === null || !isKeyName(name) || bytes === undefined || bytes.length < 5) {
      return { error: `signature line ${i + 1} is malformed` };
    }
    if (signatures.some((s) => s.line === line)) return { error: `signature line ${i + 1} is repeated` };
    signatures.push({ name, keyId: bytes.slice(0, 4), signature: bytes.slice(4), line });
  }
  return { text, signatures };
}

/** The reason verifyNote gives when no known key signed: absence, not tampering. */
export const NO_KNOWN_SIGNER = 'no signature by a known key';

export type NoteVerdict =
  | { ok: true; text: string; verified: string[]; unverified: string[] }
  | { ok: false; reason: string };

/**
 * Verifies a note against known keys. Fails closed: a signature line that names a known key (name
 * and key id) but does not verify fails the note. Ok when at least one known key verified.
 */
export function verifyNote(note: string, verifiers: readonly NoteVerifier[]): NoteVerdict {
  const parsed = parseNote(note);
  if ('error' in parsed) return { ok: false, reason: parsed.error };
  const message = new TextEncoder().encode(parsed.text);
  const verified: string[] = [];
  const unverified: string[] = [];
  for (const sig of parsed.signatures) {
    const verifier = verifiers.find((v) => v.name === sig.name && equalBytes(v.keyId, sig.keyId));
    if (verifier === undefined) {
      unverified.push(sig.name);
      continue;
    }
    if (!verifier.verify(message, sig.signature)) return { ok: false, reason: `signature by ${sig.name} does not verify` };
    if (!verified.includes(sig.name)) verified.push(sig.name);
  }
  if (verified.length === 0) return { ok: false, reason: NO_KNOWN_SIGNER };
  return { ok: true, text: parsed.text, verified, unverified };
}
