// Fingerprint cells: HMAC-SHA256 for joining without revealing values, as C3R 2.x writes them.
//   cell = "02:hmac:" + base64(HMAC-SHA256(column key, value || descriptor))
// The value is first put in its fingerprint form (values.ts: INT and SMALLINT as BIGINT), and the
// descriptor byte comes after the value, not before as in sealed cells. A NULL that is not
// preserved is HMACed as 32 random bytes, so NULLs never match one another.
// Fingerprints cannot be reversed; decryption passes them through unchanged.
import { createHmac, randomBytes } from 'node:crypto';
import { deriveFingerprintKey, type C3rKeys } from './keys.js';
import { c3rString, descriptorByte, fingerprintType, toFingerprintForm, valueBytes, type C3rDataType, type C3rValue } from './values.js';

export const C3R_FINGERPRINT_PREFIX = '02:hmac:';

const NULL_RANDOM_BYTES = 32;

export function isC3rFingerprint(cell: unknown): cell is string {
  return typeof cell === 'string' && cell.startsWith(C3R_FINGERPRINT_PREFIX);
}

/** C3R tells a fingerprint cell by the "hmac:" descriptor after the two-digit version. */
export function looksC3rFingerprint(cell: string): boolean {
  return cell.length >= 8 && cell[2] === ':' && cell.startsWith('hmac:', 3);
}

/**
 * The fingerprint of a value already in fingerprint form (or of a NULL of that type), with the
 * column's HMAC key.
 */
export function fingerprintWithKey(key: Buffer, value: Buffer | null, type: C3rDataType): string {
  const hmac = createHmac('sha256', key);
  hmac.update(value ?? randomBytes(NULL_RANDOM_BYTES));
  hmac.update(Buffer.of(descriptorByte(type, value === null)));
  // Always 52 characters, far under the per-cell limit C3R checks.
  return C3R_FINGERPRINT_PREFIX + hmac.digest('base64');
}

export interface FingerprintOptions {
  readonly keys: C3rKeys;
  /** The output column's (normalized) header: it selects the HMAC key. */
  readonly columnLabel: string;
  readonly allowJoinsOnColumnsWithDifferentNames?: boolean;
  /** A NULL stays NULL (the result is null) instead of becoming a random fingerprint. */
  readonly preserveNulls?: boolean;
  /** The column's type, for a NULL value (default string, as in CSV). */
  readonly type?: C3rDataType;
}

/** Fingerprints one cell as C3R would. A plain string is a STRING value. */
export function fingerprintC3rCell(value: C3rValue | string | null, options: FingerprintOptions): string | null {
  const typed = typeof value === 'string' ? c3rString(value) : value;
  if (typed === null && options.preserveNulls === true) return null;
  const key = deriveFingerprintKey(options.keys, options.columnLabel, options.allowJoinsOnColumnsWithDifferentNames ?? false);
  if (typed === null) return fingerprintWithKey(key, null, fingerprintType(options.type ?? 'string'));
  const form = toFingerprintForm(typed);
  return fingerprintWithKey(key, valueBytes(form), form.type);
}
