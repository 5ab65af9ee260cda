// Encrypting and decrypting whole files, as C3R's `encrypt` and `decrypt` modes do.
// Encrypting follows the schema: each output column is an input column in cleartext, sealed or
// fingerprinted; rows come out in random order (C3R orders them by their random nonces), and the
// header row shows the normalized target headers. Decrypting needs no schema, only the secret and
// the collaboration id: every sealed cell is opened, fingerprints and cleartext pass through.
import { randomBytes, randomInt } from 'node:crypto';
import { basename } from 'node:path';
import { VARCHAR, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import { MalusError } from '../../errors/index.js';
import { csvLineWriter } from './csv-write.js';
import { fingerprintWithKey, looksC3rFingerprint } from './fingerprint.js';
import { c3rHeaderProblem, normalizeC3rHeader } from './headers.js';
import { checkInputFile, fileFormatOf, loadTable, type C3rFileFormat, type LoadedTable } from './input.js';
import { C3R_NONCE_BYTES, deriveC3rKeys, deriveCellKey, deriveFingerprintKey, type C3rKeys } from './keys.js';
import { checkOutputPath, openTextOutput, writeAtomically } from './output.js';
import { c3rTypeOf, duckDbTypeOf, fromC3rValue, toC3rValue, writeParquetTable, type ParquetColumn } from './parquet.js';
import { toC3rSchema, type C3rColumnSchema, type C3rSchema } from './schema.js';
import { createUnsealer, looksC3rSealed, padTargetBytes, sealProblem, sealWithCellKey } from './sealed.js';
import { c3rSettings, checkSchemaAgainstSettings, findFingerprintDuplicate, type C3rSettings } from './settings.js';
import { fingerprintType, toFingerprintForm, valueBytes, valueText, type C3rDataType, type C3rValue } from './values.js';

interface CommonOptions {
  readonly input: string;
  /** Default: the input path with `.out` appended, as C3R does. */
  readonly output?: string;
  readonly secret: Uint8Array;
  readonly collaborationId: string;
  /** csv or parquet; by default from the input's suffix. The output has the input's format. */
  readonly fileFormat?: string;
  readonly overwrite?: boolean;
  /** Check the options, the schema and the paths, but read and write no data. */
  readonly dryRun?: boolean;
  /** C3R's --csvInputNULLValue. */
  readonly csvInputNullValue?: string;
  /** C3R's --csvOutputNULLValue. */
  readonly csvOutputNullValue?: string;
}

export interface C3rEncryptOptions extends CommonOptions {
  /** A schema from parseC3rSchema, or the schema file's JSON (text or parsed), which is validated here. */
  readonly schema: unknown;
  readonly settings?: Partial<C3rSettings>;
}

export interface C3rDecryptOptions extends CommonOptions {
  /** C3R's --failOnFingerprintColumns: refuse a file with fingerprint cells instead of passing them through. */
  readonly failOnFingerprintColumns?: boolean;
}

export interface C3rEncryptSummary {
  readonly format: C3rFileFormat;
  readonly output: string;
  readonly dryRun: boolean;
  /** Data rows written (0 on a dry run). */
  readonly rows: number;
  readonly columns: number;
  readonly sealedColumns: number;
  readonly fingerprintColumns: number;
  readonly cleartextColumns: number;
}

export interface C3rDecryptSummary {
  readonly format: C3rFileFormat;
  readonly output: string;
  readonly dryRun: boolean;
  readonly rows: number;
  readonly columns: number;
  /** Columns with at least one sealed cell. */
  readonly sealedColumns: number;
  readonly sealedCells: number;
  /** Columns with fingerprint cells, which pass through unchanged. */
  readonly fingerprintColumns: number;
}

/**
 * C3R's default output (Config.getDefaultTargetFile): the input's file name, in the current
 * folder, with `.out` before its extension (`data/rows.csv` gives `rows.out.csv`).
 */
export function defaultC3rOutput(input: string): string {
  const name = basename(input);
  const dot = name.lastIndexOf('.');
  return dot < 0 ? `${name}.out` : `${name.slice(0, dot)}.out${name.slice(dot)}`;
}

function prepare(options: CommonOptions): { format: C3rFileFormat; output: string } {
  const format = fileFormatOf(options.input, options.fileFormat);
  const output = options.output ?? defaultC3rOutput(options.input);
  if (format === 'parquet' && (options.csvInputNullValue !== undefined || options.csvOutputNullValue !== undefined)) {
    throw new MalusError('usage', '--csvInputNULLValue and --csvOutputNULLValue are for CSV files; the input is Parquet');
  }
  checkInputFile(options.input);
  checkOutputPath(options.input, output, options.overwrite === true);
  return { format, output };
}

/** Fingerprints remembered per column; a join column repeats its values, and the memo is bounded. */
const FINGERPRINT_MEMO_ENTRIES = 1 << 17;

/** What one output column is made of. */
interface Plan {
  readonly column: C3rColumnSchema;
  readonly source: number;
  /** Sealed and fingerprint columns: the C3R type of the input column. */
  readonly dataType: C3rDataType;
  /** Sealed columns: the length the pad fills to (undefined for pad none). */
  readonly padTarget?: number;
  /** Fingerprint columns: the HMAC key and the type values are HMACed as. */
  readonly hmacKey?: Buffer;
  readonly fingerprintType?: C3rDataType;
  readonly outputType: DuckDBType;
}

/** The input column index of every schema column, checking the input's headers as C3R does. */
function sourceIndexes(schema: C3rSchema, table: LoadedTable, input: string): number[] {
  if (!schema.headerRow) {
    if (table.columnCount !== schema.sourceColumnCount) {
      throw new MalusError(
        'invalid-input',
        `the positional schema describes ${schema.sourceColumnCount ?? 0} input columns but ${input} has ${table.columnCount}`,
      );
    }
    return schema.columns.map((c) => c.sourceIndex ?? -1);
  }
  const positions = new Map<string, number>();
  table.headers.forEach((raw, i) => {
    const header = normalizeC3rHeader(raw);
    const problem = c3rHeaderProblem(header);
    if (problem !== undefined) throw new MalusError('invalid-input', `${input} header row, column ${i + 1}: ${problem}`);
    const earlier = positions.get(header);
    if (earlier !== undefined) {
      throw new MalusError('invalid-input', `${input} header row: columns ${earlier + 1} and ${i + 1} are both \`${header}\` (after lower-casing)`);
    }
    positions.set(header, i);
  });
  const missing = [...new Set(schema.columns.map((c) => c.sourceHeader).filter((h) => !positions.has(h)))];
  if (missing.length > 0) {
    throw new MalusError('invalid-input', `the schema's source column(s) ${missing.map((m) => `\`${m}\``).join(', ')} are not in ${input}'s header row`);
  }
  return schema.columns.map((c) => positions.get(c.sourceHeader) ?? -1);
}

