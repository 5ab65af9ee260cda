import { DuckDBDateValue, DuckDBTimestampValue, DuckDBTypeId, StatementType, type DuckDBConnection, type DuckDBPreparedStatement } from '@duckdb/node-api';
import { MalusError, isMalusError } from '../errors/index.js';
import { literal, loadDataset, openIngestDb, type LoadParameters, type LoadedDataset } from '../ingest/index.js';
import { DATA_SCHEMA, type BoundParameter } from '../rules/index.js';
import { resultValue, resultValueBytes, type ResultColumn, type ResultValue } from './result.js';

// Where a governed query runs (docs/enclave.md): an in-memory DuckDB that never spills, into which
// the job's datasets are decrypted as malus_data."<table>", then locked (no file, network or
// extension access, no setting changes) before the one checked SELECT runs. DuckDB's own error
// messages never leave: they can quote data values, so every failure becomes a stable code.

export interface SandboxLimits {
  /** DuckDB worker threads (default 2). */
  readonly threads?: number;
  /** DuckDB's memory_limit (default 4GB): with no spilling, a query over it fails. */
  readonly memoryLimit?: string;
}

export interface QueryLimits {
  /** The connection is interrupted after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Released rows allowed (default 100,000). */
  readonly maxRows?: number;
  /** About how many payload bytes the released rows may take (default 16 MiB). */
  readonly maxBytes?: number;
}

export const DEFAULT_SANDBOX_LIMITS = { threads: 2, memoryLimit: '4GB' } as const satisfies Required<SandboxLimits>;
export const DEFAULT_QUERY_LIMITS = { timeoutMs: 60_000, maxRows: 100_000, maxBytes: 16 * 1024 * 1024 } as const satisfies Required<QueryLimits>;

export interface RunOptions extends QueryLimits {
  /**
   * The query's last column must be this BOOLEAN column, and it is dropped. A row where it is not
   * true fails the run (query-failed) at that row: the checked rewrite keeps only the groups its k
   * constraints release, so such a row means the rewrite and the engine disagree. Nothing of it is
   * kept or counted: how many groups were withheld is itself a release about groups under k.
   */
  readonly releaseColumn?: string;
  /**
   * Sees each row as it streams in and returns what to keep in its place, or undefined to keep
   * nothing. The row and byte caps count only kept rows: under differential privacy the exact rows
   * are statistics of groups that mostly never leave, and a cap on them would be an exact output.
   */
  readonly admit?: (row: ResultValue[], columns: readonly ResultColumn[]) => ResultValue[] | undefined;
}

export interface SandboxRun {
  readonly columns: ResultColumn[];
  readonly rows: ResultValue[][];
  /** The approximate payload size of `rows`. */
  readonly bytes: number;
}

export interface Sandbox {
  readonly locked: boolean;
  /** Decrypts a dataset into malus_data."<table.name>"; only before lock(). */
  load(parameters: Omit<LoadParameters, 'connection' | 'as'>): Promise<LoadedDataset>;
  /** Turns external access off and locks the configuration; nothing loads afterwards. */
  lock(): Promise<void>;
  /** Runs one SELECT with its parameters bound by name; only after lock(). */
  run(sql: string, parameters: readonly BoundParameter[], options?: RunOptions): Promise<SandboxRun>;
  close(): void;
}

/**
 * No file, network or extension access from here on, and no setting can change again (not these
 * two either: the order matters). The instance's threads and memory limit stay as opened.
 */
export async function lockConnection(connection: DuckDBConnection): Promise<void> {
  await connection.run('SET enable_external_access = false');
  await connection.run('SET lock_configuration = true');
}

const queryFailed = (why = 'the query failed in the enclave'): MalusError =>
  new MalusError('query-failed', `${why} (DuckDB's reason stays in the enclave: it can hold data values)`);

/** The one failure for a withheld row: the same whichever row, wherever, however many. */
const notReleased = (): MalusError =>
  new MalusError('query-failed', 'the enclave released nothing: the query returned a row its k constraints do not release, which the checked rewrite never should');

