// Reading a CSV file the way C3R does: UTF-8, comma-separated, '"'-quoted, every value a string.
// DuckDB parses the values and reports undecodable rows; csv-scan.ts supplies row lengths, line
// numbers and which fields were quoted. Then C3R's rules (its CSV parser's defaults) apply:
//   - an unquoted value is trimmed (characters at or below U+0020 at either end); a quoted one is not;
//   - NULL depends on --csvInputNULLValue (C3R's CsvRowReader):
//       not given  -> a blank unquoted value and an empty quoted value ("") are NULL;
//       blank      -> a blank unquoted value is NULL; "" is the empty string;
//       `""`       -> only "" is NULL; a blank unquoted value is the empty string;
//       any other  -> a value equal to it (quoted or not) is NULL; blanks and "" are empty strings.
import type { DuckDBValue } from '@duckdb/node-api';
import { MalusError } from '../../errors/index.js';
import { scanCsvStructure } from './csv-scan.js';
import { sqlString, withDuckDb } from './duckdb.js';
import { javaTrim } from './headers.js';

export interface CsvReadOptions {
  /** How messages name the file. */
  readonly name: string;
  /** Whether the first row is a header row (it is kept apart from the data rows). */
  readonly headerRow: boolean;
  /** C3R's --csvInputNULLValue. */
  readonly nullValue?: string;
}

export interface CsvTable {
  /** The header row's values as parsed (trimmed when unquoted), when the file has one. */
  readonly header?: readonly string[];
  readonly columnCount: number;
  readonly rows: (string | null)[][];
  /** The 1-based line each data row starts on. */
  readonly lines: Int32Array;
}

/** DuckDB reports these for a row; the names are DuckDB's reject error types. */
function rejectMessage(name: string, line: number, type: string, message: string): string {
  if (type === 'INVALID ENCODING') return `${name} line ${line}: not valid UTF-8 (C3R reads CSV files as UTF-8)`;
  if (type === 'MISSING COLUMNS' || type === 'TOO MANY COLUMNS') return `${name} line ${line}: wrong number of columns (${message})`;
  return `${name} line ${line}: cannot be read as CSV (${type.toLowerCase()}: ${message})`;
}

type NullRule = (value: string, quoted: boolean) => boolean;

function nullRule(nullValue: string | undefined): NullRule {
  if (nullValue === undefined) return (value) => value === '';
  if (javaTrim(nullValue) === '') return (value, quoted) => !quoted && value === '';
  if (javaTrim(nullValue) === '""') return (value, quoted) => quoted && value === '';
  return (value) => value === nullValue;
}

export async function readC3rCsv(path: string, options: CsvReadOptions): Promise<CsvTable> {
  const structure = await scanCsvStructure(path, options.name, options.headerRow);
  const { fieldCount } = structure;
  if (structure.recordCount === 0) {
    if (options.headerRow) throw new MalusError('invalid-input', `${options.name} is empty: expected a header row`);
    return { columnCount: 0, rows: [], lines: new Int32Array(0) };
  }
  const columns = `{${Array.from({ length: fieldCount }, (_, i) => `'c${i}': 'VARCHAR'`).join(', ')}}`;
  const raw = await withDuckDb(async (connection) => {
    // nullstr '' with allow_quoted_nulls off: an empty unquoted field comes back NULL and an empty
    // quoted one as '', so the C3R rules above can be applied afterwards.
    const result = await connection.runAndReadAll(
      `SELECT * FROM read_csv(${sqlString(path)}, header = false, auto_detect = false, columns = ${columns},
        delim = ',', quote = '"', escape = '"', nullstr = '', allow_quoted_nulls = false, strict_mode = true,
        null_padding = false, max_line_size = 134217728, store_rejects = true, ignore_errors = true)`,
    );
    const rejects = await connection.runAndReadAll('SELECT line, error_type, error_message FROM reject_errors ORDER BY line LIMIT 1');
    const reject = rejects.getRows()[0];
    if (reject !== undefined) {
      // DuckDB counts records, not lines; the scan knows the line each record starts on.
      const record = Number(reject[0]);
      const line = structure.lines[record - 1] ?? record;
      throw new MalusError('invalid-input', rejectMessage(options.name, line, String(reject[1]), String(reject[2])));
    }
    return result.getRows();
  }).catch((error: unknown) => {
    if (error instanceof MalusError) throw error;
    throw new MalusError('invalid-input', `${options.name} cannot be read as CSV: ${(error as Error).message.split('\n')[0] ?? ''}`);
  });
  // A single-column file: DuckDB gives a blank line as a NULL row; C3R's parser skips it.
  const records: DuckDBValue[][] = fieldCount === 1 ? raw.filter((row) => row[0] !== null) : raw;
  if (records.length !== structure.recordCount) {
    throw new MalusError('invalid-input', `${options.name}: DuckDB read ${records.length} rows where ${structure.recordCount} were expected; the file's CSV structure is ambiguous`);
  }

  const isNull = nullRule(options.nullValue);
  const quoted = structure.quoted;
  const first = options.headerRow ? 1 : 0;
  let header: string[] | undefined;
  if (options.headerRow) {
    header = (records[0] ?? []).map((value, c) => {
      const text = typeof value === 'string' ? value : '';
      return quoted[c] === 1 ? text : javaTrim(text);
    });
  }
  const rows: (string | null)[][] = new Array<(string | null)[]>(records.length - first);
  for (let r = first; r < records.length; r++) {
    const record = records[r] ?? [];
    const row = new Array<string | null>(fieldCount);
    const base = r * fieldCount;
    for (let c = 0; c < fieldCount; c++) {
      const value = record[c];
      const wasQuoted = quoted[base + c] === 1;
      const text = typeof value === 'string' ? (wasQuoted ? value : javaTrim(value)) : '';
      row[c] = isNull(text, wasQuoted) ? null : text;
    }
    rows[r - first] = row;
  }
  return { ...(header === undefined ? {} : { header }), columnCount: fieldCount, rows, lines: structure.lines.subarray(first) };
}
