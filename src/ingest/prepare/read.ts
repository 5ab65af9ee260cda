import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Column } from '../../agreement/index.js';
import { MalusError } from '../../errors/index.js';
import { ident, literal, type IngestDb } from '../duckdb.js';
import { ProblemList, SHOWN_PROBLEMS } from './problems.js';

// Reading the provider's input into an in-memory DuckDB table, `malus_raw`, whose columns carry
// the agreement's names in the agreement's order. CSV is read as text (types are checked later,
// row by row); rows DuckDB cannot split into the right number of fields are reported by line.

export const INPUT_FORMATS = ['csv', 'parquet', 'jsonl'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];
export const CSV_ENCODINGS = ['utf-8', 'utf-16', 'latin-1'] as const;
export type CsvEncoding = (typeof CSV_ENCODINGS)[number];
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

export interface CsvDialect {
  readonly delimiter?: string;
  readonly quote?: string;
  readonly escape?: string;
  /** Whether the first line names the columns (default true); without, columns are positional. */
  readonly header?: boolean;
  /** The text that stands for NULL (default: an empty unquoted field). */
  readonly nullString?: string;
  readonly encoding?: CsvEncoding;
}

export interface StagedInput {
  readonly rows: number;
}

export const RAW_TABLE = 'malus_raw';

export function inferFormat(path: string): InputFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.parquet')) return 'parquet';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return 'csv';
}

function checkChar(value: string | undefined, option: string): void {
  if (value !== undefined && Array.from(value).length !== 1) throw new MalusError('usage', `${option} must be exactly one character`);
  if (value === '\n' || value === '\r') throw new MalusError('usage', `${option} cannot be a line break: lines end the rows`);
}

/** The dialect's characters must differ: a quote that is also the delimiter reads nothing sensibly. */
function checkDialect(dialect: CsvDialect): void {
  checkChar(dialect.delimiter, '--delimiter');
  checkChar(dialect.quote, '--quote');
  checkChar(dialect.escape, '--escape');
  if ((dialect.quote ?? '"') === (dialect.delimiter ?? ',')) throw new MalusError('usage', '--quote and --delimiter must be different characters');
}

/** CSV's options given for another format are a mistake to say, not to ignore. */
function checkDialectFits(format: InputFormat, dialect: CsvDialect): void {
  if (format === 'csv') return;
  const given = [
    ['--delimiter', dialect.delimiter],
    ['--quote', dialect.quote],
    ['--escape', dialect.escape],
    ['--null-string', dialect.nullString],
    ['--encoding', dialect.encoding],
    ['--no-header', dialect.header === false ? true : undefined],
  ].filter(([, value]) => value !== undefined).map(([option]) => option);
  if (given.length > 0) throw new MalusError('usage', `${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} for CSV input; the input is ${format === 'parquet' ? 'Parquet' : 'JSON lines'}`);
}

