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

export interface InsertAgreementInput {
  agreement: AgreementRecord;
  /** Party ids of this version's members; repeats are stored once. */
  members: readonly string[];
  /** The proposer's signature; its agreementHash must be agreement.hash. */
  signature: SignatureRecord;
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
   * kept). Throws MalusError('not-found') if the agreement hash is unknown.
   */
  addSignature(signature: SignatureRecord): Promise<'added' | 'duplicate'>;
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

export interface Store {
  readonly collaborations: CollaborationRepository;
  readonly nonces: NonceRepository;
  /** Idempotent. Any later call on a repository rejects with MalusError('store-failure'). */
  close(): Promise<void>;
}

export interface SqliteStoreOptions {
  /** Path of the database file, or ':memory:'. */
  path: string;
}
