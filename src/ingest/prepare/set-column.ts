import type { Column } from '../../agreement/index.js';
import { MalusError } from '../../errors/index.js';
import { parseAmount } from '../../psi/index.js';
import { ident, openIngestDb } from '../duckdb.js';
import { normalizeSql } from './normalize.js';
import { ProblemList } from './problems.js';
import { RAW_TABLE, inferFormat, stageInput, type CsvDialect, type InputFormat } from './read.js';

// The set a party brings to a private set intersection: one column of its own file, read with
// DuckDB like a dataset and put through the same normalizers, so that both sides hash the same
// spelling of each identifier (docs/psi.md). Nothing is written anywhere.

export interface SetColumnParameters {
  readonly input: string;
  readonly format?: InputFormat;
  readonly dialect?: CsvDialect;
  /** The identifier column. */
  readonly column: string;
  /** The sum mode: the column of the values to add, exact decimals read from their text. */
  readonly valueColumn?: string;
  /** Decimals the values keep (2 for cents); default 0. */
  readonly valueDecimals?: number;
  /** The agreement's normalizers for the computation, applied in order. */
  readonly normalize?: readonly string[];
}

export interface SetColumn {
  /** Input rows read. */
  readonly rows: number;
  /** Each row's normalized identifier, in input order (duplicates kept: the protocol drops them). */
  readonly items: string[];
  /** With `valueColumn`: each row's value, scaled to an integer count of its smallest unit. */
  readonly values?: bigint[];
}

/**
 * Reads the identifier column (and the value column) of a CSV, Parquet or JSON-lines file. A row
 * whose identifier is empty or cannot be normalized, or whose value is empty, is reported with its
 * row number (the first 20, then a count) and nothing is returned.
 */
export async function readSetColumn(parameters: SetColumnParameters): Promise<SetColumn> {
  const format = parameters.format ?? inferFormat(parameters.input);
  if (format === 'csv' && parameters.dialect?.header === false) {
    throw new MalusError('usage', 'a PSI input names its column in a header line: a CSV without one cannot be read by --column');
  }
  if (parameters.valueColumn !== undefined && parameters.valueColumn.toLowerCase() === parameters.column.toLowerCase()) {
    throw new MalusError('usage', '--value-column must be another column than --column');
  }
  const columns: Column[] = [
    { name: parameters.column, type: 'VARCHAR' },
    ...(parameters.valueColumn === undefined ? [] : [{ name: parameters.valueColumn, type: 'VARCHAR' as const }]),
  ];
  const db = await openIngestDb();
  try {
    const { rows } = await stageInput(db, {
      path: parameters.input,
      format,
      ...(parameters.dialect === undefined ? {} : { dialect: parameters.dialect }),
      columns,
      ignoreExtraColumns: true,
    });
    const raw = `CAST(${ident(parameters.column)} AS VARCHAR)`;
    const normalized = normalizeSql(parameters.normalize ?? [], raw, 'VARCHAR');
    const value = parameters.valueColumn === undefined ? 'NULL' : `CAST(${ident(parameters.valueColumn)} AS VARCHAR)`;
    await db.connection.run(
      `CREATE TEMP TABLE malus_set AS SELECT rowid + 1 AS row, ${raw} AS raw, ${normalized} AS item, ${value} AS value FROM ${RAW_TABLE}`,
    );
    const problems = new ProblemList();
    const bad = await db.connection.runAndReadAll(
      `SELECT row, raw IS NULL OR raw = '' AS empty, item IS NULL AS unnormalized, count(*) OVER () AS total FROM malus_set
       WHERE raw IS NULL OR raw = '' OR item IS NULL${parameters.valueColumn === undefined ? '' : " OR value IS NULL OR value = ''"}
       ORDER BY row LIMIT 20`,
    );
    const badRows = bad.getRowObjects();
    problems.addCounted(
      badRows.map((r) => {
        const row = Number(r.row);
        if (r.empty === true) return { row, column: parameters.column, message: 'is empty' };
        if (r.unnormalized === true) return { row, column: parameters.column, message: `cannot be normalized by ${(parameters.normalize ?? []).join(', ')}` };
        return { row, column: parameters.valueColumn ?? '', message: 'has no value' };
      }),
      Number(badRows[0]?.total ?? 0),
    );
    problems.throwIfAny('the PSI input has rows that cannot be used');
    const reader = await db.connection.runAndReadAll('SELECT item, value FROM malus_set ORDER BY row');
    const columnsRead = reader.getColumns();
    const items = (columnsRead[0] ?? []).map(String);
    if (parameters.valueColumn === undefined) return { rows, items };
    const decimals = parameters.valueDecimals ?? 0;
    const values = (columnsRead[1] ?? []).map((text, i) => {
      try {
        return parseAmount(String(text).trim(), decimals);
      } catch {
        // The value itself is not repeated: it is the party's data.
        problems.add({ row: i + 1, column: parameters.valueColumn ?? '', message: `is not a non-negative decimal with at most ${decimals} decimal${decimals === 1 ? '' : 's'} (set --value-decimals)` });
        return 0n;
      }
    });
    problems.throwIfAny('the PSI input has values that cannot be added');
    return { rows, items, values };
  } finally {
    db.close();
  }
}