/** The first `bytes` bytes of a file. */
function readPrefix(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const probe = Buffer.allocUnsafe(bytes);
    return probe.subarray(0, readSync(fd, probe, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * The names in the first CSV record, read by hand so that a broken row further down cannot skew
 * them. The file is read from 64 KiB on, larger only while the first line has not ended.
 */
function csvHeader(path: string, dialect: CsvDialect): string[] {
  const size = Math.max(1, statSync(path).size);
  for (let limit = 65_536; ; limit *= 16) {
    const bytes = Math.min(limit, MAX_LINE_BYTES, size);
    const fields = headerFields(readPrefix(path, bytes), dialect, bytes === size);
    if (fields !== undefined) return fields;
    if (bytes >= MAX_LINE_BYTES) throw new MalusError('invalid-input', `line 1 (the header) is longer than ${MAX_LINE_BYTES} bytes`);
  }
}

/** The header's fields, or undefined if the line goes on past `probe` (and the file does too). */
function headerFields(probe: Buffer, dialect: CsvDialect, wholeFile: boolean): string[] | undefined {
  const encoding = dialect.encoding ?? 'utf-8';
  // Decoded leniently: a bad byte further down is reported by DuckDB with its line; only a bad
  // byte inside the header itself is an error here.
  let text = new TextDecoder(encoding === 'latin-1' ? 'latin1' : encoding === 'utf-16' ? 'utf-16le' : 'utf-8').decode(probe);
  if (text.startsWith('\ufeff')) text = text.slice(1);
  const delimiter = dialect.delimiter ?? ',';
  const quote = dialect.quote ?? '"';
  const escape = dialect.escape ?? quote;
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  const done = (): string[] => {
    fields.push(field);
    if (fields.some((name) => name.includes('\ufffd'))) {
      throw new MalusError('invalid-input', `line 1 (the header) is not valid ${encoding.toUpperCase()}: set --encoding to the file's encoding`);
    }
    return fields;
  };
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === escape && text[i + 1] === quote) {
        field += quote;
        i += 1;
      } else if (ch === quote) quoted = false;
      else field += ch;
    } else if (ch === quote) quoted = true;
    else if (ch === delimiter) {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') return done();
    else field += ch;
  }
  return wholeFile ? done() : undefined;
}

/** Matches the file's columns to the agreement's: exactly, else ignoring case; every mismatch is reported. */
/**
 * Matches the input's field names to the table's columns. A field that names no column is
 * reported by its position, never by its text: a CSV read without its --no-header gives its
 * first row as the header, and that row's values (identifiers among them) must not be printed.
 */
function matchColumns(found: readonly string[], columns: readonly Column[], ignoreExtra = false, csv = false): Map<string, string> {
  const problems = new ProblemList();
  const seen = new Map<string, number>();
  found.forEach((name, i) => {
    const key = name.trim().toLowerCase();
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else problems.add({ message: `header fields ${first + 1} and ${i + 1} have the same name` });
  });
  problems.throwIfAny('the input header does not match the table');
  const byName = new Map<string, string>();
  const remaining = new Set(found);
  for (const column of columns) {
    const exact = found.find((name) => name === column.name);
    const loose = exact ?? found.find((name) => name.trim().toLowerCase() === column.name.toLowerCase());
    if (loose === undefined || !remaining.has(loose)) {
      problems.add({ column: column.name, message: 'is in the agreement but not in the input' });
      continue;
    }
    remaining.delete(loose);
    byName.set(column.name, loose);
  }
  if (!ignoreExtra) {
    found.forEach((name, i) => {
      if (!remaining.has(name)) return;
      // A CSV's first line may be data (a file without a header): named by position only. A
      // Parquet column or a JSON key is a name, and saying which is more useful.
      if (csv) problems.add({ message: `header field ${i + 1} is not a column of the agreement: remove that column (only agreed columns leave your machine)` });
      else problems.add({ column: name, message: 'is in the input but not in the agreement: remove it (only agreed columns leave your machine)' });
    });
  }
  // Not one column found: most likely a file without a header read as if it had one.
  const hint = csv && byName.size === 0 ? ' (no field of the first line names a column: if the file has no header, give --no-header)' : '';
  problems.throwIfAny(`the input header does not match the table${hint}`);
  return byName;
}

/**
 * The first line of a JSON-lines file that is not one JSON object (blank lines aside), 1-based;
 * read only after DuckDB has refused the file, whose own message counts lines its own way.
 */
async function firstMalformedJsonLine(path: string): Promise<number | undefined> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let number = 0;
  try {
    for await (const line of lines) {
      number += 1;
      if (line.trim() === '') continue;
      try {
        const value: unknown = JSON.parse(line);
        if (typeof value !== 'object' || value === null || Array.isArray(value)) return number;
      } catch {
        return number;
      }
    }
  } finally {
    lines.close();
  }
  return undefined;
}

/** readFailure, with the line of a JSON-lines file that DuckDB could not read when there is one. */
async function inputFailure(error: unknown, encoding: string, format: InputFormat, path: string): Promise<MalusError> {
  const failure = readFailure(error, encoding, format, path);
  if (format !== 'jsonl' || failure.message !== 'the input is not valid JSON lines') return failure;
  const line = await firstMalformedJsonLine(path).catch(() => undefined);
  return line === undefined ? failure : new MalusError('invalid-input', `line ${line} is not a JSON object (the input must hold one per line)`);
}

/**
 * DuckDB's messages quote the offending line; only its line number and kind may be shown. They
 * also name the file, whose name must not decide the kind: it is cut out first, and the format
 * the input was read as says which reader failed.
 */
