import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { LogAppend, RelayMessageRecord, RelayRepository, RelayRunRecord } from '../types.js';
import { attempt, isUniqueViolation } from './errors.js';
import { logAppender } from './log.js';

// The relay of computations without an enclave: runs and the opaque messages their parties exchange
// through the server. A message is written once; its run's start and end land with their log entries.

interface RunRow {
  id: string;
  collaboration_id: string;
  kind: string;
  computation: string;
  mode: string | null;
  agreement_hash: string;
  parties: string;
  parameters: string;
  state: string;
  started_by: string;
  summary: string | null;
  finished_by: string | null;
  created_at: string;
  finished_at: string | null;
}

interface CountedRunRow extends RunRow {
  relayed_messages: number;
  relayed_bytes: number;
}

interface MessageRow {
  run_id: string;
  seq: number;
  collaboration_id: string;
  sender: string;
  recipient: string;
  step: number;
  size: number;
  sha256: string;
  created_at: string;
  bytes: Buffer;
}

const RUN_COLUMNS =
  'id, collaboration_id, kind, computation, mode, agreement_hash, parties, parameters, state, started_by, summary, finished_by, created_at, finished_at';
const MESSAGE_COLUMNS = 'run_id, seq, collaboration_id, sender, recipient, step, size, sha256, created_at, bytes';
/** A run with the relay's totals, which read only the small columns of its messages. */
const COUNTED_RUNS = `
  SELECT ${RUN_COLUMNS.split(', ').map((c) => `r.${c}`).join(', ')},
         (SELECT count(*) FROM relay_messages m WHERE m.run_id = r.id) AS relayed_messages,
         (SELECT coalesce(sum(m.size), 0) FROM relay_messages m WHERE m.run_id = r.id) AS relayed_bytes
  FROM relay_runs r`;
/** Past any seq: a cursor without afterSeq takes nothing more of its own step. */
const NO_SEQ = Number.MAX_SAFE_INTEGER;

function toRun(row: RunRow, relayed?: { messages: number; bytes: number }): RelayRunRecord {
  return {
    id: row.id,
    collaborationId: row.collaboration_id,
    kind: row.kind as RelayRunRecord['kind'],
    computation: row.computation,
    mode: row.mode,
    agreementHash: row.agreement_hash,
    parties: JSON.parse(row.parties) as string[],
    parameters: JSON.parse(row.parameters) as Record<string, unknown>,
    state: row.state as RelayRunRecord['state'],
    startedBy: row.started_by,
    summary: row.summary === null ? null : (JSON.parse(row.summary) as Record<string, unknown>),
    finishedBy: row.finished_by,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    ...(relayed === undefined ? {} : { relayed }),
  };
}

const toCountedRun = (row: CountedRunRow): RelayRunRecord => toRun(row, { messages: row.relayed_messages, bytes: row.relayed_bytes });

const toMessage = (row: MessageRow): RelayMessageRecord => ({
  collaborationId: row.collaboration_id,
  runId: row.run_id,
  seq: row.seq,
  sender: row.sender,
  recipient: row.recipient,
  step: row.step,
  data: new Uint8Array(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength),
  sha256: row.sha256,
  createdAt: row.created_at,
});

const sha256Ref = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new MalusError('invalid-input', `${what} must be an integer of at least ${min}`);
}

