import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';

/*
 * Tables (all STRICT, so SQLite refuses values of the wrong type instead of coercing them):
 *
 * schema_migrations  One row per applied migration: version, applied_at (RFC 3339). The highest
 *                    version is the schema version of the file.
 * agreements         One row per agreement version. hash (sha256:<hex>) is the primary key;
 *                    (collaboration_id, version) is unique; previous is the replaced version's
 *                    hash or NULL; document is the canonical JSON text the hash was taken over;
 *                    proposed_by is a party id; created_at is RFC 3339.
 * agreement_members  Which party ids are members of which agreement version. Membership is kept
 *                    per version so that the history of who belonged when is never rewritten.
 * signatures         One signature per (agreement_hash, party_id): the base64url signature and
 *                    signed_at. The first signature a party gives is kept.
 * nonces             Request nonces seen per signing key until expires_at (ms since the epoch),
 *                    for replay protection. Rows past expiry are pruned as new nonces arrive.
 * log_entries       The transparency log's leaves: idx (0-based leaf index, dense), leaf_hash
 *                    (RFC 9162 leaf hash of data), data (the canonical event JSON), and the
 *                    collaboration_id and type it is about, so a party can read its own entries.
 * log_checkpoints    Every signed checkpoint: size, root, the signed note, created_at.
 * log_cosignatures   Witness cosignatures per checkpoint size: witness (party id) and the
 *                    tlog-cosignature note line.
 *
 * key_challenges    Single-use attestation challenges: challenge (base64url), purpose, issued_at and
 *                    expires_at (ms since the epoch), used_at (ms, NULL until used).
 * dataset_keys       Data keys held by the key-release service, wrapped under its master key, one
 *                    per (collaboration_id, dataset_id): table_name, owner, wrapped_key, key_commitment.
 * jobs               The job queue: kind, spec (JSON), datasets (JSON), measurements the job accepts
 *                    (JSON), state, the worker holding it, and the signed result or the error.
 *                    finished_entry is the log index of the job's job.finished entry (version 5;
 *                    NULL before the job ends, and for jobs that ended before version 5).
 * workers            Registered enclave workers: signing key (id), platform, measurement,
 *                    encryption key, evidence hash, registration and last poll times; since
 *                    version 5 also the registration as received (evidence, certificates as a
 *                    JSON array, challenge; base64url; NULL for workers registered before).
 *
 * datasets           Uploaded datasets, one per (collaboration_id, dataset_id), written only once the
 *                    encrypted file is complete, hashed and in place: table_name, owner, the hashes
 *                    and counts of the manifest, and the signed manifest itself (manifest_json).
 * dataset_uploads    Uploads in progress, same key: the signed manifest, the owner, bytes_expected
 *                    and bytes_received. A row is deleted in the transaction that writes its dataset.
 *
 * privacy_charges    The privacy accountant (version 6): one 'charge' row per job charged and at
 *                    most one 'refund' row (primary key job_id, kind), with the collaboration, the
 *                    analyst (party id), the budget period key (all, YYYY-MM-DD or YYYY-MM), the
 *                    amounts as exact rational text (epsilon, rho, delta; NULL when not spent), the
 *                    log index of its privacy.* entry and created_at. Spent = charges - refunds of
 *                    a period; rows are written in the transaction of the job they are about.
 *
 * job_requests       Idempotency keys of job submissions (version 8): one row per (collaboration_id,
 *                    submitted_by, request_key), with the SHA-256 fingerprint of the body it came
 *                    with, the job it queued (job_id, unique) and created_at; written in the
 *                    transaction that queues the job.
 * relay_runs         Relayed computations without an enclave (version 7): id (run-<32 hex>), the
 *                    collaboration, kind (psi or secagg), the agreement's computation name, the PSI
 *                    mode (NULL for secagg), the agreement hash it started under, the parties and
 *                    the logged parameters (JSON), state (open, finished or failed), who started and
 *                    who finished it, the logged summary (JSON, NULL while open), created_at and
 *                    finished_at. seq orders the runs.
 * relay_messages     The opaque messages of a run: its seq (0, 1, … per run, in arrival order), the
 *                    collaboration, sender, recipient (a party id or '*'), step, size, sha256 and
 *                    the bytes (last, so that reading the other columns never walks a large value's
 *                    overflow pages). (run_id, sender, recipient, step) is unique: a message is
 *                    never overwritten.
 *
 * Rows in agreements, agreement_members, signatures, privacy_charges, relay_messages and the log
 * tables are never updated or deleted: they are append-only evidence.
 */

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'agreements, members, signatures and nonces',
    sql: `
      CREATE TABLE agreements (
        hash             TEXT    NOT NULL PRIMARY KEY,
        collaboration_id TEXT    NOT NULL,
        version          INTEGER NOT NULL,
        previous         TEXT,
        document         TEXT    NOT NULL,
        proposed_by      TEXT    NOT NULL,
        created_at       TEXT    NOT NULL,
        UNIQUE (collaboration_id, version)
      ) STRICT;

      CREATE TABLE agreement_members (
        agreement_hash TEXT NOT NULL REFERENCES agreements (hash),
        party_id       TEXT NOT NULL,
        PRIMARY KEY (agreement_hash, party_id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX agreement_members_by_party ON agreement_members (party_id, agreement_hash);

      CREATE TABLE signatures (
        agreement_hash TEXT NOT NULL REFERENCES agreements (hash),
        party_id       TEXT NOT NULL,
        signature      TEXT NOT NULL,
        signed_at      TEXT NOT NULL,
        PRIMARY KEY (agreement_hash, party_id)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE nonces (
        key_id     TEXT    NOT NULL,
        nonce      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, nonce)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX nonces_by_expiry ON nonces (expires_at);
    `,
  },
  {
    version: 2,
    description: 'transparency log: entries, checkpoints and cosignatures',
    sql: `
      CREATE TABLE log_entries (
        idx              INTEGER NOT NULL PRIMARY KEY,
        leaf_hash        BLOB    NOT NULL,
        data             BLOB    NOT NULL,
        collaboration_id TEXT,
        type             TEXT    NOT NULL
      ) STRICT;
      CREATE INDEX log_entries_by_collaboration ON log_entries (collaboration_id, idx);

      CREATE TABLE log_checkpoints (
        size       INTEGER NOT NULL PRIMARY KEY,
        root       BLOB    NOT NULL,
        note       TEXT    NOT NULL,
        created_at TEXT    NOT NULL
      ) STRICT;

      CREATE TABLE log_cosignatures (
        size       INTEGER NOT NULL REFERENCES log_checkpoints (size),
        witness    TEXT    NOT NULL,
        line       TEXT    NOT NULL,
        created_at TEXT    NOT NULL,
        PRIMARY KEY (size, witness)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    description: 'key release, jobs and workers',
    sql: `
      CREATE TABLE key_challenges (
        challenge  TEXT    NOT NULL PRIMARY KEY,
        purpose    TEXT    NOT NULL,
        issued_at  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX key_challenges_by_expiry ON key_challenges (expires_at);

      CREATE TABLE dataset_keys (
        dataset_id       TEXT NOT NULL,
        collaboration_id TEXT NOT NULL,
        table_name       TEXT NOT NULL,
        owner            TEXT NOT NULL,
        wrapped_key      BLOB NOT NULL,
        key_commitment  TEXT NOT NULL,
        agreement_hash   TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        PRIMARY KEY (collaboration_id, dataset_id)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE jobs (
        id               TEXT NOT NULL PRIMARY KEY,
        collaboration_id TEXT NOT NULL,
        agreement_hash   TEXT NOT NULL,
        kind             TEXT NOT NULL,
        spec             TEXT NOT NULL,
        datasets         TEXT NOT NULL,
        measurements     TEXT NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        submitted_by     TEXT NOT NULL,
        worker_id        TEXT,
        result           TEXT,
        error            TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        seq              INTEGER NOT NULL UNIQUE
      ) STRICT;
      CREATE INDEX jobs_by_state ON jobs (state, seq);
      CREATE INDEX jobs_by_collaboration ON jobs (collaboration_id, seq);

      CREATE TABLE workers (
        id             TEXT NOT NULL PRIMARY KEY,
        platform       TEXT NOT NULL,
        measurement    TEXT NOT NULL,
        encryption_key TEXT NOT NULL,
        evidence_hash  TEXT NOT NULL,
        registered_at  TEXT NOT NULL,
        last_seen_at   TEXT NOT NULL
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    description: 'uploaded datasets and uploads in progress',
    sql: `
      CREATE TABLE datasets (
        collaboration_id  TEXT    NOT NULL,
        dataset_id        TEXT    NOT NULL,
        table_name        TEXT    NOT NULL,
        owner             TEXT    NOT NULL,
        agreement_hash    TEXT    NOT NULL,
        schema_hash       TEXT    NOT NULL,
        header_hash       TEXT    NOT NULL,
        rows              INTEGER NOT NULL CHECK (rows >= 0),
        bytes             INTEGER NOT NULL CHECK (bytes > 0),
        ciphertext_sha256 TEXT    NOT NULL,
        key_commitment    TEXT    NOT NULL,
        manifest_json     TEXT    NOT NULL,
        created_at        TEXT    NOT NULL,
        PRIMARY KEY (collaboration_id, dataset_id)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE dataset_uploads (
        collaboration_id TEXT    NOT NULL,
        dataset_id       TEXT    NOT NULL,
        owner            TEXT    NOT NULL,
        manifest_json    TEXT    NOT NULL,
        bytes_expected   INTEGER NOT NULL CHECK (bytes_expected > 0),
        bytes_received   INTEGER NOT NULL CHECK (bytes_received >= 0 AND bytes_received <= bytes_expected),
        started_at       TEXT    NOT NULL,
        PRIMARY KEY (collaboration_id, dataset_id)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 5,
    description: "workers' registration evidence and the log entry of a finished job, for job receipts",
    sql: `
      ALTER TABLE workers ADD COLUMN evidence TEXT;
      ALTER TABLE workers ADD COLUMN certificates TEXT;
      ALTER TABLE workers ADD COLUMN challenge TEXT;
      ALTER TABLE jobs ADD COLUMN finished_entry INTEGER;
    `,
  },
  {
    version: 6,
    description: 'the privacy accountant: charges and refunds per job and budget period',
    sql: `
      CREATE TABLE privacy_charges (
        job_id           TEXT    NOT NULL REFERENCES jobs (id),
        kind             TEXT    NOT NULL CHECK (kind IN ('charge', 'refund')),
        collaboration_id TEXT    NOT NULL,
        analyst          TEXT    NOT NULL,
        period           TEXT    NOT NULL,
        epsilon          TEXT,
        rho              TEXT,
        delta            TEXT,
        log_index        INTEGER NOT NULL UNIQUE,
        created_at       TEXT    NOT NULL,
        PRIMARY KEY (job_id, kind)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX privacy_charges_by_period ON privacy_charges (collaboration_id, period);
    `,
  },
  {
    version: 7,
    description: 'the relay of computations without an enclave: runs and their messages',
    sql: `
      CREATE TABLE relay_runs (
        id               TEXT    NOT NULL PRIMARY KEY,
        collaboration_id TEXT    NOT NULL,
        kind             TEXT    NOT NULL CHECK (kind IN ('psi', 'secagg')),
        computation      TEXT    NOT NULL,
        mode             TEXT,
        agreement_hash   TEXT    NOT NULL,
        parties          TEXT    NOT NULL,
        parameters       TEXT    NOT NULL,
        state            TEXT    NOT NULL CHECK (state IN ('open', 'finished', 'failed')),
        started_by       TEXT    NOT NULL,
        summary          TEXT,
        finished_by      TEXT,
        created_at       TEXT    NOT NULL,
        finished_at      TEXT,
        seq              INTEGER NOT NULL UNIQUE
      ) STRICT;
      CREATE INDEX relay_runs_by_collaboration ON relay_runs (collaboration_id, seq);

      CREATE TABLE relay_messages (
        run_id           TEXT    NOT NULL REFERENCES relay_runs (id),
        seq              INTEGER NOT NULL CHECK (seq >= 0),
        collaboration_id TEXT    NOT NULL,
        sender           TEXT    NOT NULL,
        recipient        TEXT    NOT NULL,
        step             INTEGER NOT NULL CHECK (step >= 0),
        size             INTEGER NOT NULL CHECK (size >= 0),
        sha256           TEXT    NOT NULL,
        created_at       TEXT    NOT NULL,
        bytes            BLOB    NOT NULL,
        PRIMARY KEY (run_id, seq),
        UNIQUE (run_id, sender, recipient, step)
      ) STRICT;
      CREATE INDEX relay_messages_by_recipient ON relay_messages (run_id, recipient, step, seq);
    `,
  },
  {
    version: 8,
    description: 'idempotency keys of job submissions',
    sql: `
      CREATE TABLE job_requests (
        collaboration_id TEXT    NOT NULL,
        submitted_by     TEXT    NOT NULL,
        request_key      TEXT    NOT NULL,
        fingerprint      TEXT    NOT NULL,
        job_id           TEXT    NOT NULL UNIQUE REFERENCES jobs (id),
        created_at       TEXT    NOT NULL,
        PRIMARY KEY (collaboration_id, submitted_by, request_key)
      ) STRICT, WITHOUT ROWID;
    `,
  },
];

/** The schema version this code writes; a file recording a higher one is refused. */
export const STORE_SCHEMA_VERSION: number = checkedLatestVersion(MIGRATIONS);

function checkedLatestVersion(migrations: readonly Migration[]): number {
  migrations.forEach((migration, index) => {
    // A gap or reordering would make "apply every version above the recorded one" skip work.
    if (migration.version !== index + 1) {
      throw new Error(`Migration at index ${index} has version ${migration.version}, expected ${index + 1}`);
    }
  });
  return migrations.length;
}

const CREATE_MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    applied_at TEXT    NOT NULL
  ) STRICT`;

export function recordedVersion(db: Database.Database): number {
  const row = db.prepare<[], { version: number | null }>('SELECT max(version) AS version FROM schema_migrations').get();
  return row?.version ?? 0;
}

/**
 * Brings the file up to the newest migration, each migration in its own transaction. Refuses a
 * file written by newer code rather than guess at a schema it does not know.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => Date = () => new Date(),
): void {
  const latest = checkedLatestVersion(migrations);
  db.exec(CREATE_MIGRATIONS_TABLE);
  refuseNewer(recordedVersion(db), latest);
  const record = db.prepare<[number, string]>('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
  for (const migration of migrations) {
    if (migration.version <= recordedVersion(db)) continue;
    // IMMEDIATE takes the write lock before re-reading the version, so two processes opening the
    // same new file cannot both apply a migration.
    db.transaction(() => {
      const current = recordedVersion(db);
      refuseNewer(current, latest);
      if (migration.version <= current) return;
      db.exec(migration.sql);
      record.run(migration.version, now().toISOString());
    }).immediate();
  }
}

function refuseNewer(recorded: number, latest: number): void {
  if (recorded > latest) {
    throw new MalusError(
      'store-failure',
      `The database has schema version ${recorded} but this Malus knows only up to ${latest}; upgrade Malus to open it`,
    );
  }
}
