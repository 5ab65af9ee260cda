import { fromBase64, toBase64 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import {
  MAX_NOTE_BYTES,
  NO_KNOWN_SIGNER,
  parseNote,
  signNote,
  verifyParsedNote,
  type NoteSigner,
  type NoteVerifier,
  type ParsedNote,
} from './note.js';

// C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the text of a signed note made of at least three
// non-empty lines: the origin (the log's identity), the tree size in decimal without leading zeros,
// the base64 root hash of the RFC 6962 tree of that size, then optional non-empty extension lines.
// Parsing is strict, so a checkpoint has a single spelling: format(parse(text)) === text.

export const ROOT_HASH_BYTES = 32;

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  readonly extensions: readonly string[];
}

/** A line of a checkpoint: non-empty, well-formed Unicode, no newline or other control character. */
function isCheckpointLine(line: string): boolean {
  if (line === '' || /\p{Cs}/u.test(line)) return false;
  for (let i = 0; i < line.length; i++) if (line.charCodeAt(i) < 0x20) return false;
  return true;
}

/** The note text of a checkpoint, ending with a newline. Throws on a checkpoint that has no spelling. */
export function formatCheckpoint(c: Checkpoint): string {
  const problem = (what: string) => new MalusError('invalid-input', `checkpoint ${what}`);
  if (!isCheckpointLine(c.origin)) throw problem('origin must be a non-empty line without control characters');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw problem('size must be a non-negative safe integer');
  if (c.root.length !== ROOT_HASH_BYTES) throw problem(`root must be ${ROOT_HASH_BYTES} bytes`);
  if (!c.extensions.every(isCheckpointLine)) throw problem('extension lines must be non-empty lines without control characters');
  return [c.origin, String(c.size), toBase64(c.root), ...c.extensions].map((line) => `${line}\n`).join('');
}

/** Parses the text of a checkpoint note strictly; the error names the first rule broken. */
export function parseCheckpoint(text: string): Checkpoint | { error: string } {
  if (text.length > MAX_NOTE_BYTES) return { error: 'checkpoint is too large' };
  if (!text.endsWith('\n')) return { error: 'checkpoint must end with a newline' };
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) return { error: 'checkpoint must have an origin, a size and a root hash line' };
  const [origin = '', sizeText = '', rootText = '', ...extensions] = lines;
  if (!lines.every(isCheckpointLine)) return { error: 'checkpoint lines must be non-empty, without control characters' };
  if (!/^(?:0|[1-9][0-9]*)$/.test(sizeText)) return { error: 'checkpoint size is not a decimal without leading zeros' };
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) return { error: 'checkpoint size is too large' };
  const root = fromBase64(rootText);
  if (root === undefined) return { error: 'checkpoint root hash is not canonical base64' };
  if (root.length !== ROOT_HASH_BYTES) return { error: `checkpoint root hash is not ${ROOT_HASH_BYTES} bytes` };
  return { origin, size, root, extensions };
}

/** The signed note of a checkpoint, with the log's signature only. */
export function signCheckpoint(c: Checkpoint, logSigner: NoteSigner): string {
  return signNote(formatCheckpoint(c), [logSigner]);
}

export type OpenedCheckpoint =
  | { ok: true; checkpoint: Checkpoint; note: ParsedNote }
  | { ok: false; reason: string };

/**
 * Verifies the log's signature on a checkpoint note, then parses its text. Other signatures (such
 * as cosignatures) are carried in `note` but not checked here. With `expectedOrigin`, the origin
 * line must equal it.
 */
export function openCheckpoint(note: string, logVerifier: NoteVerifier, expectedOrigin?: string): OpenedCheckpoint {
  const parsed = parseNote(note);
  if ('error' in parsed) return { ok: false, reason: `malformed note: ${parsed.error}` };
  const verdict = verifyParsedNote(parsed, [logVerifier]);
  if (!verdict.ok) {
    const reason = verdict.reason === NO_KNOWN_SIGNER ? `no signature by the log key ${logVerifier.name}` : verdict.reason;
    return { ok: false, reason: `log signature: ${reason}` };
  }
  const checkpoint = parseCheckpoint(parsed.text);
  if ('error' in checkpoint) return { ok: false, reason: checkpoint.error };
  if (expectedOrigin !== undefined && checkpoint.origin !== expectedOrigin) {
    return { ok: false, reason: `checkpoint origin is ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(expectedOrigin)}` };
  }
  return { ok: true, checkpoint, note: parsed };
}
