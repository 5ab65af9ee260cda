export type {
  AgreementRecord,
  CheckpointRecord,
  CollaborationRepository,
  CosignatureRecord,
  InsertAgreementInput,
  LogAppend,
  LogEntryRecord,
  LogRepository,
  NonceRepository,
  SignatureRecord,
  SqliteStoreOptions,
  Store,
} from './types.js';
export { openSqliteStore } from './sqlite/open.js';
export { STORE_SCHEMA_VERSION } from './sqlite/migrations.js';
