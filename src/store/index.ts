export type {
  AgreementRecord,
  ChallengeRecord,
  CheckpointRecord,
  CollaborationRepository,
  CosignatureRecord,
  DatasetKeyRecord,
  InsertAgreementInput,
  JobRecord,
  JobRepository,
  JobState,
  KeyRepository,
  LogAppend,
  LogEntryRecord,
  LogRepository,
  NonceRepository,
  SignatureRecord,
  SqliteStoreOptions,
  Store,
  WorkerRecord,
  WorkerRepository,
} from './types.js';
export { openSqliteStore } from './sqlite/open.js';
export { STORE_SCHEMA_VERSION } from './sqlite/migrations.js';
