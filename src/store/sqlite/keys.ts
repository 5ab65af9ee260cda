import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { ChallengeRecord, DatasetKeyRecord, KeyRepository, LogAppend } from '../types.js';
import { attempt } from './errors.js';
import { logAppender } from './log.js';

interface ChallengeRow {
  challenge: string;
  purpose: string;
  issued_at: number;
  expires_at: number;
}

interface KeyRow {
  dataset_id: string;
  collaboration_id: string;
  table_name: string;
  owner: string;
  wrapped_key: Buffer;
  key_commitment: string;
  agreement_hash: string;
  created_at: string;
}

const KEY_COLUMNS = 'dataset_id, collaboration_id, table_name, owner, wrapped_key, key_commitment, agreement_hash, created_at';
const PRUNE_BATCH = 100;
const MAX_IN_LIST = 500;

const toChallenge = (row: ChallengeRow): ChallengeRecord => ({
  challenge: row.challenge,
  purpose: row.purpose,
  issuedAt: new Date(row.issued_at),
  expiresAt: new Date(row.expires_at),
});

const toKey = (row: KeyRow): DatasetKeyRecord => ({
  datasetId: row.dataset_id,
  collaborationId: row.collaboration_id,
  table: row.table_name,
  owner: row.owner,
  wrappedKey: new Uint8Array(row.wrapped_key),
  keyCommitment: row.key_commitment,
  agreementHash: row.agreement_hash,
  createdAt: row.created_at,
});

export function sqliteKeys(db: Database.Database): KeyRepository {
  const prune = db.prepare<[number, number]>(
    `DELETE FROM key_challenges WHERE challenge IN (SELECT challenge FROM key_challenges WHERE expires_at <= ? LIMIT ?)`,
  );
  const insertChallenge = db.prepare<[ChallengeRow]>(
    'INSERT INTO key_challenges (challenge, purpose, issued_at, expires_at) VALUES (@challenge, @purpose, @issued_at, @expires_at)',
  );
  // One statement decides, so a challenge presented twice at once is used once.
  const useChallenge = db.prepare<[number, string, string, number], ChallengeRow>(
    `UPDATE key_challenges SET used_at = ? WHERE challenge = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?
     RETURNING challenge, purpose, issued_at, expires_at`,
  );
  const selectKey = db.prepare<[string, string], KeyRow>(`SELECT ${KEY_COLUMNS} FROM dataset_keys WHERE collaboration_id = ? AND dataset_id = ?`);
  const insertKey = db.prepare<[KeyRow]>(
    `INSERT INTO dataset_keys (${KEY_COLUMNS})
     VALUES (@dataset_id, @collaboration_id, @table_name, @owner, @wrapped_key, @key_commitment, @agreement_hash, @created_at)`,
  );
  const selectOfCollaboration = db.prepare<[string], KeyRow>(
    `SELECT ${KEY_COLUMNS} FROM dataset_keys WHERE collaboration_id = ? ORDER BY dataset_id`,
  );
  const appendEvents = logAppender(db);

  const issueOnce = db.transaction((row: ChallengeRow) => {
    prune.run(row.issued_at, PRUNE_BATCH);
    insertChallenge.run(row);
  });

  const putOnce = db.transaction((row: KeyRow, events: readonly LogAppend[]): 'added' | 'duplicate' => {
    const existing = selectKey.get(row.collaboration_id, row.dataset_id);
    if (existing !== undefined) {
      const same =
        existing.key_commitment === row.key_commitment &&
        existing.owner === row.owner &&
        existing.table_name === row.table_name;
      if (same) return 'duplicate';
      throw new MalusError('conflict', `dataset ${row.dataset_id} already has a different data key`);
    }
    insertKey.run(row);
    if (events.length > 0) appendEvents(events);
    return 'added';
  });

  return {
    issueChallenge(challenge) {
      return attempt(db, 'issue a challenge', () => {
        issueOnce.immediate({
          challenge: challenge.challenge,
          purpose: challenge.purpose,
          issued_at: challenge.issuedAt.getTime(),
          expires_at: challenge.expiresAt.getTime(),
        });
      });
    },
    consumeChallenge(challenge, purpose, now) {
      return attempt(db, 'use a challenge', () => {
        const row = useChallenge.get(now.getTime(), challenge, purpose, now.getTime());
        return row === undefined ? undefined : toChallenge(row);
      });
    },
    putKey(record, events = []) {
      return attempt(db, 'store a data key', () =>
        putOnce.immediate(
          {
            dataset_id: record.datasetId,
            collaboration_id: record.collaborationId,
            table_name: record.table,
            owner: record.owner,
            wrapped_key: Buffer.from(record.wrappedKey),
            key_commitment: record.keyCommitment,
            agreement_hash: record.agreementHash,
            created_at: record.createdAt,
          },
          events,
        ),
      );
    },
    keysOf(collaborationId, datasetIds) {
      return attempt(db, 'read data keys', () => {
        if (datasetIds.length > MAX_IN_LIST) throw new MalusError('invalid-input', `at most ${MAX_IN_LIST} datasets at once`);
        return datasetIds.flatMap((id) => {
          const row = selectKey.get(collaborationId, id);
          return row === undefined ? [] : [toKey(row)];
        });
      });
    },
    listKeys(collaborationId) {
      return attempt(db, 'list data keys', () => selectOfCollaboration.all(collaborationId).map(toKey));
    },
  };
}
