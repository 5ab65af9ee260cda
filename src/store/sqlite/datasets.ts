import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { DatasetRecord, DatasetRepository, DatasetUploadRecord, LogAppend } from '../types.js';
import { attempt } from './errors.js';
import { logAppender } from './log.js';

interface DatasetRow {
  collaboration_id: string;
  dataset_id: string;
  table_name: string;
  owner: string;
  agreement_hash: string;
  schema_hash: string;
  header_hash: string;
  rows: number;
  bytes: number;
  ciphertext_sha256: string;
  key_commitment: string;
  manifest_json: string;
  created_at: string;
}

interface UploadRow {
  collaboration_id: string;
  dataset_id: string;
  owner: string;
  manifest_json: string;
  bytes_expected: number;
  bytes_received: number;
  started_at: string;
}

const DATASET_COLUMNS =
  'collaboration_id, dataset_id, table_name, owner, agreement_hash, schema_hash, header_hash, rows, bytes, ciphertext_sha256, key_commitment, manifest_json, created_at';
const UPLOAD_COLUMNS = 'collaboration_id, dataset_id, owner, manifest_json, bytes_expected, bytes_received, started_at';

const toDataset = (row: DatasetRow): DatasetRecord => ({
  collaborationId: row.collaboration_id,
  datasetId: row.dataset_id,
  table: row.table_name,
  owner: row.owner,
  agreementHash: row.agreement_hash,
  schemaHash: row.schema_hash,
  headerHash: row.header_hash,
  rows: row.rows,
  bytes: row.bytes,
  ciphertextSha256: row.ciphertext_sha256,
  keyCommitment: row.key_commitment,
  manifest: JSON.parse(row.manifest_json) as Record<string, unknown>,
  createdAt: row.created_at,
});

const toUpload = (row: UploadRow): DatasetUploadRecord => ({
  collaborationId: row.collaboration_id,
  datasetId: row.dataset_id,
  owner: row.owner,
  manifest: JSON.parse(row.manifest_json) as Record<string, unknown>,
  bytesExpected: row.bytes_expected,
  bytesReceived: row.bytes_received,
  startedAt: row.started_at,
});

function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new MalusError('invalid-input', `${what} must be an integer of at least ${min}`);
}

