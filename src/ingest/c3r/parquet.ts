// Reading and writing Parquet through DuckDB, and the mapping between DuckDB's column types and
// C3R's value types. Sealed and fingerprint output columns are strings (Parquet BYTE_ARRAY/UTF8),
// as C3R writes them; cleartext columns keep their type.
import {
  BIGINT,
  BOOLEAN,
  DATE,
  DOUBLE,
  DuckDBDateValue,
  DuckDBTypeId,
  FLOAT,
  INTEGER,
  SMALLINT,
  VARCHAR,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { MalusError } from '../../errors/index.js';
import { sqlIdentifier, sqlString, withDuckDb } from './duckdb.js';
import type { C3rDataType, C3rValue } from './values.js';

export interface ParquetTable {
  readonly headers: readonly string[];
  readonly types: readonly DuckDBType[];
  readonly rows: DuckDBValue[][];
}

export interface ParquetColumn {
  readonly name: string;
  readonly type: DuckDBType;
}

export async function readParquetTable(path: string, name: string): Promise<ParquetTable> {
  try {
    return await withDuckDb(async (connection) => {
      const result = await connection.runAndReadAll(`SELECT * FROM read_parquet(${sqlString(path)})`);
      return { headers: result.columnNames(), types: result.columnTypes(), rows: result.getRows() };
    });
  } catch (error) {
    // DuckDB's first line, without its error class and with the file's name as given.
    const first = ((error as Error).message.split('\n')[0] ?? '').replace(/^[A-Za-z ]*Error: /, '').split(path).join(name);
    throw new MalusError('invalid-input', `${name} cannot be read as Parquet: ${first}`);
  }
}

/** Writes rows to a Parquet file at `path` (which must not exist yet). */
export async function writeParquetTable(path: string, columns: readonly ParquetColumn[], rows: readonly (readonly DuckDBValue[])[]): Promise<void> {
  await withDuckDb(async (connection) => {
    const definitions = columns.map((c) => `${sqlIdentifier(c.name)} ${c.type.toString()}`).join(', ');
    await connection.run(`CREATE TABLE c3r_output (${definitions})`);
    const appender = await connection.createAppender('c3r_output');
    for (const row of rows) {
      for (let c = 0; c < columns.length; c++) {
        const value = row[c] ?? null;
        if (value === null) appender.appendNull();
        else appender.appendValue(value, (columns[c] as ParquetColumn).type);
      }
      appender.endRow();
    }
    appender.closeSync();
    await connection.run(`COPY c3r_output TO ${sqlString(path)} (FORMAT parquet)`);
  });
}

/** The C3R type of a DuckDB column, or undefined when Malus cannot seal or fingerprint it. */
export function c3rTypeOf(type: DuckDBType): C3rDataType | undefined {
  switch (type.typeId) {
    case DuckDBTypeId.VARCHAR:
      return 'string';
    case DuckDBTypeId.BIGINT:
      return 'bigint';
    case DuckDBTypeId.INTEGER:
      return 'int';
    case DuckDBTypeId.SMALLINT:
      return 'smallint';
    case DuckDBTypeId.BOOLEAN:
      return 'boolean';
    case DuckDBTypeId.DATE:
      return 'date';
    case DuckDBTypeId.DOUBLE:
      return 'double';
    case DuckDBTypeId.FLOAT:
      return 'float';
    default:
      return undefined;
  }
}

/** A DuckDB value of a column of C3R type `type` as a C3R value (null stays null). */
export function toC3rValue(value: DuckDBValue, type: C3rDataType): C3rValue | null {
  if (value === null) return null;
  switch (type) {
    case 'string':
      return { type, value: String(value) };
    case 'bigint':
      return { type, value: typeof value === 'bigint' ? value : BigInt(String(value)) };
    case 'int':
    case 'smallint':
    case 'double':
    case 'float':
      return { type, value: Number(value) };
    case 'boolean':
      return { type, value: value === true };
    case 'date':
      return { type, value: value instanceof DuckDBDateValue ? value.days : Number(value) };
  }
}

const DUCKDB_TYPE: Record<C3rDataType, DuckDBType> = {
  string: VARCHAR,
  bigint: BIGINT,
  int: INTEGER,
  smallint: SMALLINT,
  boolean: BOOLEAN,
  date: DATE,
  double: DOUBLE,
  float: FLOAT,
};

export function duckDbTypeOf(type: C3rDataType): DuckDBType {
  return DUCKDB_TYPE[type];
}

/** A C3R value as DuckDB's appender takes it. */
export function fromC3rValue(value: C3rValue): DuckDBValue {
  return value.type === 'date' ? new DuckDBDateValue(value.value) : value.value;
}
