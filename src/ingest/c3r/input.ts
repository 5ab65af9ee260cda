// Loading an input file, CSV or Parquet, into one shape: headers, column types and rows, plus a
// way to name a row in messages (its line in a CSV file, its position in a Parquet file).
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { VARCHAR, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import { MalusError } from '../../errors/index.js';
import { readC3rCsv } from './csv-read.js';
import { readParquetTable } from './parquet.js';

export const C3R_FILE_FORMATS = ['csv', 'parquet'] as const;
export type C3rFileFormat = (typeof C3R_FILE_FORMATS)[number];

/** The format given, or the one the file name says (C3R goes by the suffix too). */
export function fileFormatOf(path: string, given?: string): C3rFileFormat {
  if (given !== undefined) {
    const format = C3R_FILE_FORMATS.find((f) => f === given.toLowerCase());
    if (format === undefined) throw new MalusError('usage', `unknown file format \`${given}\`; use csv or parquet`);
    return format;
  }
  const suffix = extname(path).toLowerCase();
  if (suffix === '.csv') return 'csv';
  if (suffix === '.parquet') return 'parquet';
  throw new MalusError('usage', `cannot tell whether ${path} is CSV or Parquet from its name; pass --fileFormat csv or --fileFormat parquet`);
}

export interface LoadedTable {
  readonly format: C3rFileFormat;
  /** Header names as the file has them (empty for a CSV file without a header row). */
  readonly headers: readonly string[];
  readonly columnCount: number;
  /** DuckDB column types; every CSV column is VARCHAR. */
  readonly types: readonly DuckDBType[];
  /** CSV values are strings or null; Parquet values are whatever DuckDB reads. */
  readonly rows: DuckDBValue[][];
  /** How a message names a (zero-based) data row. */
  where(row: number): string;
}

export interface LoadOptions {
  readonly headerRow: boolean;
  /** --csvInputNULLValue. */
  readonly csvNullValue?: string;
}

export function checkInputFile(path: string): void {
  if (!existsSync(path)) throw new MalusError('file-unreadable', `cannot read ${path}: ENOENT`);
  if (statSync(path).isDirectory()) throw new MalusError('file-unreadable', `cannot read ${path}: it is a directory`);
  try {
    closeSync(openSync(path, 'r'));
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

export async function loadTable(path: string, format: C3rFileFormat, options: LoadOptions): Promise<LoadedTable> {
  if (format === 'parquet') {
    const table = await readParquetTable(path, path);
    return { format, headers: table.headers, columnCount: table.headers.length, types: table.types, rows: table.rows, where: (row) => `row ${row + 1}` };
  }
  const table = await readC3rCsv(path, {
    name: path,
    headerRow: options.headerRow,
    ...(options.csvNullValue === undefined ? {} : { nullValue: options.csvNullValue }),
  });
  const lines = table.lines;
  return {
    format,
    headers: table.header ?? [],
    columnCount: table.columnCount,
    types: Array.from({ length: table.columnCount }, () => VARCHAR),
    rows: table.rows,
    where: (row) => `line ${lines[row] ?? row + 1}`,
  };
}