export async function openSandbox(limits: SandboxLimits = {}): Promise<Sandbox> {
  const db = await openIngestDb({ threads: limits.threads ?? DEFAULT_SANDBOX_LIMITS.threads, memoryLimit: limits.memoryLimit ?? DEFAULT_SANDBOX_LIMITS.memoryLimit });
  const { connection } = db;
  try {
    await connection.run(`CREATE SCHEMA ${DATA_SCHEMA}`);
  } catch (error) {
    db.close();
    throw error;
  }
  const loaded = new Set<string>();
  const state = { locked: false, closed: false };

  return {
    get locked() {
      return state.locked;
    },

    async load(parameters) {
      if (state.locked) throw new MalusError('internal', 'the sandbox is locked: nothing loads into it any more');
      const name = parameters.table.name;
      if (loaded.has(name)) throw new MalusError('invalid-input', `table ${name} is loaded twice`);
      loaded.add(name);
      // loadDataset quotes the name it is given, so the schema is chosen by the search path instead
      // of a qualified name: CREATE TABLE "T" lands in malus_data, with no copy of the rows.
      await connection.run(`SET schema = ${literal(DATA_SCHEMA)}`);
      try {
        return await loadDataset({ ...parameters, connection, as: name });
      } finally {
        await connection.run(`SET schema = 'main'`);
      }
    },

    async lock() {
      await lockConnection(connection);
      state.locked = true;
    },

    async run(sql, parameters, options = {}) {
      if (!state.locked) throw new MalusError('internal', 'the sandbox runs queries only once it is locked');
      const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_LIMITS.timeoutMs;
      const maxRows = options.maxRows ?? DEFAULT_QUERY_LIMITS.maxRows;
      const maxBytes = options.maxBytes ?? DEFAULT_QUERY_LIMITS.maxBytes;
      const timer = { fired: false };
      const handle = setTimeout(() => {
        timer.fired = true;
        connection.interrupt();
      }, timeoutMs);
      let prepared: DuckDBPreparedStatement | undefined;
      try {
        prepared = await connection.prepare(sql);
        if (prepared.statementType !== StatementType.SELECT) throw queryFailed('the query is not a SELECT');
        bindParameters(prepared, parameters);
        const result = await prepared.stream();
        const count = result.columnCount;
        const types = result.columnTypes();
        const names = result.columnNames();
        const release = options.releaseColumn;
        if (release !== undefined && (count === 0 || names[count - 1] !== release || types[count - 1]?.typeId !== DuckDBTypeId.BOOLEAN)) {
          throw queryFailed(`the query does not end with its BOOLEAN ${release} column`);
        }
        const kept = release === undefined ? count : count - 1;
        const columns = names.slice(0, kept).map((name, i) => ({ name, type: String(types[i]) }));
        const rows: ResultValue[][] = [];
        let bytes = 0;
        for (;;) {
          const chunk = await result.fetchChunk();
          if (timer.fired) throw timedOut(timeoutMs);
          if (chunk === null || chunk.rowCount === 0) break;
          for (const raw of chunk.getRows()) {
            // Fail closed: no row the release column withholds, and no count of them, ever leaves.
            if (release !== undefined && raw[kept] !== true) throw notReleased();
            const value = raw.slice(0, kept).map(resultValue);
            const row = options.admit === undefined ? value : options.admit(value, columns);
            if (row === undefined) continue;
            bytes += row.reduce((sum: number, cell) => sum + resultValueBytes(cell), 2);
            rows.push(row);
            if (rows.length > maxRows) throw new MalusError('result-too-large', `the result has more than ${maxRows} rows`);
            if (bytes > maxBytes) throw new MalusError('result-too-large', `the result is larger than ${maxBytes} bytes`);
          }
        }
        return { columns, rows, bytes };
      } catch (error) {
        if (timer.fired && !isMalusError(error, 'invalid-input')) throw timedOut(timeoutMs);
        if (isMalusError(error)) throw error;
        // Whatever DuckDB said stays here: not even as the cause.
        throw queryFailed();
      } finally {
        clearTimeout(handle);
        prepared?.destroySync();
      }
    },

    close() {
      if (state.closed) return;
      state.closed = true;
      db.close();
    },
  };
}

const timedOut = (ms: number): MalusError => new MalusError('query-timeout', `the query ran longer than ${ms} ms and was stopped`);

/** Binds every parameter by name with its declared type; the statement's placeholders must be exactly these. */
function bindParameters(prepared: DuckDBPreparedStatement, parameters: readonly BoundParameter[]): void {
  const names = new Set(parameters.map((p) => p.name));
  if (names.size !== parameters.length || prepared.parameterCount !== parameters.length) {
    throw queryFailed("the query's placeholders are not its parameters");
  }
  for (const parameter of parameters) {
    let index: number;
    try {
      index = prepared.parameterIndex(parameter.name);
    } catch {
      throw queryFailed("the query's placeholders are not its parameters");
    }
    bindParameter(prepared, index, parameter);
  }
}

const DATE_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP_TEXT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function bindParameter(prepared: DuckDBPreparedStatement, index: number, { name, type, value }: BoundParameter): void {
  const invalid = (): MalusError => new MalusError('invalid-input', `parameter ${name} is not a valid ${type}`);
  switch (type) {
    case 'VARCHAR':
      if (typeof value !== 'string') throw invalid();
      prepared.bindVarchar(index, value);
      return;
    case 'BOOLEAN':
      if (typeof value !== 'boolean') throw invalid();
      prepared.bindBoolean(index, value);
      return;
    case 'DOUBLE':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid();
      prepared.bindDouble(index, value);
      return;
    case 'BIGINT': {
      const big = typeof value === 'bigint' ? value : typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : undefined;
      if (big === undefined || big < INT64_MIN || big > INT64_MAX) throw invalid();
      prepared.bindBigInt(index, big);
      return;
    }
    case 'DATE': {
      const m = typeof value === 'string' ? DATE_TEXT.exec(value) : null;
      if (m === null) throw invalid();
      let date: DuckDBDateValue;
      try {
        date = DuckDBDateValue.fromParts({ year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) });
      } catch {
        throw invalid();
      }
      prepared.bindDate(index, date);
      return;
    }
    case 'TIMESTAMP': {
      const m = typeof value === 'string' ? TIMESTAMP_TEXT.exec(value) : null;
      if (m === null) throw invalid();
      const [hour, min, sec] = [m[4], m[5], m[6]].map((part) => Number(part ?? 0)) as [number, number, number];
      if (hour > 23 || min > 59 || sec > 59) throw invalid();
      let timestamp: DuckDBTimestampValue;
      try {
        timestamp = DuckDBTimestampValue.fromParts({
          date: { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) },
          time: { hour, min, sec, micros: Number((m[7] ?? '').padEnd(6, '0')) },
        });
      } catch {
        throw invalid();
      }
      prepared.bindTimestamp(index, timestamp);
      return;
    }
    default:
      throw invalid();
  }
}
