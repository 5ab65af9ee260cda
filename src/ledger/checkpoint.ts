import { fromBase64, toBase64 } from '../crypto/index.js';
import { parseNote, signNote, verifyNote, type NoteSigner, type NoteVerifier, type ParsedNote } from './note.js';

// C2SP tlog-checkpoint: the body of a signed note, `<origin>\n<size>\n<base64 root>\n` followed
// by optional extension lines. Parsing is strict: one spelling per checkpoint.

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  readonly extensions: readonly string[];
}

export function formatCheckpoint(c: Checkpoint): string {
  return [c.origin, String(c.size), toBase64(c.root), ...c.extensions].map((line) => `${line}\n`).join('');
}

export function parseCheckpoint(text: string): Checkpoint | { error: string } {
  if (!text.endsWith('\n')) return { error: 'checkpoint must end with a newline' };
  const lines = text.slice(0, -1).split('\n');
  const [origin = '', sizeText = '', rootText = '', ...extensions] = lines;
  if (origin === '' || /\s$|^\s/.test(origin)) return { error: 'checkpoint origin is missing or padded' };
  if (!/^(?:0|[1-9]\d{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    return { error: 'checkpoint size is not a canonical decimal' };
  }
  const root = fromBase64(rootText);
  if (root?.length !== 32) return { error: 'checkpoint root is not 32 bytes of base64' };
  if (extensions.some((line) => line === '')) return { error: 'checkpoint has an empty extension line' };
  return { origin, size: Number(sizeText), root, extensions };
}

export function signCheckpoint(c: Checkpoint, logSigner: NoteSigner): string {
  return signNote(formatCheckpoint(c), [logSigner]);
}

export type OpenedCheckpoint =
  | { ok: true; checkpoint: Checkpoint; note: ParsedNote }
  | { ok: false; reason: string };

/** Verifies the log's signature on a checkpoint note and parses the body; other signatures are ignored here. */
export function openCheckpoint(note: string, logVerifier: NoteVerifier, expectedOrigin?: string): OpenedCheckpoint {
  const verdict = verifyNote(note, [logVerifier]);
  if (!verdict.ok) return { ok: false, reason: `log signature: ${verdict.reason}` };
  if (!verdict.verified.includes(logVerifier.name)) return { ok: false, reason: 'not signed by the log' };
  const parsed = parseNote(note);
  if ('error' in parsed) return { ok: false, reason: parsed.error };
  const checkpoint = parseCheckpoint(parsed.text);
  if ('error' in checkpoint) return { ok: false, reason: checkpoint.error };
  if (expectedOrigin !== undefined && checkpoint.origin !== expectedOrigin) {
    return { ok: false, reason: `checkpoint origin is ${checkpoint.origin}, expected ${expectedOrigin}` };
  }
  return { ok: true, checkpoint, note: parsed };
}
