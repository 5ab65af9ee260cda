// Sealed cells: AES-256-GCM, one key per row, as C3R 2.x writes them.
//   cell       = "02:enc:" + base64(nonce[32] || iv[12] || ciphertext || tag[16])
//   plaintext  = descriptor[1] || value || zero pad || pad length (uint16, big-endian)
//   AAD        = "02:enc:"
// Pad lengths count value bytes only (not the descriptor): pad "fixed" L fills the value to L
// bytes; pad "max" L fills it to (longest value in the column + L) bytes; "none" adds nothing
// but the two length bytes. Nonce, key and IV: see keys.ts.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MalusError } from '../../errors/index.js';
import { C3R_IV_BYTES, C3R_NONCE_BYTES, deriveCellIv, deriveCellKey, type C3rKeys } from './keys.js';
import type { C3rPad } from './schema.js';
import { c3rString, descriptorByte, parseDescriptorByte, valueBytes, valueFromBytes, type C3rDataType, type C3rValue } from './values.js';

export const C3R_SEALED_PREFIX = '02:enc:';
/** C3R's limit on a value after padding (PadUtil.MAX_PADDED_CLEARTEXT_BYTES). */
export const C3R_MAX_PADDED_BYTES = 12_000;
/** C3R's limit on a whole sealed or fingerprint cell (Transformer.MAX_GLUE_STRING_BYTES, from AWS Glue). */
export const C3R_MAX_CELL_BYTES = 16_383;

const AAD = Buffer.from(C3R_SEALED_PREFIX, 'utf8');
const TAG_BYTES = 16;
const PAD_LENGTH_BYTES = 2;
const HEADER_BYTES = C3R_NONCE_BYTES + C3R_IV_BYTES;
/** The shortest possible plaintext: a NULL descriptor and the two pad-length bytes. */
const MIN_PLAINTEXT_BYTES = 1 + PAD_LENGTH_BYTES;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** True for a cell C3R 2.x sealed. */
export function isC3rSealed(cell: unknown): cell is string {
  return typeof cell === 'string' && cell.startsWith(C3R_SEALED_PREFIX);
}

/** C3R tells a sealed cell by the "enc:" descriptor after the two-digit version, then checks the version. */
export function looksC3rSealed(cell: string): boolean {
  return cell.length >= 7 && cell[2] === ':' && cell.startsWith('enc:', 3);
}

/**
 * The length a pad fills a column's values to, or undefined for pad "none". `maxValueBytes` is
 * the longest non-NULL value of the column (pad "max" only).
 */
export function padTargetBytes(pad: C3rPad, maxValueBytes = 0): number | undefined {
  if (pad.type === 'none') return undefined;
  const target = pad.type === 'fixed' ? pad.length : maxValueBytes + pad.length;
  if (target > C3R_MAX_PADDED_BYTES) {
    throw new MalusError('invalid-input', `padding to ${target} bytes is over C3R's limit of ${C3R_MAX_PADDED_BYTES} bytes per padded value`);
  }
  return target;
}

/** The length of the cell sealing a value of `length` bytes padded to `target` gives (base64 included). */
export function sealedCellLength(length: number, target: number | undefined): number {
  const plaintext = 1 + Math.max(length, target ?? 0) + PAD_LENGTH_BYTES;
  return C3R_SEALED_PREFIX.length + 4 * Math.ceil((HEADER_BYTES + plaintext + TAG_BYTES) / 3);
}

/**
 * Why a value of `length` bytes cannot be sealed in a column whose pad fills to `target`, or
 * undefined when it can. Checked for the whole column before anything is encrypted.
 */
export function sealProblem(length: number, target: number | undefined): string | undefined {
  if (target !== undefined && length > target) {
    return `the value is ${length} bytes, longer than the ${target} bytes the column's pad fills to (no room for padding)`;
  }
  const cell = sealedCellLength(length, target);
  if (cell > C3R_MAX_CELL_BYTES) return `the sealed value would be ${cell} bytes; C3R's limit (AWS Glue's) is ${C3R_MAX_CELL_BYTES} bytes per cell`;
  return undefined;
}

/**
 * Seals one value with a row's cell key. The caller derives the cell key once per row (it depends
 * on the nonce only). `target` is from padTargetBytes.
 */
export function sealWithCellKey(
  value: Buffer | null,
  type: C3rDataType,
  cellKey: Buffer,
  nonce: Uint8Array,
  columnLabel: string,
  target: number | undefined,
): string {
  const length = value === null ? 0 : value.length;
  const problem = sealProblem(length, target);
  if (problem !== undefined) throw new MalusError('invalid-input', problem);
  const padding = target === undefined ? 0 : target - length;
  const plaintext = Buffer.alloc(1 + length + padding + PAD_LENGTH_BYTES);
  plaintext[0] = descriptorByte(type, value === null);
  if (value !== null) value.copy(plaintext, 1);
  plaintext.writeUInt16BE(padding, plaintext.length - PAD_LENGTH_BYTES);
  const iv = deriveCellIv(columnLabel, nonce);
  const cipher = createCipheriv('aes-256-gcm', cellKey, iv);
  cipher.setAAD(AAD);
  // nonce || iv || ciphertext || tag, written into one buffer.
  const body = Buffer.allocUnsafe(HEADER_BYTES + plaintext.length + TAG_BYTES);
  body.set(nonce, 0);
  body.set(iv, C3R_NONCE_BYTES);
  const encrypted = cipher.update(plaintext);
  cipher.final();
  body.set(encrypted, HEADER_BYTES);
  body.set(cipher.getAuthTag(), HEADER_BYTES + encrypted.length);
  return C3R_SEALED_PREFIX + body.toString('base64');
}

