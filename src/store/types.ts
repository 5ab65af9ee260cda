import type { PrivacyCost } from '../dp/index.js';

/**
 * Persistence interfaces. Every method is async so that a PostgreSQL implementation can satisfy
 * the same interfaces; every implementation must pass test/store/contract.ts.
 */

/** One version of a collaboration's agreement, addressed by the hash of its canonical JSON. */
export interface AgreementRecord {
  /** `sha256:<64 hex>`. */
  hash: string;
  collaborationId: string;
  version: number;
  /** Hash of the version this one replaces; null for the first version. */
  previous: string | null;
  /** The agreement JSON; stored as canonical JSON text, so key order is not preserved. */
  document: Record<string, unknown>;
  /** Party id of the proposer. */
  proposedBy: string;
  /** RFC 3339. */
  createdAt: string;
}

export interface SignatureRecord {
  agreementHash: string;
  partyId: string;
  /** base64url. */
  signature: string;
  /** RFC 3339; listings sort on this text, so callers should write one format (UTC). */
  signedAt: string;
}

/** A transparency-log leaf to append: its bytes, their RFC 9162 leaf hash, and what it is about. */
export interface LogAppend {
  data: Uint8Array;
  leafHash: Uint8Array;
  collaborationId: string | null;
  type: string;
}

export interface LogEntryRecord extends LogAppend {
  index: number;
}

export interface CheckpointRecord {
  size: number;
  root: Uint8Array;
  /** The signed note (C2SP tlog-checkpoint signed by the log key). */
  note: string;
  createdAt: string;
}

export interface CosignatureRecord {
  size: number;
  /** The witness's party id. */
  witness: string;
  /** The `— name base64` note signature line (C2SP tlog-cosignature). */
  line: string;
  createdAt: string;
}

export interface LogRepository {
  /**
   * Appends leaves at the next indexes in one durable transaction and returns the first index.
   * Indexes are dense and assigned in call order.
   */
  append(entries: readonly LogAppend[]): Promise<number>;
  size(): Promise<number>;
  /** Leaf hashes of [from, to), in index order. */
  leafHashes(from: number, to: number): Promise<Uint8Array[]>;
  /** Entries of [from, to), in index order. */
  entries(from: number, to: number): Promise<LogEntryRecord[]>;
  entry(index: number): Promise<LogEntryRecord | undefined>;
  /** Every entry about one of these collaborations, in index order. */
  entriesOf(collaborationIds: readonly string[]): Promise<LogEntryRecord[]>;
  /** Throws MalusError('conflict') when a checkpoint of that size exists. */
  saveCheckpoint(checkpoint: CheckpointRecord): Promise<void>;
  latestCheckpoint(): Promise<CheckpointRecord | undefined>;
  /** The smallest checkpoint whose size is at least `size`. */
  checkpointCovering(size: number): Promise<CheckpointRecord | undefined>;
  listCheckpoints(): Promise<CheckpointRecord[]>;
  /** 'duplicate' when this witness already cosigned this size. Throws not-found for an unknown size. */
  addCosignature(cosignature: CosignatureRecord): Promise<'added' | 'duplicate'>;
  cosignatures(size: number): Promise<CosignatureRecord[]>;
}

export interface InsertAgreementInput {
  agreement: AgreementRecord;
  /** Party ids of this version's members; repeats are stored once. */
  members: readonly string[];
  /** The proposer's signature; its agreementHash must be agreement.hash. */
  signature: SignatureRecord;
  /** Log entries appended in the same transaction: the decision and its record land together. */
  events?: readonly LogAppend[];
}

