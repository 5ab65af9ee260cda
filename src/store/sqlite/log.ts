import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { CheckpointRecord, LogAppend, LogEntryRecord, LogRepository } from '../types.js';
import { attempt } from './errors.js';

interface EntryRow {
  idx: number;
  leaf_hash: Buffer;
  data: Buffer;
  collaboration_id: string | null;
  type: string;
}

interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  created_at: string;
}

interface CosignatureRow {
  size: number;
  witness: string;
  line: string;
  created_at: string;
}

const ENTRY_COLUMNS = 'idx, leaf_hash, data, collaboration_id, type';
const MAX_IN_LIST = 500;

/** Statements that append log leaves; shared with the collaboration repository's transactions. */
export function logAppender(db: Database.Database): (entries: readonly LogAppend[]) => number {
  const nextIndex = db.prepare<[], number>('SELECT coalesce(max(idx) + 1, 0) FROM log_entries').pluck();
  const insert = db.prepare<[EntryRow]>(
    `INSERT INTO log_entries (${ENTRY_COLUMNS}) VALUES (@idx, @leaf_hash, @data, @collaboration_id, @type)`,
  );
  // Must run inside a write transaction: the next index and the inserts see one snapshot.
  return (entries) => {
    const first = nextIndex.get() ?? 0;
    entries.forEach((entry, i) => {
      if (entry.leafHash.length !== 32) throw new MalusError('invalid-input', 'a log leaf hash must be 32 bytes');
      insert.run({
        idx: first + i,
        leaf_hash: Buffer.from(entry.leafHash),
        data: Buffer.from(entry.data),
        collaboration_id: entry.collaborationId,
        type: entry.type,
      });
    });
    return first;
  };
}

function checkRange(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw new MalusError('invalid-input', `bad log range [${from}, ${to})`);
  }
}

export function sqliteLog(db: Database.Database): LogRepository {
  const appendEntries = logAppender(db);
  const appendAll = db.transaction((entries: readonly LogAppend[]) => appendEntries(entries));
  const count = db.prepare<[], number>('SELECT coalesce(max(idx) + 1, 0) FROM log_entries').pluck();
  const selectHashes = db
    .prepare<[number, number], Buffer>('SELECT leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx')
    .pluck();
  const selectEntries = db.prepare<[number, number], EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx`,
  );
  const selectEntry = db.prepare<[number], EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM log_entries WHERE idx = ?`);
  const insertCheckpoint = db.prepare<[CheckpointRow]>(
    'INSERT INTO log_checkpoints (size, root, note, created_at) VALUES (@size, @root, @note, @created_at)',
  );
  const checkpointExists = db.prepare<[number], 1>('SELECT 1 FROM log_checkpoints WHERE size = ?').pluck();
  const selectLatest = db.prepare<[], CheckpointRow>('SELECT * FROM log_checkpoints ORDER BY size DESC LIMIT 1');
  const selectCovering = db.prepare<[number], CheckpointRow>(
    'SELECT * FROM log_checkpoints WHERE size >= ? ORDER BY size LIMIT 1',
  );
  const selectCheckpoints = db.prepare<[], CheckpointRow>('SELECT * FROM log_checkpoints ORDER BY size');
  const insertCosignature = db.prepare<[CosignatureRow]>(
    `INSERT INTO log_cosignatures (size, witness, line, created_at) VALUES (@size, @witness, @line, @created_at)
     ON CONFLICT (size, witness) DO NOTHING`,
  );
  const selectCosignatures = db.prepare<[number], CosignatureRow>(
    'SELECT * FROM log_cosignatures WHERE size = ? ORDER BY created_at, witness',
  );

  const saveOnce = db.transaction((row: CheckpointRow) => {
    if (checkpointExists.get(row.size) !== undefined) {
      throw new MalusError('conflict', `a checkpoint of size ${row.size} is already stored`);
    }
    insertCheckpoint.run(row);
  });
  const cosignOnce = db.transaction((row: CosignatureRow): 'added' | 'duplicate' => {
    if (checkpointExists.get(row.size) === undefined) throw new MalusError('not-found', `no checkpoint of size ${row.size}`);
    return insertCosignature.run(row).changes === 1 ? 'added' : 'duplicate';
  });

  return {
    append(entries) {
      return attempt(db, 'append to the log', () => appendAll.immediate(entries));
    },
    size() {
      return attempt(db, 'read the log size', () => count.get() ?? 0);
    },
    leafHashes(from, to) {
      return attempt(db, 'read log leaf hashes', () => {
        checkRange(from, to);
        return selectHashes.all(from, to).map((b) => new Uint8Array(b));
      });
    },
    entries(from, to) {
      return attempt(db, 'read log entries', () => {
        checkRange(from, to);
        return selectEntries.all(from, to).map(fromEntryRow);
      });
    },
    entry(index) {
      return attempt(db, 'read a log entry', () => {
        const row = selectEntry.get(index);
        return row === undefined ? undefined : fromEntryRow(row);
      });
    },
    entriesOf(collaborationIds) {
      return attempt(db, 'read log entries', () => {
        const rows: EntryRow[] = [];
        for (let i = 0; i < collaborationIds.length; i += MAX_IN_LIST) {
          const chunk = collaborationIds.slice(i, i + MAX_IN_LIST);
          const marks = chunk.map(() => '?').join(', ');
          rows.push(
            ...db
              .prepare<string[], EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM log_entries WHERE collaboration_id IN (${marks})`)
              .all(...chunk),
          );
        }
        return rows.sort((a, b) => a.idx - b.idx).map(fromEntryRow);
      });
    },
    saveCheckpoint(checkpoint) {
      return attempt(db, 'store the checkpoint', () => {
        saveOnce.immediate(toCheckpointRow(checkpoint));
      });
    },
    latestCheckpoint() {
      return attempt(db, 'read the latest checkpoint', () => optional(selectLatest.get(), fromCheckpointRow));
    },
    checkpointCovering(size) {
      return attempt(db, 'read a checkpoint', () => optional(selectCovering.get(size), fromCheckpointRow));
    },
    listCheckpoints() {
      return attempt(db, 'list checkpoints', () => selectCheckpoints.all().map(fromCheckpointRow));
    },
    addCosignature(cosignature) {
      return attempt(db, 'store the cosignature', () =>
        cosignOnce.immediate({
          size: cosignature.size,
          witness: cosignature.witness,
          line: cosignature.line,
          created_at: cosignature.createdAt,
        }),
      );
    },
    cosignatures(size) {
      return attempt(db, 'list cosignatures', () =>
        selectCosignatures.all(size).map((row) => ({ size: row.size, witness: row.witness, line: row.line, createdAt: row.created_at })),
      );
    },
  };
}

function optional<R, T>(row: R | undefined, map: (row: R) => T): T | undefined {
  return row === undefined ? undefined : map(row);
}

function fromEntryRow(row: EntryRow): LogEntryRecord {
  return {
    index: row.idx,
    leafHash: new Uint8Array(row.leaf_hash),
    data: new Uint8Array(row.data),
    collaborationId: row.collaboration_id,
    type: row.type,
  };
}

function toCheckpointRow(checkpoint: CheckpointRecord): CheckpointRow {
  return { size: checkpoint.size, root: Buffer.from(checkpoint.root), note: checkpoint.note, created_at: checkpoint.createdAt };
}

function fromCheckpointRow(row: CheckpointRow): CheckpointRecord {
  return { size: row.size, root: new Uint8Array(row.root), note: row.note, createdAt: row.created_at };
}
