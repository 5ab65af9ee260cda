import { equalBytes, fromBase64, isEd25519PublicKey, sha256, signEd25519, signingPublicKey, toBase64, toHex, utf8, verifyEd25519 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';

// C2SP signed-note (c2sp.org/signed-note): a text ending in a newline, a blank line, then one
// signature line per signature, `— <key name> <base64(key id ‖ signature)>`. The text may itself hold
// blank lines: the last blank line of the note is the one that separates the signatures. The whole
// note is well-formed Unicode without control characters other than the newline.
//
// key id = SHA-256(key name ‖ 0x0A ‖ signature type ‖ public key)[:4]; Ed25519 note signatures use
// type 0x01 and sign the note text (with its final newline) as it is.

export const SIG_TYPE_ED25519 = 0x01;
/** The largest note parsed or produced here, in UTF-8 bytes. */
export const MAX_NOTE_BYTES = 1024 * 1024;
/** The most signature lines a note may carry (the spec asks verifiers to accept at least 16). */
export const MAX_NOTE_SIGNATURES = 100;

const DASH = '\u2014';
const KEY_ID_BYTES = 4;
const ED25519_KEY_BYTES = 32;

export interface NoteSigner {
  readonly name: string;
  /** The 4-byte key id written before each signature. */
  readonly keyId: Uint8Array;
  /** The signature bytes as they follow the key id in a signature line. */
  sign(message: Uint8Array): Uint8Array;
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: Uint8Array;
  /** Whether `signature` (the bytes after the key id) signs `message`; false rather than throwing. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Uint8Array;
  /** The bytes after the key id. */
  readonly signature: Uint8Array;
  /** The line as it appears in the note, without its newline. */
  readonly line: string;
}

export interface ParsedNote {
  /** The signed text, with its final newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** The reason verifyNote gives when no known key signed: absence, not tampering. */
export const NO_KNOWN_SIGNER = 'no signature by a known key';

export type NoteVerdict =
  | { ok: true; text: string; verified: string[]; unverified: string[] }
  | { ok: false; reason: string };

/** A key name: non-empty, no Unicode space, no '+', no control character, well-formed Unicode. */
export function isKeyName(name: string): boolean {
  return name.length > 0 && !/[\s\u0085+\p{Cc}\p{Cs}]/u.test(name);
}

function misuse(message: string): MalusError {
  return new MalusError('invalid-input', message);
}

function checkKeyName(name: string): void {
  if (!isKeyName(name)) throw misuse(`invalid note key name ${JSON.stringify(name)}`);
}

function checkKeyBytes(what: string, key: Uint8Array): void {
  if (key.length !== ED25519_KEY_BYTES) throw misuse(`${what} must be ${ED25519_KEY_BYTES} bytes`);
}

/** The problem with a note text, or undefined when it may be signed. */
function textProblem(text: string): string | undefined {
  if (!text.endsWith('\n')) return 'note text must end with a newline';
  return charactersProblem(text);
}

/** Lone surrogates cannot be encoded in UTF-8; control characters other than newline are refused. */
function charactersProblem(text: string): string | undefined {
  if (/\p{Cs}/u.test(text)) return 'note is not well-formed Unicode';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 && code !== 0x0a) return 'note contains a control character';
  }
  return undefined;
}

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function noteKeyId(name: string, sigType: number, publicKey: Uint8Array): Uint8Array {
  checkKeyName(name);
  if (!Number.isInteger(sigType) || sigType < 0 || sigType > 0xff) throw misuse('signature type must be one byte');
  const nameBytes = utf8(name);
  const input = new Uint8Array(nameBytes.length + 2 + publicKey.length);
  input.set(nameBytes);
  input[nameBytes.length] = 0x0a;
  input[nameBytes.length + 1] = sigType;
  input.set(publicKey, nameBytes.length + 2);
  return sha256(input).slice(0, KEY_ID_BYTES);
}

export function ed25519NoteSigner(name: string, secretKey: Uint8Array): NoteSigner {
  checkKeyName(name);
  checkKeyBytes('an Ed25519 secret key', secretKey);
  const key = Uint8Array.from(secretKey);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, signingPublicKey(key));
  return { name, keyId, sign: (message) => signEd25519(key, message) };
}

export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  checkKeyName(name);
  checkKeyBytes('an Ed25519 public key', publicKey);
  const key = Uint8Array.from(publicKey);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, key);
  return { name, keyId, verify: (message, signature) => verifyEd25519(key, message, signature) };
}

/** The verifier key string `<name>+<hex key id>+<base64(0x01 ‖ public key)>`. */
export function verifierKeyString(name: string, publicKey: Uint8Array): string {
  checkKeyName(name);
  checkKeyBytes('an Ed25519 public key', publicKey);
  const keyId = noteKeyId(name, SIG_TYPE_ED25519, publicKey);
  return `${name}+${toHex(keyId)}+${toBase64(concat(Uint8Array.of(SIG_TYPE_ED25519), publicKey))}`;
}

/**
 * Parses an Ed25519 verifier key string; undefined unless the name is valid, the key id is 8
 * lower-case hex digits equal to the key's own id, and the key is canonical base64 of 0x01 and a
 * valid 32-byte Ed25519 public key. Only the first two '+' separate fields: base64 may hold '+'.
 */