export interface CollaborationRepository {
  /**
   * Atomically inserts a new agreement version, its member party ids and the proposer's signature.
   * Throws MalusError('conflict') if the hash exists or (collaborationId, version) exists, and
   * MalusError('invalid-input') if the signature is over another hash. Nothing is written on error.
   */
  insertAgreement(input: InsertAgreementInput): Promise<void>;
  getAgreement(hash: string): Promise<AgreementRecord | undefined>;
  /** All versions of one collaboration, ordered by version ascending; [] when unknown. */
  listVersions(collaborationId: string): Promise<AgreementRecord[]>;
  /**
   * 'added', or 'duplicate' when this party already signed this hash (the stored signature is
   * kept). Throws MalusError('not-found') if the agreement hash is unknown. The events are appended
   * to the log in the same transaction, and only when the signature is added.
   */
  addSignature(signature: SignatureRecord, events?: readonly LogAppend[]): Promise<'added' | 'duplicate'>;
  /** Signatures over one hash, ordered by signedAt then partyId; [] when unknown. */
  listSignatures(agreementHash: string): Promise<SignatureRecord[]>;
  /** Ids of the collaborations in which the party is a member of any version, sorted, no repeats. */
  listCollaborationIds(partyId: string): Promise<string[]>;
  /** Whether the party is a member of any version of the collaboration. */
  isMember(collaborationId: string, partyId: string): Promise<boolean>;
}

export interface NonceRepository {
  /**
   * Records (keyId, nonce) until expiresAt; returns false if that pair is already recorded and not
   * expired (a replay). A row counts as expired once expiresAt <= now. Atomic under concurrency.
   * Prunes expired rows opportunistically. Throws MalusError('invalid-input') for an invalid Date
   * or an expiresAt not after now (such a record would protect nothing).
   */
  remember(keyId: string, nonce: string, expiresAt: Date, now: Date): Promise<boolean>;
}

