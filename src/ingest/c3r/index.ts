// AWS Clean Rooms C3R (Cryptographic Computing for Clean Rooms) 2.x compatibility: read C3R
// schemas, encrypt files C3R can decrypt, decrypt files C3R encrypted, and single cells either way.
// The byte layouts are described in docs/c3r.md and next to the code that writes them.
export { C3R_COLUMN_TYPES, C3R_MAX_COLUMNS, C3R_MAX_PAD_LENGTH, C3R_PAD_TYPES, parseC3rSchema, toC3rSchema } from './schema.js';
export type { C3rColumnSchema, C3rColumnType, C3rPad, C3rPadType, C3rSchema } from './schema.js';
export { C3R_DEFAULT_SETTINGS, c3rSettings, checkSchemaAgainstSettings, type C3rSettings } from './settings.js';
export {
  C3R_SECRET_MIN_BYTES,
  deriveC3rKeys,
  normalizeCollaborationId,
  parseC3rSharedSecret,
  type C3rKeys,
} from './keys.js';
export { C3R_MAX_CELL_BYTES, C3R_MAX_PADDED_BYTES, C3R_SEALED_PREFIX, isC3rSealed, sealC3rCell, unsealC3rCell, type SealOptions } from './sealed.js';
export { C3R_FINGERPRINT_PREFIX, fingerprintC3rCell, isC3rFingerprint, type FingerprintOptions } from './fingerprint.js';
export { c3rString, type C3rDataType, type C3rValue } from './values.js';
export { C3R_FILE_FORMATS, type C3rFileFormat } from './input.js';
export {
  c3rDecryptFile,
  c3rEncryptFile,
  type C3rDecryptOptions,
  type C3rDecryptSummary,
  type C3rEncryptOptions,
  type C3rEncryptSummary,
} from './transform.js';