function typedValue(table: LoadedTable, value: DuckDBValue, type: C3rDataType): C3rValue | null {
  if (value === null) return null;
  return table.format === 'csv' ? { type: 'string', value: value as string } : toC3rValue(value, type);
}

/** The bytes of a cell's value, for sealing. */
function cellBytes(table: LoadedTable, value: DuckDBValue, type: C3rDataType): Buffer | null {
  if (value === null) return null;
  if (table.format === 'csv') return Buffer.from(value as string, 'utf8');
  return valueBytes(toC3rValue(value, type) as C3rValue);
}

function makePlans(schema: C3rSchema, table: LoadedTable, input: string, settings: C3rSettings, keys: C3rKeys): Plan[] {
  const sources = sourceIndexes(schema, table, input);
  return schema.columns.map((column, i) => {
    const source = sources[i] ?? -1;
    const inputType = table.types[source] ?? VARCHAR;
    if (column.type === 'cleartext') return { column, source, dataType: 'string', outputType: inputType };
    const dataType = c3rTypeOf(inputType);
    if (dataType === undefined) {
      throw new MalusError(
        'invalid-input',
        `column \`${column.targetHeader}\`: input column \`${column.sourceHeader}\` is ${inputType.toString()}; Malus seals and fingerprints only VARCHAR, BIGINT, INTEGER, SMALLINT, BOOLEAN, DATE, DOUBLE and FLOAT columns`,
      );
    }
    if (column.type === 'fingerprint') {
      let type: C3rDataType;
      try {
        type = fingerprintType(dataType);
      } catch (error) {
        throw new MalusError('invalid-input', `column \`${column.targetHeader}\`: ${(error as Error).message}`);
      }
      const hmacKey = deriveFingerprintKey(keys, column.targetHeader, settings.allowJoinsOnColumnsWithDifferentNames);
      return { column, source, dataType, hmacKey, fingerprintType: type, outputType: VARCHAR };
    }
    // Pad "max" pads to the longest value of the column, so C3R looks at the whole column first;
    // and every value is checked against the pad and the cell size here, in input order, so a
    // refusal names the first offending row rather than a random one of the shuffled output.
    const lengths = table.rows.map((row) => {
      const value = row[source] ?? null;
      if (value === null) return 0;
      return table.format === 'csv' ? Buffer.byteLength(value as string, 'utf8') : (cellBytes(table, value, dataType)?.length ?? 0);
    });
    const longest = lengths.reduce((max, length) => Math.max(max, length), 0);
    let padTarget: number | undefined;
    try {
      padTarget = padTargetBytes(column.pad ?? { type: 'none' }, longest);
    } catch (error) {
      throw new MalusError('invalid-input', `column \`${column.targetHeader}\`: ${(error as Error).message}`);
    }
    lengths.forEach((length, r) => {
      const problem = sealProblem(length, padTarget);
      if (problem !== undefined) throw new MalusError('invalid-input', `${input} ${table.where(r)}, column \`${column.targetHeader}\`: ${problem}`);
    });
    return { column, source, dataType, ...(padTarget === undefined ? {} : { padTarget }), outputType: VARCHAR };
  });
}