function readFailure(error: unknown, encoding: string, format: InputFormat, path: string): MalusError {
  const message = (error instanceof Error ? error.message : String(error)).split(path).join('<input>');
  const line = /on Line: (\d+)/i.exec(message)?.[1];
  const at = line === undefined ? 'the input' : `line ${line}`;
  if (/maximum line size/i.test(message)) return new MalusError('invalid-input', `${at} is longer than the maximum line size of ${MAX_LINE_BYTES} bytes`);
  if (format === 'csv' && /unicode|encod/i.test(message)) return new MalusError('invalid-input', `${at} is not valid ${encoding.toUpperCase()}: set --encoding to the file's encoding`);
  if (/no such file|cannot open|could not open|permission denied/i.test(message)) return new MalusError('file-unreadable', `cannot read input ${path}`);
  if (format === 'parquet') return new MalusError('invalid-input', `the input ${path} is not a readable Parquet file`);
  if (format === 'jsonl') return new MalusError('invalid-input', 'the input is not valid JSON lines');
  return new MalusError('invalid-input', `${at} could not be read as CSV`);
}

const REJECT_MESSAGES: Record<string, (expected: number, encoding: string) => string> = {
  'MISSING COLUMNS': (n) => `too few columns (the table has ${n})`,
  'TOO MANY COLUMNS': (n) => `too many columns (the table has ${n})`,
  'INVALID ENCODING': (_, encoding) => `is not valid ${encoding.toUpperCase()}`,
  'UNQUOTED VALUE': () => 'a quote is never closed, or a quoted field is followed by other characters',
  'LINE SIZE OVER MAXIMUM': () => `is longer than ${MAX_LINE_BYTES} bytes`,
};

async function csvRejects(db: IngestDb, expected: number, encoding: string, problems: ProblemList): Promise<void> {
  const reader = await db.connection.runAndReadAll(
    'SELECT line, min(error_type) AS kind, count(*) OVER () AS total FROM reject_errors GROUP BY line ORDER BY line LIMIT 20',
  );
  const rows = reader.getRowObjects();
  const total = Number(rows[0]?.total ?? 0);
  problems.addCounted(
    rows.map((row) => ({ line: Number(row.line), message: (REJECT_MESSAGES[String(row.kind)] ?? (() => String(row.kind).toLowerCase()))(expected, encoding) })),
    total,
  );
}

/**
 * DuckDB infers a JSON-lines file's keys from a sample of its first objects: a key that only a
 * later object has is silently dropped, and a key one object lacks is read as NULL. So every
 * object's keys are checked against the matched ones over the whole file: a missing key is
 * refused by row and column, as a CSV row with too few fields is (an explicit `null` is a value
 * and stays allowed), and a key the table does not have is refused like an extra CSV column
 * (unless extra columns are read past, for PSI).
 */
async function refuseOtherKeys(db: IngestDb, path: string, keys: readonly string[], ignoreExtra: boolean): Promise<void> {
  const scratch = 'malus_json_keys';
  const wanted = `[${keys.map(literal).join(', ')}]::VARCHAR[]`;
  const extra = ignoreExtra ? '[]::VARCHAR[]' : `list_filter(found, k -> NOT list_contains(${wanted}, k))`;
  try {
    await db.connection.run(
      `CREATE OR REPLACE TEMP TABLE ${scratch} AS SELECT list_filter(${wanted}, k -> NOT list_contains(found, k)) AS missing, ${extra} AS extra ` +
        `FROM (SELECT json_keys(json) AS found FROM read_json_objects(${literal(path)}, format = 'newline_delimited'))`,
    );
    const reader = await db.connection.runAndReadAll(
      `SELECT rowid + 1 AS r, missing, extra, sum(len(missing) + len(extra)) OVER () AS total FROM ${scratch} ` +
        `WHERE len(missing) + len(extra) > 0 ORDER BY rowid LIMIT ${SHOWN_PROBLEMS}`,
    );
    const found = reader.getRowObjectsJS();
    const problems = new ProblemList();
    const examples = found.flatMap((row) => [
      ...(row.missing as string[]).map((key) => ({ row: Number(row.r), column: key, message: 'is missing from the JSON object (write null for an empty value)' })),
      ...(row.extra as string[]).map((key) => ({ row: Number(row.r), column: key, message: 'is in the input but not in the agreement: remove it (only agreed columns leave your machine)' })),
    ]);
    problems.addCounted(examples, Number(found[0]?.total ?? 0));
    problems.throwIfAny('the input has malformed rows');
  } finally {
    await db.connection.run(`DROP TABLE IF EXISTS ${scratch}`);
  }
}

