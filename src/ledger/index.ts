// The transparency log, pure: RFC 9162 hashing and proofs, an in-memory tree, C2SP signed notes,
// checkpoints, cosignatures and tiles, Malus log entries and receipts. No I/O.
export { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash, rootFromLeafHashes, verifyConsistency, verifyInclusion, type ProofFailure, type ProofResult } from './merkle.js';
export { MerkleTree } from './tree.js';
export {
  TILE_HEIGHT,
  TILE_WIDTH,
  decodeEntryBundle,
  encodeEntryBundle,
  encodeTileIndex,
  entriesPath,
  parseTilePath,
  tilePath,
  tilesForSize,
} from './tiles.js';
export {
  ed25519NoteSigner,
  ed25519NoteVerifier,
  noteKeyId,
  parseNote,
  parseVerifierKey,
  signNote,
  verifierKeyString,
  verifyNote,
  type NoteSigner,
  type NoteVerifier,
  type ParsedNote,
} from './note.js';
export { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint } from './checkpoint.js';
export { addCosignatures, cosignatureLine, cosignatureSigner, cosignatureVerifier } from './cosignature.js';
export {
  EVENT_FORMAT,
  EVENT_TYPES,
  PSI_RUN_MODES,
  RUN_KINDS,
  decodeEvent,
  encodeEvent,
  eventSchema,
  psiRunOptionsSchema,
  runParametersSchema,
  runSummarySchema,
  type EventType,
  type LogEvent,
} from './entries.js';
export { RECEIPT_FORMAT, buildReceipt, receiptSchema, verifyReceipt, type Receipt, type ReceiptPolicy, type ReceiptStep, type ReceiptVerdict } from './receipt.js';
export { partyIdOfWitness, witnessName } from './witness.js';
