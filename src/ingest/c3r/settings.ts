// The collaboration's cryptographic computing settings, and the checks C3R makes with them.
// In AWS Clean Rooms these are fixed when the collaboration is created; C3R's CLI fetches them
// from the Clean Rooms API. Malus takes them as arguments. Every one defaults to false, C3R's
// "high assurance" mode.
import { MalusError } from '../../errors/index.js';
import type { C3rSchema } from './schema.js';

export interface C3rSettings {
  /** Cleartext columns may appear in the encrypted table. */
  readonly allowCleartext: boolean;
  /** A fingerprint column may hold the same value more than once. */
  readonly allowDuplicates: boolean;
  /** Fingerprints of equal values match across columns of different names (one HMAC key for all columns). */
  readonly allowJoinsOnColumnsWithDifferentNames: boolean;
  /** NULL stays NULL in sealed and fingerprint columns instead of being encrypted. */
  readonly preserveNulls: boolean;
}

export const C3R_DEFAULT_SETTINGS: C3rSettings = {
  allowCleartext: false,
  allowDuplicates: false,
  allowJoinsOnColumnsWithDifferentNames: false,
  preserveNulls: false,
};

export function c3rSettings(partial: Partial<C3rSettings> = {}): C3rSettings {
  return { ...C3R_DEFAULT_SETTINGS, ...partial };
}

/** C3R refuses a schema with cleartext columns unless the collaboration allows cleartext. */
export function checkSchemaAgainstSettings(schema: C3rSchema, settings: C3rSettings): void {
  if (settings.allowCleartext) return;
  const cleartext = schema.columns.filter((c) => c.type === 'cleartext').map((c) => `\`${c.targetHeader}\``);
  if (cleartext.length > 0) {
    throw new MalusError(
      'invalid-input',
      `the schema has cleartext columns (${cleartext.join(', ')}) but the collaboration does not allow cleartext (pass --allowCleartext if it does)`,
    );
  }
}

/** Where a fingerprint column breaks the duplicate rule: the rows (zero-based) of the first repeat. */
export interface DuplicateFinding {
  readonly kind: 'null' | 'value';
  readonly firstRow: number;
  readonly secondRow: number;
}

/**
 * Applies C3R's duplicate rule to one fingerprint column. `keys` holds one entry per row: a string
 * that is equal exactly when two fingerprints would be equal (the value in its fingerprint form),
 * or null for NULL. Without allowDuplicates a value may not repeat; and unless preserveNulls keeps
 * NULLs as NULL, a second NULL is also a repeat (C3R checks NULLs separately because SQL's UNIQUE
 * does not count them, while each encrypted NULL becomes a random fingerprint).
 */
export function findFingerprintDuplicate(keys: readonly (string | null)[], settings: C3rSettings): DuplicateFinding | undefined {
  if (settings.allowDuplicates) return undefined;
  const firstSeen = new Map<string, number>();
  let firstNull: number | undefined;
  for (let row = 0; row < keys.length; row++) {
    const key = keys[row];
    if (key === null || key === undefined) {
      if (settings.preserveNulls) continue;
      if (firstNull !== undefined) return { kind: 'null', firstRow: firstNull, secondRow: row };
      firstNull = row;
      continue;
    }
    const earlier = firstSeen.get(key);
    if (earlier !== undefined) return { kind: 'value', firstRow: earlier, secondRow: row };
    firstSeen.set(key, row);
  }
  return undefined;
}
