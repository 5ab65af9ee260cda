// Data in: the encrypted dataset format, its signed manifest, dataset preparation on the
// provider's machine, loading inside the enclave, and AWS Clean Rooms C3R compatibility.
export {
  CHUNK_BYTES,
  DATASET_FORMAT,
  DATASET_ID_PATTERN,
  DATA_KEY_BYTES,
  datasetHeaderSchema,
  datasetSealer,
  encodeHeader,
  newDatasetHeader,
  openDataset,
  parseDatasetHeader,
  type DatasetHeader,
  type DatasetHeaderFields,
} from './format/container.js';
export {
  MANIFEST_FORMAT,
  MANIFEST_REASON_CODES,
  manifestSchema,
  signManifest,
  signedManifestSchema,
  tableSchemaHash,
  verifyManifest,
  type DatasetManifest,
  type ManifestReason,
  type SignedManifest,
} from './format/manifest.js';
export {
  SEALED_DATA_KEY_FORMAT,
  openOwnerDataKey,
  sealDataKeyForOwner,
  sealedDataKeySchema,
  type SealedDataKey,
} from './format/key-at-rest.js';
export { DATASET_FILES } from './format/files.js';
export { PAYLOAD_COMPRESSIONS, prepareDataset, type PayloadCompression, type PrepareParameters, type PreparedDataset } from './prepare/prepare.js';
export { syncPath } from './sync.js';
export { CSV_ENCODINGS, INPUT_FORMATS, MAX_LINE_BYTES, inferFormat, type CsvDialect, type CsvEncoding, type InputFormat } from './prepare/read.js';
export { JOIN_SECRET_BYTES, deriveJoinKey, joinKeyCommitment, parseJoinSecret, pseudonym } from './prepare/join-key.js';
export { SHOWN_PROBLEMS } from './prepare/problems.js';
export { readSetColumn, type SetColumn, type SetColumnParameters } from './prepare/set-column.js';
export { DEFAULT_MEMORY_DIR } from './memory-dir.js';
export { loadDataset, type LoadParameters, type LoadedDataset } from './load.js';
export { ident, literal, openIngestDb, type IngestDb } from './duckdb.js';
export {
  C3R_FILE_FORMATS,
  C3R_FINGERPRINT_PREFIX,
  C3R_SEALED_PREFIX,
  c3rDecryptFile,
  c3rEncryptFile,
  c3rSettings,
  deriveC3rKeys,
  fingerprintC3rCell,
  isC3rFingerprint,
  isC3rSealed,
  parseC3rSchema,
  parseC3rSharedSecret,
  sealC3rCell,
  unsealC3rCell,
  type C3rDecryptOptions,
  type C3rDecryptSummary,
  type C3rEncryptOptions,
  type C3rEncryptSummary,
  type C3rFileFormat,
  type C3rKeys,
  type C3rSchema,
  type C3rSettings,
} from './c3r/index.js';