/** C3R's duplicate rule for every fingerprint column, checked before anything is encrypted. */
function checkDuplicates(plans: readonly Plan[], table: LoadedTable, settings: C3rSettings): void {
  if (settings.allowDuplicates) return;
  for (const plan of plans) {
    if (plan.column.type !== 'fingerprint') continue;
    // Two fingerprints are equal exactly when the values' fingerprint forms are.
    const keys = table.rows.map((row) => {
      const value = typedValue(table, row[plan.source] ?? null, plan.dataType);
      if (value === null) return null;
      const form = toFingerprintForm(value);
      return form.type === 'string' ? form.value : `${form.type}:${String(form.value)}`;
    });
    const finding = findFingerprintDuplicate(keys, settings);
    if (finding === undefined) continue;
    const where = `${table.where(finding.firstRow)} and ${table.where(finding.secondRow)}`;
    throw new MalusError(
      'invalid-input',
      finding.kind === 'value'
        ? `fingerprint column \`${plan.column.targetHeader}\` would hold the same value twice (${where}) but the collaboration does not allow duplicates (pass --allowDuplicates if it does)`
        : `fingerprint column \`${plan.column.targetHeader}\` has more than one NULL (${where}); unless NULLs are preserved each is a value, and the collaboration does not allow duplicates (pass --allowDuplicates or --preserveNulls if it does)`,
    );
  }
}

/** A random order of the rows (C3R sorts rows by their random nonces to the same end). */
function shuffledOrder(count: number): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const swap = order[i] ?? 0;
    order[i] = order[j] ?? 0;
    order[j] = swap;
  }
  return order;
}

/** Row nonces, drawn from the CSPRNG in batches. */
function nonceSource(): () => Buffer {
  const batch = 2048;
  let pool = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset >= pool.length) {
      pool = randomBytes(C3R_NONCE_BYTES * batch);
      offset = 0;
    }
    const nonce = pool.subarray(offset, offset + C3R_NONCE_BYTES);
    offset += C3R_NONCE_BYTES;
    return nonce;
  };
}