export function sqliteDatasets(db: Database.Database): DatasetRepository {
  const selectDataset = db.prepare<[string, string], DatasetRow>(`SELECT ${DATASET_COLUMNS} FROM datasets WHERE collaboration_id = ? AND dataset_id = ?`);
  const selectDatasets = db.prepare<[string], DatasetRow>(`SELECT ${DATASET_COLUMNS} FROM datasets WHERE collaboration_id = ? ORDER BY dataset_id`);
  const insertDataset = db.prepare<[DatasetRow]>(
    `INSERT INTO datasets (${DATASET_COLUMNS})
     VALUES (@collaboration_id, @dataset_id, @table_name, @owner, @agreement_hash, @schema_hash, @header_hash, @rows, @bytes,
             @ciphertext_sha256, @key_commitment, @manifest_json, @created_at)`,
  );
  const selectUpload = db.prepare<[string, string], UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM dataset_uploads WHERE collaboration_id = ? AND dataset_id = ?`);
  const upsertUpload = db.prepare<[UploadRow]>(
    `INSERT INTO dataset_uploads (${UPLOAD_COLUMNS})
     VALUES (@collaboration_id, @dataset_id, @owner, @manifest_json, @bytes_expected, @bytes_received, @started_at)
     ON CONFLICT (collaboration_id, dataset_id) DO UPDATE SET owner = excluded.owner, manifest_json = excluded.manifest_json,
       bytes_expected = excluded.bytes_expected, bytes_received = excluded.bytes_received, started_at = excluded.started_at`,
  );
  // One statement decides, so two requests at the same offset cannot both move it.
  const moveUpload = db.prepare<[number, string, string, number, number]>(
    `UPDATE dataset_uploads SET bytes_received = ?
     WHERE collaboration_id = ? AND dataset_id = ? AND bytes_received = ? AND ? <= bytes_expected`,
  );
  const selectPending = db.prepare<[], Omit<UploadRow, 'manifest_json'>>(
    'SELECT collaboration_id, dataset_id, owner, bytes_expected, bytes_received, started_at FROM dataset_uploads ORDER BY collaboration_id, dataset_id',
  );
  const deleteUpload = db.prepare<[string, string]>('DELETE FROM dataset_uploads WHERE collaboration_id = ? AND dataset_id = ?');
  const appendEvents = logAppender(db);

  const putUploadOnce = db.transaction((row: UploadRow) => {
    if (selectDataset.get(row.collaboration_id, row.dataset_id) !== undefined) {
      throw new MalusError('conflict', `dataset ${row.dataset_id} is already uploaded`);
    }
    upsertUpload.run(row);
  });

  const completeOnce = db.transaction((row: DatasetRow, events: readonly LogAppend[]): 'added' | 'duplicate' => {
    const existing = selectDataset.get(row.collaboration_id, row.dataset_id);
    if (existing !== undefined) {
      if (existing.ciphertext_sha256 === row.ciphertext_sha256) return 'duplicate';
      throw new MalusError('conflict', `dataset ${row.dataset_id} is already uploaded with another ciphertext`);
    }
    insertDataset.run(row);
    deleteUpload.run(row.collaboration_id, row.dataset_id);
    if (events.length > 0) appendEvents(events);
    return 'added';
  });

  return {
    get(collaborationId, datasetId) {
      return attempt(db, 'read a dataset', () => {
        const row = selectDataset.get(collaborationId, datasetId);
        return row === undefined ? undefined : toDataset(row);
      });
    },
    list(collaborationId) {
      return attempt(db, 'list datasets', () => selectDatasets.all(collaborationId).map(toDataset));
    },
    getUpload(collaborationId, datasetId) {
      return attempt(db, 'read an upload', () => {
        const row = selectUpload.get(collaborationId, datasetId);
        return row === undefined ? undefined : toUpload(row);
      });
    },
    pendingUploads() {
      return attempt(db, 'list the uploads in progress', () =>
        selectPending.all().map((row) => ({
          collaborationId: row.collaboration_id,
          datasetId: row.dataset_id,
          owner: row.owner,
          bytesExpected: row.bytes_expected,
          bytesReceived: row.bytes_received,
          startedAt: row.started_at,
        })),
      );
    },
    putUpload(upload) {
      return attempt(db, 'start an upload', () => {
        checkCount(upload.bytesExpected, 'bytesExpected', 1);
        checkCount(upload.bytesReceived, 'bytesReceived', 0);
        if (upload.bytesReceived > upload.bytesExpected) throw new MalusError('invalid-input', 'bytesReceived exceeds bytesExpected');
        putUploadOnce.immediate({
          collaboration_id: upload.collaborationId,
          dataset_id: upload.datasetId,
          owner: upload.owner,
          manifest_json: JSON.stringify(upload.manifest),
          bytes_expected: upload.bytesExpected,
          bytes_received: upload.bytesReceived,
          started_at: upload.startedAt,
        });
      });
    },
    advanceUpload(collaborationId, datasetId, from, to) {
      return attempt(db, 'record upload progress', () => {
        checkCount(from, 'from', 0);
        checkCount(to, 'to', 0);
        return moveUpload.run(to, collaborationId, datasetId, from, to).changes === 1;
      });
    },
    abandonUpload(collaborationId, datasetId) {
      return attempt(db, 'abandon an upload', () => deleteUpload.run(collaborationId, datasetId).changes === 1);
    },
    complete(record, events = []) {
      return attempt(db, 'record a dataset', () => {
        checkCount(record.rows, 'rows', 0);
        checkCount(record.bytes, 'bytes', 1);
        return completeOnce.immediate(
          {
            collaboration_id: record.collaborationId,
            dataset_id: record.datasetId,
            table_name: record.table,
            owner: record.owner,
            agreement_hash: record.agreementHash,
            schema_hash: record.schemaHash,
            header_hash: record.headerHash,
            rows: record.rows,
            bytes: record.bytes,
            ciphertext_sha256: record.ciphertextSha256,
            key_commitment: record.keyCommitment,
            manifest_json: JSON.stringify(record.manifest),
            created_at: record.createdAt,
          },
          events,
        );
      });
    },
  };
}