export function parseVerifierKey(text: string): NoteVerifier | undefined {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) return undefined;
  const name = text.slice(0, first);
  const hexId = text.slice(first + 1, second);
  if (!isKeyName(name) || !/^[0-9a-f]{8}$/.test(hexId)) return undefined;
  const key = fromBase64(text.slice(second + 1));
  if (key?.length !== 1 + ED25519_KEY_BYTES || key[0] !== SIG_TYPE_ED25519) return undefined;
  const publicKey = key.subarray(1);
  if (!isEd25519PublicKey(publicKey)) return undefined;
  const verifier = ed25519NoteVerifier(name, publicKey);
  return toHex(verifier.keyId) === hexId ? verifier : undefined;
}

/** One signature line (without its newline) for a signer's key id and signature bytes. */
function signatureLine(name: string, keyId: Uint8Array, signature: Uint8Array): string {
  return `${DASH} ${name} ${toBase64(concat(keyId, signature))}`;
}

/** Parses one signature line (without its newline); undefined unless well-formed and canonical. */
export function parseSignatureLine(line: string): NoteSignature | undefined {
  const match = /^\u2014 ([^ ]+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line);
  if (match === null) return undefined;
  const name = match[1] ?? '';
  const bytes = fromBase64(match[2] ?? '');
  if (!isKeyName(name) || bytes === undefined || bytes.length <= KEY_ID_BYTES) return undefined;
  return { name, keyId: bytes.slice(0, KEY_ID_BYTES), signature: bytes.slice(KEY_ID_BYTES), line };
}

/** Signs a text: the text, a blank line, then one signature line per signer, in order. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  const problem = textProblem(text);
  if (problem !== undefined) throw misuse(problem);
  if (signers.length === 0) throw misuse('a note needs at least one signer');
  if (signers.length > MAX_NOTE_SIGNATURES) throw misuse(`a note carries at most ${MAX_NOTE_SIGNATURES} signatures`);
  const message = utf8(text);
  const lines: string[] = [];
  for (const [i, signer] of signers.entries()) {
    checkKeyName(signer.name);
    if (signer.keyId.length !== KEY_ID_BYTES) throw misuse(`signer ${signer.name} has a key id that is not ${KEY_ID_BYTES} bytes`);
    if (signers.slice(0, i).some((s) => s.name === signer.name && equalBytes(s.keyId, signer.keyId))) {
      throw misuse(`signer ${signer.name}+${toHex(signer.keyId)} is listed twice`);
    }
    const signature = signer.sign(message);
    if (signature.length === 0) throw misuse(`signer ${signer.name} produced an empty signature`);
    lines.push(`${signatureLine(signer.name, signer.keyId, signature)}\n`);
  }
  const note = `${text}\n${lines.join('')}`;
  if (utf8Length(note) > MAX_NOTE_BYTES) throw misuse(`a note is at most ${MAX_NOTE_BYTES} bytes`);
  return note;
}

/**
 * Parses a signed note strictly: at most MAX_NOTE_BYTES and MAX_NOTE_SIGNATURES, well-formed
 * Unicode without control characters but the newline, a text ending in a newline, and signature
 * lines with valid key names and canonical base64 of a key id and at least one signature byte. A
 * line repeated verbatim is refused.
 */
export function parseNote(note: string): ParsedNote | { error: string } {
  if (note.length > MAX_NOTE_BYTES || utf8Length(note) > MAX_NOTE_BYTES) return { error: 'note is too large' };
  const problem = charactersProblem(note);
  if (problem !== undefined) return { error: problem };
  const split = note.lastIndexOf('\n\n');
  if (split < 0) return { error: 'note has no blank line before its signatures' };
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block === '') return { error: 'note has no signature lines' };
  if (!block.endsWith('\n')) return { error: 'signature lines must end with a newline' };
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) return { error: 'note has too many signatures' };
  const signatures: NoteSignature[] = [];
  const seen = new Set<string>();
  for (const [i, line] of lines.entries()) {
    const signature = parseSignatureLine(line);
    if (signature === undefined) return { error: `signature line ${i + 1} is malformed` };
    if (seen.has(line)) return { error: `signature line ${i + 1} is repeated` };
    seen.add(line);
    signatures.push(signature);
  }
  return { text, signatures };
}

/** Verifies the signatures of a parsed note; see verifyNote. */
export function verifyParsedNote(parsed: ParsedNote, verifiers: readonly NoteVerifier[]): NoteVerdict {
  const message = utf8(parsed.text);
  const verified: string[] = [];
  const unverified: string[] = [];
  for (const sig of parsed.signatures) {
    const known = verifiers.filter((v) => v.name === sig.name && equalBytes(v.keyId, sig.keyId));
    if (known.length === 0) {
      if (!unverified.includes(sig.name)) unverified.push(sig.name);
      continue;
    }
    if (!known.some((v) => safeVerify(v, message, sig.signature))) {
      return { ok: false, reason: `signature by ${sig.name}+${toHex(sig.keyId)} does not verify` };
    }
    if (!verified.includes(sig.name)) verified.push(sig.name);
  }
  if (verified.length === 0) return { ok: false, reason: NO_KNOWN_SIGNER };
  return { ok: true, text: parsed.text, verified, unverified };
}

function safeVerify(verifier: NoteVerifier, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verifier.verify(message, signature);
  } catch {
    return false;
  }
}

/**
 * Verifies a note against known keys, each known by name and key id. Signatures by other keys are
 * listed as unverified and otherwise ignored. Fails closed: a signature line that names a known key
 * (name and key id) but does not verify fails the whole note. Ok when at least one known key signed.
 */
export function verifyNote(note: string, verifiers: readonly NoteVerifier[]): NoteVerdict {
  const parsed = parseNote(note);
  if ('error' in parsed) return { ok: false, reason: parsed.error };
  return verifyParsedNote(parsed, verifiers);
}