/** Encrypts a CSV or Parquet file under a C3R schema, as `c3r encrypt` would. */
export async function c3rEncryptFile(options: C3rEncryptOptions): Promise<C3rEncryptSummary> {
  const settings = c3rSettings(options.settings);
  const schema = toC3rSchema(options.schema);
  checkSchemaAgainstSettings(schema, settings);
  const keys = deriveC3rKeys(options.secret, options.collaborationId);
  const { format, output } = prepare(options);
  if (format === 'parquet' && !schema.headerRow) {
    throw new MalusError('invalid-input', 'a positional schema (headerRow false) is for CSV files without a header row; Parquet columns always have names');
  }
  const counts = {
    columns: schema.columns.length,
    sealedColumns: schema.columns.filter((c) => c.type === 'sealed').length,
    fingerprintColumns: schema.columns.filter((c) => c.type === 'fingerprint').length,
    cleartextColumns: schema.columns.filter((c) => c.type === 'cleartext').length,
  };
  if (options.dryRun === true) return { format, output, dryRun: true, rows: 0, ...counts };

  const table = await loadTable(options.input, format, {
    headerRow: schema.headerRow,
    ...(options.csvInputNullValue === undefined ? {} : { csvNullValue: options.csvInputNullValue }),
  });
  const plans = makePlans(schema, table, options.input, settings, keys);
  checkDuplicates(plans, table, settings);

  const anySealed = plans.some((p) => p.column.type === 'sealed');
  const order = shuffledOrder(table.rows.length);
  const nextNonce = nonceSource();
  const fingerprintMemos = plans.map((plan) => (plan.column.type === 'fingerprint' ? new Map<string, string>() : undefined));
  const encryptRow = (r: number): DuckDBValue[] => {
    const row = table.rows[r] ?? [];
    const nonce = nextNonce();
    const cellKey = anySealed ? deriveCellKey(keys.rootKey, nonce) : undefined;
    return plans.map((plan, c) => {
      const value = row[plan.source] ?? null;
      if (plan.column.type === 'cleartext') return value;
      if (value === null && settings.preserveNulls) return null;
      try {
        if (plan.column.type === 'sealed') {
          return sealWithCellKey(cellBytes(table, value, plan.dataType), plan.dataType, cellKey as Buffer, nonce, plan.column.targetHeader, plan.padTarget);
        }
        // A CSV cell is text, and equal text fingerprints alike: each distinct value is HMACed once.
        const memo = table.format === 'csv' && value !== null ? fingerprintMemos[c] : undefined;
        const known = memo?.get(value as string);
        if (known !== undefined) return known;
        const typed = typedValue(table, value, plan.dataType);
        const form = typed === null ? null : toFingerprintForm(typed);
        const fingerprint = fingerprintWithKey(plan.hmacKey as Buffer, form === null ? null : valueBytes(form), plan.fingerprintType ?? 'string');
        if (memo !== undefined) {
          if (memo.size >= FINGERPRINT_MEMO_ENTRIES) memo.clear();
          memo.set(value as string, fingerprint);
        }
        return fingerprint;
      } catch (error) {
        if (!(error instanceof MalusError)) throw error;
        throw new MalusError('invalid-input', `${options.input} ${table.where(r)}, column \`${plan.column.targetHeader}\`: ${error.message}`);
      }
    });
  };

  await writeAtomically(output, options.overwrite === true, async (temporary) => {
    if (format === 'csv') {
      const line = csvLineWriter(options.csvOutputNullValue === undefined ? {} : { nullValue: options.csvOutputNullValue });
      const out = openTextOutput(temporary);
      try {
        out.write(line(plans.map((p) => p.column.targetHeader)));
        for (const r of order) out.write(line(encryptRow(r) as (string | null)[]));
      } finally {
        out.close();
      }
      return;
    }
    const rows = Array.from(order, (r) => encryptRow(r));
    await writeParquetTable(temporary, plans.map((p) => ({ name: p.column.targetHeader, type: p.outputType })), rows);
  });
  return { format, output, dryRun: false, rows: table.rows.length, ...counts };
}

/** A cell decryption opened; its value stays typed until the output's column types are known. */
class OpenedCell {
  constructor(readonly value: C3rValue | null) {}
}

type DecodedCell = DuckDBValue | OpenedCell;

function cellText(cell: DecodedCell): string | null {
  if (cell instanceof OpenedCell) return cell.value === null ? null : valueText(cell.value);
  return typeof cell === 'string' ? cell : null;
}