export interface SealOptions {
  readonly keys: C3rKeys;
  /** The output column's (normalized) header: it feeds the IV. */
  readonly columnLabel: string;
  readonly pad: C3rPad;
  /** Pad "max": the longest non-NULL value of the column, in bytes. */
  readonly maxValueBytes?: number;
  /** The row's 32-byte nonce; a fresh random one when absent. */
  readonly nonce?: Uint8Array;
  /** The column's type, for a NULL value (default string, as in CSV). */
  readonly type?: C3rDataType;
}

/** Seals one cell as C3R would. A plain string is a STRING value; null is an encrypted NULL. */
export function sealC3rCell(value: C3rValue | string | null, options: SealOptions): string {
  const typed = typeof value === 'string' ? c3rString(value) : value;
  const nonce = options.nonce ?? randomBytes(C3R_NONCE_BYTES);
  if (nonce.length !== C3R_NONCE_BYTES) throw new MalusError('invalid-input', `a C3R nonce is ${C3R_NONCE_BYTES} bytes, not ${nonce.length}`);
  const bytes = typed === null ? null : valueBytes(typed);
  const target = padTargetBytes(options.pad, options.maxValueBytes ?? bytes?.length ?? 0);
  return sealWithCellKey(bytes, typed?.type ?? options.type ?? 'string', deriveCellKey(options.keys.rootKey, nonce), nonce, options.columnLabel, target);
}

/** Opens sealed cells with one collaboration's keys; consecutive cells of a row share a nonce, so the last cell key is kept. */
export function createUnsealer(keys: C3rKeys): (cell: string) => C3rValue | null {
  let lastNonce: Buffer | undefined;
  let lastKey: Buffer | undefined;
  return (cell) => {
    if (!cell.startsWith(C3R_SEALED_PREFIX)) {
      if (looksC3rSealed(cell)) {
        throw new MalusError('invalid-input', `the value is sealed with C3R format version \`${cell.slice(0, 2)}\`; Malus opens version 02 only`);
      }
      throw new MalusError('invalid-input', `not a C3R sealed value (it does not start with ${C3R_SEALED_PREFIX})`);
    }
    const text = cell.slice(C3R_SEALED_PREFIX.length);
    if (!BASE64_PATTERN.test(text)) throw new MalusError('invalid-input', 'the sealed value is not valid base64');
    const body = Buffer.from(text, 'base64');
    const minimum = HEADER_BYTES + MIN_PLAINTEXT_BYTES + TAG_BYTES;
    if (body.length < minimum) {
      throw new MalusError('invalid-input', `the sealed value is truncated: ${body.length} bytes after base64, at least ${minimum} expected`);
    }
    const nonce = body.subarray(0, C3R_NONCE_BYTES);
    const iv = body.subarray(C3R_NONCE_BYTES, HEADER_BYTES);
    const ciphertext = body.subarray(HEADER_BYTES, body.length - TAG_BYTES);
    const tag = body.subarray(body.length - TAG_BYTES);
    if (lastNonce === undefined || lastKey === undefined || !lastNonce.equals(nonce)) {
      lastNonce = Buffer.from(nonce);
      lastKey = deriveCellKey(keys.rootKey, nonce);
    }
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', lastKey, iv);
      decipher.setAAD(AAD);
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new MalusError(
        'invalid-input',
        'the sealed value does not authenticate: the shared secret or the collaboration id is wrong, or the value was altered',
      );
    }
    const padding = plaintext.readUInt16BE(plaintext.length - PAD_LENGTH_BYTES);
    const valueEnd = plaintext.length - PAD_LENGTH_BYTES - padding;
    if (valueEnd < 1) throw new MalusError('invalid-input', 'the sealed value has a pad length longer than itself');
    const { type, isNull } = parseDescriptorByte(plaintext[0] ?? 0);
    const bytes = plaintext.subarray(1, valueEnd);
    if (isNull) {
      if (bytes.length > 0) throw new MalusError('invalid-input', 'the sealed value is marked NULL but holds bytes');
      return null;
    }
    return valueFromBytes(type, bytes);
  };
}

/** Opens one sealed cell: its value, or null for an encrypted NULL. */
export function unsealC3rCell(cell: string, keys: C3rKeys): C3rValue | null {
  return createUnsealer(keys)(cell);
}