export function sqliteRelay(db: Database.Database): RelayRepository {
  const insertRun = db.prepare<[RunRow]>(
    `INSERT INTO relay_runs (${RUN_COLUMNS}, seq)
     VALUES (@id, @collaboration_id, @kind, @computation, @mode, @agreement_hash, @parties, @parameters, @state, @started_by,
             @summary, @finished_by, @created_at, @finished_at, (SELECT coalesce(max(seq) + 1, 0) FROM relay_runs))`,
  );
  const selectRun = db.prepare<[string, string], RunRow>(`SELECT ${RUN_COLUMNS} FROM relay_runs WHERE collaboration_id = ? AND id = ?`);
  const selectCountedRun = db.prepare<[string, string], CountedRunRow>(`${COUNTED_RUNS} WHERE r.collaboration_id = ? AND r.id = ?`);
  const selectRuns = db.prepare<[string], CountedRunRow>(`${COUNTED_RUNS} WHERE r.collaboration_id = ? ORDER BY r.seq DESC`);
  const endRun = db.prepare<[string, string, string, string, string]>(
    `UPDATE relay_runs SET state = ?, finished_by = ?, summary = ?, finished_at = ? WHERE id = ? AND state = 'open'`,
  );
  const totals = db.prepare<[string], { messages: number; bytes: number }>(
    'SELECT count(*) AS messages, coalesce(sum(size), 0) AS bytes FROM relay_messages WHERE run_id = ?',
  );
  const selectMessage = db.prepare<[string, string, string, number], MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM relay_messages WHERE run_id = ? AND sender = ? AND recipient = ? AND step = ?`,
  );
  const insertMessage = db.prepare<[Omit<MessageRow, 'seq'>]>(
    `INSERT INTO relay_messages (${MESSAGE_COLUMNS})
     VALUES (@run_id, (SELECT coalesce(max(seq) + 1, 0) FROM relay_messages WHERE run_id = @run_id), @collaboration_id, @sender,
             @recipient, @step, @size, @sha256, @created_at, @bytes)`,
  );
  const PENDING = `FROM relay_messages
     WHERE run_id = @run AND (recipient = @recipient OR recipient = '*') AND sender <> @recipient
       AND (step > @after OR (step = @after AND seq > @afterSeq))
     ORDER BY step, seq`;
  // The sizes first, to choose how many fit; only those messages' bytes are read.
  const pendingSizes = db.prepare<[{ run: string; recipient: string; after: number; afterSeq: number }], number>(`SELECT size ${PENDING}`).pluck();
  const pendingMessages = db.prepare<[{ run: string; recipient: string; after: number; afterSeq: number; limit: number }], MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} ${PENDING} LIMIT @limit`,
  );
  const appendEvents = logAppender(db);

  const createOnce = db.transaction((row: RunRow, events: readonly LogAppend[]) => {
    insertRun.run(row);
    if (events.length > 0) appendEvents(events);
  });

  const postOnce = db.transaction((row: Omit<MessageRow, 'seq'>, events: readonly LogAppend[]): { added: boolean; message: RelayMessageRecord } => {
    const run = selectRun.get(row.collaboration_id, row.run_id);
    if (run === undefined) throw new MalusError('not-found', `run ${row.run_id} not found`);
    const parties = JSON.parse(run.parties) as string[];
    if (!parties.includes(row.sender)) throw new MalusError('invalid-input', `the sender is not a party of run ${row.run_id}`);
    if (row.recipient === row.sender || (row.recipient !== '*' && !parties.includes(row.recipient))) {
      throw new MalusError('invalid-input', `the recipient is not another party of run ${row.run_id}`);
    }
    const existing = selectMessage.get(row.run_id, row.sender, row.recipient, row.step);
    if (existing !== undefined) {
      if (existing.sha256 === row.sha256 && existing.size === row.size) return { added: false, message: toMessage(existing) };
      throw new MalusError('conflict', `step ${row.step} of this sender to this recipient is already relayed with other bytes`);
    }
    if (run.state !== 'open') throw new MalusError('conflict', `run ${row.run_id} is ${run.state}`);
    insertMessage.run(row);
    if (events.length > 0) appendEvents(events);
    return { added: true, message: toMessage(selectMessage.get(row.run_id, row.sender, row.recipient, row.step) as MessageRow) };
  });

  // One read transaction: the sizes and the messages come from the same snapshot.
  const readOnce = db.transaction((cursor: { run: string; recipient: string; after: number; afterSeq: number }, maxBytes: number) => {
    let limit = 0;
    let bytes = 0;
    let more = false;
    for (const size of pendingSizes.iterate(cursor)) {
      if (limit > 0 && bytes + size > maxBytes) {
        more = true;
        break;
      }
      limit += 1;
      bytes += size;
    }
    return { messages: limit === 0 ? [] : pendingMessages.all({ ...cursor, limit }).map(toMessage), more };
  });

  const finishOnce = db.transaction(
    (
      collaborationId: string,
      runId: string,
      state: string,
      by: string,
      summary: string,
      now: string,
      events: ((run: RelayRunRecord, relayed: { messages: number; bytes: number }) => readonly LogAppend[]) | undefined,
    ): RelayRunRecord => {
      const run = selectRun.get(collaborationId, runId);
      if (run === undefined) throw new MalusError('not-found', `run ${runId} not found`);
      if (endRun.run(state, by, summary, now, runId).changes !== 1) throw new MalusError('conflict', `run ${runId} is ${run.state}`);
      const relayed = totals.get(runId) ?? { messages: 0, bytes: 0 };
      const ended = toRun(selectRun.get(collaborationId, runId) as RunRow, relayed);
      const entries = events?.(ended, relayed) ?? [];
      if (entries.length > 0) appendEvents(entries);
      return ended;
    },
  );

  return {
    createRun(run, events = []) {
      return attempt(db, 'record a run', () => {
        if (run.state !== 'open') throw new MalusError('invalid-input', 'a run starts open');
        try {
          createOnce.immediate(
            {
              id: run.id,
              collaboration_id: run.collaborationId,
              kind: run.kind,
              computation: run.computation,
              mode: run.mode,
              agreement_hash: run.agreementHash,
              parties: JSON.stringify(run.parties),
              parameters: JSON.stringify(run.parameters),
              state: run.state,
              started_by: run.startedBy,
              summary: null,
              finished_by: null,
              created_at: run.createdAt,
              finished_at: null,
            },
            events,
          );
        } catch (error) {
          if (isUniqueViolation(error)) throw new MalusError('conflict', `run ${run.id} exists`);
          throw error;
        }
      });
    },
    getRun(collaborationId, runId) {
      return attempt(db, 'read a run', () => {
        const row = selectCountedRun.get(collaborationId, runId);
        return row === undefined ? undefined : toCountedRun(row);
      });
    },
    listRuns(collaborationId) {
      return attempt(db, 'list runs', () => selectRuns.all(collaborationId).map(toCountedRun));
    },
    postMessage(message, events = []) {
      return attempt(db, 'relay a message', () => {
        checkCount(message.step, 'step', 0);
        const size = message.data.byteLength;
        // The store hashes the bytes itself: a repeat is recognised by what was stored, not by a claim.
        const sha256 = sha256Ref(message.data);
        return postOnce.immediate(
          {
            run_id: message.runId,
            collaboration_id: message.collaborationId,
            sender: message.sender,
            recipient: message.recipient,
            step: message.step,
            size,
            sha256,
            created_at: message.createdAt,
            bytes: Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength),
          },
          events,
        );
      });
    },
    messagesFor(collaborationId, runId, recipient, cursor, maxBytes) {
      return attempt(db, 'read relayed messages', () => {
        checkCount(cursor.after + 1, 'after + 1', 0);
        if (cursor.afterSeq !== undefined) checkCount(cursor.afterSeq, 'afterSeq', 0);
        checkCount(maxBytes, 'maxBytes', 1);
        if (selectRun.get(collaborationId, runId) === undefined) throw new MalusError('not-found', `run ${runId} not found`);
        return readOnce({ run: runId, recipient, after: cursor.after, afterSeq: cursor.afterSeq ?? NO_SEQ }, maxBytes);
      });
    },
    finishRun(collaborationId, runId, finish, events) {
      return attempt(db, 'finish a run', () =>
        finishOnce.immediate(collaborationId, runId, finish.state, finish.by, JSON.stringify(finish.summary), finish.now.toISOString(), events),
      );
    },
  };
}