/** Loads the input into `malus_raw`, or throws every structural problem it found. */
export async function stageInput(
  db: IngestDb,
  input: {
    path: string;
    format: InputFormat;
    dialect?: CsvDialect;
    columns: readonly Column[];
    /** Wraps the query of the input's rows (columns named as in the agreement) to compute more in the same pass. */
    stage?: (inner: string) => string;
    /** Read only the named columns of a wider file (a PSI input), instead of refusing the others. */
    ignoreExtraColumns?: boolean;
  },
): Promise<StagedInput> {
  const { path, format, columns } = input;
  const dialect = input.dialect ?? {};
  checkDialectFits(format, dialect);
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw new MalusError('file-unreadable', `cannot read input ${path}: it is a folder, not a file`);
    size = stat.size;
    // Opened once here, so that a file this user may not read is named with its reason, not left
    // to whichever reader meets it first.
    closeSync(openSync(path, 'r'));
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('file-unreadable', `cannot read input ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (size === 0) throw new MalusError('invalid-input', `the input ${path} is empty`);
  // DuckDB expands glob patterns in file names: a name with one could make it read other files.
  if (/[*?[\]{}]/.test(path)) throw new MalusError('usage', `the input path ${path} contains a glob character (* ? [ ] { }): rename the file`);
  const encoding = dialect.encoding ?? 'utf-8';
  let source: string;
  let select: string;
  if (format === 'csv') {
    checkDialect(dialect);
    const header = dialect.header ?? true;
    const names = header ? csvHeader(path, dialect) : columns.map((c) => c.name);
    const byName = header ? matchColumns(names, columns, input.ignoreExtraColumns, true) : new Map(columns.map((c) => [c.name, c.name]));
    const columnList = names.map((name) => `${literal(name)}: 'VARCHAR'`).join(', ');
    const options = [
      `header = ${header}`,
      'auto_detect = false',
      `columns = {${columnList}}`,
      `delim = ${literal(dialect.delimiter ?? ',')}`,
      `quote = ${literal(dialect.quote ?? '"')}`,
      `escape = ${literal(dialect.escape ?? dialect.quote ?? '"')}`,
      `encoding = ${literal(encoding)}`,
      `max_line_size = ${MAX_LINE_BYTES}`,
      'allow_quoted_nulls = false',
      'strict_mode = true',
      'store_rejects = true',
      'ignore_errors = true',
      ...(dialect.nullString === undefined ? [] : [`nullstr = ${literal(dialect.nullString)}`]),
    ];
    source = `read_csv(${literal(path)}, ${options.join(', ')})`;
    select = columns.map((c) => `${ident(byName.get(c.name) ?? c.name)} AS ${ident(c.name)}`).join(', ');
  } else {
    source = format === 'parquet' ? `read_parquet(${literal(path)})` : `read_json(${literal(path)}, format = 'newline_delimited')`;
    let names: string[];
    try {
      const described = await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
      names = described.getRowObjects().map((row) => String(row.column_name));
    } catch (error) {
      throw await inputFailure(error, encoding, format, path);
    }
    const byName = matchColumns(names, columns, input.ignoreExtraColumns);
    select = columns.map((c) => `${ident(byName.get(c.name) ?? c.name)} AS ${ident(c.name)}`).join(', ');
    if (format === 'jsonl') {
      const keys = [...byName.values()];
      await refuseOtherKeys(db, path, keys, input.ignoreExtraColumns === true);
      // Read as text, like CSV, so that a value of another type than the sample's is reported by
      // row and column with the other type problems, instead of failing the whole read.
      const text = keys.map((name) => `${literal(name)}: 'VARCHAR'`).join(', ');
      source = `read_json(${literal(path)}, format = 'newline_delimited', columns = {${text}})`;
    }
  }
  const inner = `SELECT ${select} FROM ${source}`;
  try {
    await db.connection.run(`CREATE OR REPLACE TEMP TABLE ${RAW_TABLE} AS ${input.stage === undefined ? inner : input.stage(inner)}`);
  } catch (error) {
    throw await inputFailure(error, encoding, format, path);
  }
  if (format === 'csv') {
    const problems = new ProblemList();
    await csvRejects(db, columns.length, encoding, problems);
    problems.throwIfAny('the input has malformed rows');
  }
  const counted = await db.connection.runAndReadAll(`SELECT count(*) AS n FROM ${RAW_TABLE}`);
  const rows = Number(counted.getRowObjects()[0]?.n ?? 0);
  if (rows === 0) throw new MalusError('invalid-input', 'the input has no data rows');
  return { rows };
}