/** Parquet output types: a column of opened cells takes the type the cells were sealed with. */
function parquetOutputColumns(table: LoadedTable, decoded: readonly DecodedCell[][], sealedIn: Uint8Array, input: string): ParquetColumn[] {
  return table.headers.map((name, c) => {
    if (sealedIn[c] !== 1) return { name, type: table.types[c] ?? VARCHAR };
    const types = new Set<C3rDataType>();
    let plain = false;
    for (const row of decoded) {
      const cell = row[c] ?? null;
      if (cell instanceof OpenedCell) {
        if (cell.value !== null) types.add(cell.value.type);
      } else if (cell !== null) {
        plain = true;
      }
    }
    if (types.size > 1) throw new MalusError('invalid-input', `${input} column \`${name}\` holds sealed values of different types (${[...types].join(', ')})`);
    const type = [...types][0] ?? 'string';
    if (type !== 'string' && plain) throw new MalusError('invalid-input', `${input} column \`${name}\` mixes sealed ${type} values with unsealed text`);
    return { name, type: duckDbTypeOf(type) };
  });
}

function parquetCell(cell: DecodedCell): DuckDBValue {
  if (cell instanceof OpenedCell) return cell.value === null ? null : fromC3rValue(cell.value);
  return cell;
}

/** Decrypts a file C3R (or Malus) encrypted, as `c3r decrypt` would: opens every sealed cell. */
export async function c3rDecryptFile(options: C3rDecryptOptions): Promise<C3rDecryptSummary> {
  const keys = deriveC3rKeys(options.secret, options.collaborationId);
  const { format, output } = prepare(options);
  if (options.dryRun === true) return { format, output, dryRun: true, rows: 0, columns: 0, sealedColumns: 0, sealedCells: 0, fingerprintColumns: 0 };

  const table = await loadTable(options.input, format, {
    headerRow: true,
    ...(options.csvInputNullValue === undefined ? {} : { csvNullValue: options.csvInputNullValue }),
  });
  const unseal = createUnsealer(keys);
  const sealedIn = new Uint8Array(table.columnCount);
  const fingerprintIn = new Uint8Array(table.columnCount);
  let sealedCells = 0;
  const where = (r: number, c: number): string => `${options.input} ${table.where(r)}, column \`${table.headers[c] ?? String(c + 1)}\``;
  const decoded: DecodedCell[][] = table.rows.map((row, r) =>
    row.map((value, c) => {
      if (typeof value !== 'string') return value;
      // As C3R does: "enc:" after the version marks a sealed cell, "hmac:" a fingerprint.
      if (looksC3rSealed(value)) {
        sealedIn[c] = 1;
        sealedCells++;
        try {
          return new OpenedCell(unseal(value));
        } catch (error) {
          if (!(error instanceof MalusError)) throw error;
          throw new MalusError('invalid-input', `${where(r, c)}: ${error.message}`);
        }
      }
      if (looksC3rFingerprint(value)) {
        if (options.failOnFingerprintColumns === true) {
          throw new MalusError('invalid-input', `${where(r, c)} holds a fingerprint, which cannot be decrypted (and --failOnFingerprintColumns is set)`);
        }
        fingerprintIn[c] = 1;
      }
      return value;
    }),
  );

  await writeAtomically(output, options.overwrite === true, async (temporary) => {
    if (format === 'csv') {
      const line = csvLineWriter(options.csvOutputNullValue === undefined ? {} : { nullValue: options.csvOutputNullValue });
      const out = openTextOutput(temporary);
      try {
        out.write(line(table.headers));
        for (const row of decoded) out.write(line(row.map(cellText)));
      } finally {
        out.close();
      }
      return;
    }
    const columns = parquetOutputColumns(table, decoded, sealedIn, options.input);
    await writeParquetTable(temporary, columns, decoded.map((row) => row.map(parquetCell)));
  });
  return {
    format,
    output,
    dryRun: false,
    rows: table.rows.length,
    columns: table.columnCount,
    sealedColumns: sealedIn.reduce((n, v) => n + v, 0),
    sealedCells,
    fingerprintColumns: fingerprintIn.reduce((n, v) => n + v, 0),
  };
}