/** A single-use attestation challenge a key-release service (or the worker registry) issued. */
export interface ChallengeRecord {
  /** base64url of 32 random bytes. */
  challenge: string;
  /** What it may be used for: `release` or `registration`. */
  purpose: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** A data key as a key-release service keeps it: wrapped under the master key, never plain. */
export interface DatasetKeyRecord {
  datasetId: string;
  collaborationId: string;
  table: string;
  owner: string;
  /** The DEK wrapped under the master key (AES-256-GCM; the AAD binds dataset, collaboration, owner). */
  wrappedKey: Uint8Array;
  /** `sha256:<hex>` commitment to the key (docs/key-release.md): a repeated registration is recognised. */
  keyCommitment: string;
  /** The active agreement the owner registered the key under: releases need an agreement that descends from it. */
  agreementHash: string;
  createdAt: string;
}

export interface KeyRepository {
  /**
   * Issues a challenge. Pruning of expired ones is opportunistic.
   */
  issueChallenge(challenge: ChallengeRecord): Promise<void>;
  /**
   * Marks a challenge used and returns it; undefined when unknown, already used, of another
   * purpose, or expired at `now`. Atomic: two callers presenting one challenge, one wins.
   */
  consumeChallenge(challenge: string, purpose: string, now: Date): Promise<ChallengeRecord | undefined>;
  /**
   * Stores a data key with its log events in one transaction. Dataset ids are scoped to their
   * collaboration. 'duplicate' when the same dataset was registered with the same key commitment (nothing is written); throws
   * MalusError('conflict') for a different key under the same dataset id.
   */
  putKey(record: DatasetKeyRecord, events?: readonly LogAppend[]): Promise<'added' | 'duplicate'>;
  /** The keys of these datasets of one collaboration that exist, in the order asked. */
  keysOf(collaborationId: string, datasetIds: readonly string[]): Promise<DatasetKeyRecord[]>;
  /** Every key of a collaboration, sorted by dataset id. */
  listKeys(collaborationId: string): Promise<DatasetKeyRecord[]>;
}

/** An uploaded dataset the control plane holds: its file is complete, hashed and checked against its manifest. */
export interface DatasetRecord {
  collaborationId: string;
  datasetId: string;
  table: string;
  /** Party id of the table's owner, who signed the manifest. */
  owner: string;
  /** The agreement the dataset was prepared under (`sha256:<hex>`). */
  agreementHash: string;
  schemaHash: string;
  /** SHA-256 of the file's header bytes. */
  headerHash: string;
  rows: number;
  /** Size of the encrypted file. */
  bytes: number;
  /** `sha256:<hex>` of the encrypted file. */
  ciphertextSha256: string;
  keyCommitment: string;
  /** The owner-signed manifest (`{ manifest, signature }`) as uploaded. */
  manifest: Record<string, unknown>;
  createdAt: string;
}

/** An upload in progress: the manifest it is for and how many bytes of the file have arrived. */
export interface DatasetUploadRecord {
  collaborationId: string;
  datasetId: string;
  /** The owner-signed manifest (`{ manifest, signature }`). */
  manifest: Record<string, unknown>;
  /** Party id of the owner (the manifest's signer): only it may continue the upload. */
  owner: string;
  bytesExpected: number;
  bytesReceived: number;
  startedAt: string;
}

export interface DatasetRepository {
  get(collaborationId: string, datasetId: string): Promise<DatasetRecord | undefined>;
  /** Every dataset of a collaboration, sorted by dataset id. */
  list(collaborationId: string): Promise<DatasetRecord[]>;
  getUpload(collaborationId: string, datasetId: string): Promise<DatasetUploadRecord | undefined>;
  /** Every upload in progress, of every collaboration, without its manifest: what the server has promised disk for. */
  pendingUploads(): Promise<Omit<DatasetUploadRecord, 'manifest'>[]>;
  /**
   * Starts an upload, or replaces the pending one under the same dataset id (its bytes received are
   * the record's). Throws MalusError('conflict') when a complete dataset has this id.
   */
  putUpload(upload: DatasetUploadRecord): Promise<void>;
  /**
   * Moves a pending upload's bytes received from `from` to `to`; false (nothing written) when there
   * is no such upload or it is not at `from`. Atomic: of two callers at one offset, one moves it.
   */
  advanceUpload(collaborationId: string, datasetId: string, from: number, to: number): Promise<boolean>;
  /** Forgets a pending upload (its owner gave it up); false when there was none. */
  abandonUpload(collaborationId: string, datasetId: string): Promise<boolean>;
  /**
   * Records a complete dataset, removes its pending upload and appends the log events, in one
   * transaction. 'duplicate' (nothing written) when the dataset exists with the same ciphertext hash;
   * throws MalusError('conflict') when it exists with another.
   */
  complete(record: DatasetRecord, events?: readonly LogAppend[]): Promise<'added' | 'duplicate'>;
}

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface JobRecord {
  /** `job-<32 hex>`. */
  id: string;
  collaborationId: string;
  agreementHash: string;
  kind: string;
  /** The job's parameters as JSON (datasets, and whatever its kind needs). */
  spec: Record<string, unknown>;
  datasets: string[];
  /** Measurements of the agreement's enclave policy: only workers with one of these may take the job. */
  measurements: string[];
  state: JobState;
  submittedBy: string;
  workerId: string | null;
  /** The enclave-signed result statement (JSON), once the job ended well. */
  result: Record<string, unknown> | null;
  error: string | null;
  /**
   * Log index of the first event appended with the finish (its `job.finished` entry): receipts
   * point at it. Null until the job ends, and for jobs that ended before the store kept it.
   * Ignored by create.
   */
  finishedEntry?: number | null;
  createdAt: string;
  updatedAt: string;
}

/** A row of the privacy accountant: what a job was charged, or given back, from one budget period. */
export interface PrivacyChargeRecord {
  collaborationId: string;
  jobId: string;
  kind: 'charge' | 'refund';
  /** Party id of the analyst who submitted the job. */
  analyst: string;
  /** The budget period it counts against (`budgetPeriod` of src/dp); a refund keeps its charge's. */
  period: string;
  /** Exact rational texts. */
  cost: PrivacyCost;
  /** Log index of its privacy.charged or privacy.refunded entry. */
  entry: number;
  createdAt: string;
}

/** What a job is charged as it is queued, and the budgets the charge must fit. */
export interface PrivacyChargeInput {
  analyst: string;
  period: string;
  cost: PrivacyCost;
  /** The collaboration's budget for a period. */
  budget: PrivacyCost;
  /** The analyst's own budget, when the agreement gives it one. */
  analystBudget?: PrivacyCost;
  /** Its privacy.charged entry, appended after the job's events. */
  event: LogAppend;
}

/** The idempotency key a submission came with, and the SHA-256 of its body. */
export interface JobRequest {
  key: string;
  fingerprint: string;
}

export interface JobRepository {
  /**
   * Inserts a queued job with its log events in one transaction and returns it. With a charge, the
   * same transaction (IMMEDIATE: every writer waits) sums the period's charges minus refunds, of the
   * collaboration and of the analyst, and refuses with MalusError('budget-exhausted') when the
   * charge does not fit, writing nothing; else it records the charge and appends its event.
   * With a request, a key the submitter already used in the collaboration writes nothing: for the
   * same fingerprint it returns the job that key queued, for another it refuses with
   * MalusError('idempotency-key-reused').
   */
  create(job: JobRecord, events?: readonly LogAppend[], charge?: PrivacyChargeInput, request?: JobRequest): Promise<JobRecord>;
  /**
   * The job a submitter's idempotency key queued in a collaboration, or undefined when the key is
   * new; refuses with MalusError('idempotency-key-reused') when it came with another fingerprint.
   */
  byRequest(collaborationId: string, submittedBy: string, request: JobRequest): Promise<JobRecord | undefined>;
  get(id: string): Promise<JobRecord | undefined>;
  /**
   * Gives the oldest queued job whose measurements include the worker's to that worker (state
   * running) and returns it; undefined when there is none. Atomic: a job goes to one worker.
   * `events` makes the log entries of the claim from the job taken; they are appended in the same
   * transaction (and nothing when no job is taken). A job this worker already holds is returned
   * again, before any other and without entries: its first claim's answer was lost.
   */
  claim(
    workerId: string,
    measurement: string,
    now: Date,
    events?: (job: JobRecord) => readonly LogAppend[],
  ): Promise<JobRecord | undefined>;
  /**
   * Ends a running job held by this worker, with its log events, in one transaction; the job's
   * finishedEntry becomes the index of the first event (null without events). Throws
   * MalusError('conflict') when the job is not running or is held by another worker. With
   * `refund`, a failed job's charge (if it has one not yet refunded) is given back in the same
   * transaction, its privacy.refunded entry made by `refund` from the charge.
   */
  finish(
    id: string,
    workerId: string,
    outcome: { state: 'succeeded'; result: Record<string, unknown> } | { state: 'failed'; error: string },
    now: Date,
    events?: readonly LogAppend[],
    refund?: (charge: PrivacyChargeRecord) => LogAppend,
  ): Promise<JobRecord>;
  /**
   * Fails every running job whose worker was last seen before `cutoff` (or is no longer
   * registered), with `error` and the log events `events` makes for it, each in the transaction
   * that ends it; a charge is kept (the worker may have read the data). Returns the jobs it ended.
   */
  expire(cutoff: Date, error: string, now: Date, events: (job: JobRecord) => readonly LogAppend[]): Promise<JobRecord[]>;
  /**
   * Ends a queued job its submitter no longer wants (state failed, with `error`), with its log
   * events, and gives its charge back (privacy.refunded made by `refund`), in one transaction.
   * Throws MalusError('conflict') when the job is not queued or was submitted by someone else.
   */
  cancel(
    id: string,
    submittedBy: string,
    error: string,
    now: Date,
    events: readonly LogAppend[],
    refund: (charge: PrivacyChargeRecord) => LogAppend,
  ): Promise<JobRecord>;
  /** Jobs of a collaboration, newest first. */
  list(collaborationId: string): Promise<JobRecord[]>;
  /** The accountant's rows of a collaboration (of one period, when given), in log order. */
  charges(collaborationId: string, period?: string): Promise<PrivacyChargeRecord[]>;
}

/** An enclave worker as it registered: its keys and the measurement its verified evidence showed. */
export interface WorkerRecord {
  /** base64url Ed25519 key the worker signs requests and results with. */
  id: string;
  platform: string;
  measurement: string;
  /** base64url X25519 key that data keys are sealed to. */
  encryptionKey: string;
  /** `sha256:<hex>` of the registration evidence. */
  evidenceHash: string;
  /**
   * The registration as received, base64url: evidence, certificates and the challenge it bound.
   * Job receipts carry them so that anyone can appraise the enclave again. Null for workers that
   * registered before the store kept them.
   */
  evidence: string | null;
  certificates: string[] | null;
  challenge: string | null;
  registeredAt: string;
  lastSeenAt: string;
}

export interface WorkerRepository {
  /** Inserts or refreshes a worker. */
  upsert(worker: WorkerRecord): Promise<void>;
  get(id: string): Promise<WorkerRecord | undefined>;
  /** Records that the worker polled. */
  touch(id: string, now: Date): Promise<void>;
  list(): Promise<WorkerRecord[]>;
}

/** A relayed computation without an enclave (PSI or secure aggregation): who takes part, under which terms. */
export interface RelayRunRecord {
  /** `run-<32 hex>`. */
  id: string;
  collaborationId: string;
  kind: 'psi' | 'secagg';
  /** The computation's name in the agreement. */
  computation: string;
  /** The PSI mode; null for secure aggregation. */
  mode: string | null;
  /** The active agreement the run started under. */
  agreementHash: string;
  /** Party ids of everyone who may send and receive in the run. */
  parties: string[];
  /** The run's parameters as logged in its run.started entry. */
  parameters: Record<string, unknown>;
  state: 'open' | 'finished' | 'failed';
  startedBy: string;
  /** The summary its run.finished entry logged; null while open. */
  summary: Record<string, unknown> | null;
  finishedBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  /** What the relay holds for the run, counted by the store. Ignored by createRun. */
  relayed?: { messages: number; bytes: number };
}

/** One opaque message of a run, from one party to another or to all ('*'); never overwritten. */
export interface RelayMessageRecord {
  collaborationId: string;
  runId: string;
  /** The message's place in the run, in the order the relay received them (0, 1, …); assigned by postMessage. */
  seq: number;
  sender: string;
  /** A party id, or '*' for every other party of the run. */
  recipient: string;
  step: number;
  data: Uint8Array;
  /** `sha256:<hex>` of data. */
  sha256: string;
  createdAt: string;
}

export interface RelayRepository {
  /** Records an open run with its log events in one transaction; MalusError('conflict') when the id exists. */
  createRun(run: RelayRunRecord, events?: readonly LogAppend[]): Promise<void>;
  getRun(collaborationId: string, runId: string): Promise<RelayRunRecord | undefined>;
  /** The runs of a collaboration, newest first. */
  listRuns(collaborationId: string): Promise<RelayRunRecord[]>;
  /**
   * Stores a message of an open run (its seq is the run's next, its sha256 the store's own), with its log events, in one
   * transaction. A message is keyed by (run, sender, recipient, step) and never replaced: the same
   * bytes again are `added: false` (nothing written, whatever the run's state); other bytes are
   * MalusError('conflict'), as is any new message to a run that is not open. Throws not-found for an
   * unknown run, invalid-input for a sender or recipient outside the run.
   */
  postMessage(
    message: Omit<RelayMessageRecord, 'seq' | 'sha256'>,
    events?: readonly LogAppend[],
  ): Promise<{ added: boolean; message: RelayMessageRecord }>;
  /**
   * The messages of a run for `recipient` (addressed to it or to '*', sent by another party) after a
   * cursor: step > after, or step = after and seq > afterSeq. In (step, seq) order, as many as fit in
   * `maxBytes` of data (at least one); `more` when others follow.
   */
  messagesFor(
    collaborationId: string,
    runId: string,
    recipient: string,
    cursor: { after: number; afterSeq?: number },
    maxBytes: number,
  ): Promise<{ messages: RelayMessageRecord[]; more: boolean }>;
  /**
   * Ends an open run, with the events `events` makes from it and the relay's totals, in one
   * transaction. Throws not-found for an unknown run and MalusError('conflict') when it is not open.
   */
  finishRun(
    collaborationId: string,
    runId: string,
    finish: { state: 'finished' | 'failed'; by: string; summary: Record<string, unknown>; now: Date },
    events?: (run: RelayRunRecord, relayed: { messages: number; bytes: number }) => readonly LogAppend[],
  ): Promise<RelayRunRecord>;
}

export interface Store {
  readonly collaborations: CollaborationRepository;
  readonly nonces: NonceRepository;
  readonly log: LogRepository;
  readonly keys: KeyRepository;
  readonly jobs: JobRepository;
  readonly workers: WorkerRepository;
  readonly datasets: DatasetRepository;
  readonly relay: RelayRepository;
  /** Idempotent. Any later call on a repository rejects with MalusError('store-failure'). */
  close(): Promise<void>;
}

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:'. */
  path: string;
}
