// A structural pass over a CSV file, before DuckDB reads its values. It finds what DuckDB does not
// report or does not tell us:
//   - a row with more fields than the first row when the extra fields are empty (DuckDB drops
//     trailing empty fields silently; C3R refuses the row);
//   - which fields were quoted: C3R's CSV parser trims unquoted values and tells `,"",` from `,,`
//     and `," ",` from `, ,`, and DuckDB's values alone cannot;
//   - the line each row starts on, for messages.
// It looks only at '"', ',', CR and LF, which never occur inside a multi-byte UTF-8 sequence, so it
// works on raw bytes; UTF-8 validity is DuckDB's to check.
import { createReadStream } from 'node:fs';
import { MalusError } from '../../errors/index.js';

export interface CsvStructure {
  /** Records (rows, counting a header row), empty lines skipped. */
  readonly recordCount: number;
  /** Fields in every record. */
  readonly fieldCount: number;
  /** The 1-based line each record starts on. */
  readonly lines: Int32Array;
  /** One byte per field, record after record: 1 when the field was quoted. */
  readonly quoted: Uint8Array;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

const FIELD_START = 0;
const UNQUOTED = 1;
const QUOTED = 2;
/** Just saw a quote inside a quoted field: either an escaped quote or the closing one. */
const QUOTED_QUOTE = 3;

function grow<T extends Int32Array | Uint8Array>(array: T, needed: number, make: (n: number) => T): T {
  if (needed <= array.length) return array;
  const bigger = make(Math.max(needed, array.length * 2));
  bigger.set(array);
  return bigger;
}

/**
 * Scans a CSV file. `name` is how messages name the file; `firstRowIsHeader` only changes the
 * wording of the column-count message.
 */
export async function scanCsvStructure(path: string, name: string, firstRowIsHeader: boolean): Promise<CsvStructure> {
  let lines = new Int32Array(1024);
  let quoted = new Uint8Array(8192);
  let recordCount = 0;
  let fieldCount = -1;
  let cellCount = 0;

  let state = FIELD_START;
  let line = 1;
  let recordLine = 1;
  let inRecord = false;
  let fields = 0;
  let fieldQuoted = 0;
  /** Whether the record so far holds nothing but spaces and control characters (no quote, no comma). */
  let onlySpace = true;
  let skipLf = false;
  let first = true;
  const recordFlags: number[] = [];

  const endField = (): void => {
    recordFlags.push(fieldQuoted);
    fields++;
    fieldQuoted = 0;
    state = FIELD_START;
  };
  const endRecord = (): void => {
    if (fieldCount === -1) {
      fieldCount = fields;
    } else if (fields !== fieldCount) {
      // C3R's parser skips such a line as it skips an empty one; DuckDB reads it as a row, so it is refused by name.
      if (onlySpace && fields === 1) {
        throw new MalusError('invalid-input', `${name} line ${recordLine}: the line holds only white space; remove it (C3R would skip it)`);
      }
      throw new MalusError(
        'invalid-input',
        `${name} line ${recordLine}: expected ${fieldCount} columns (as in the ${firstRowIsHeader ? 'header row' : 'first row'}) but found ${fields}`,
      );
    }
    lines = grow(lines, recordCount + 1, (n) => new Int32Array(n));
    lines[recordCount++] = recordLine;
    quoted = grow(quoted, cellCount + fields, (n) => new Uint8Array(n));
    for (const flag of recordFlags) quoted[cellCount++] = flag;
    recordFlags.length = 0;
    fields = 0;
    inRecord = false;
    onlySpace = true;
  };

  let stream;
  try {
    stream = createReadStream(path);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let i = 0;
      if (first) {
        first = false;
        if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;
      }
      for (; i < chunk.length; i++) {
        const b = chunk[i];
        if (skipLf) {
          skipLf = false;
          if (b === LF) continue;
        }
        if (state === QUOTED) {
          if (b === QUOTE) state = QUOTED_QUOTE;
          else if (b === LF) line++;
          else if (b === CR) {
            line++;
            skipLf = true;
          }
          continue;
        }
        if (state === QUOTED_QUOTE) {
          if (b === QUOTE) {
            state = QUOTED;
            continue;
          }
          // The closing quote; anything up to the delimiter stays part of this (quoted) field.
          state = UNQUOTED;
        }
        if (b === undefined || b > 0x20) onlySpace = false;
        if (b === COMMA) {
          if (!inRecord) {
            inRecord = true;
            recordLine = line;
          }
          endField();
        } else if (b === LF || b === CR) {
          // A line with nothing on it is skipped, as both C3R's parser and DuckDB do.
          if (inRecord) {
            endField();
            endRecord();
          }
          line++;
          if (b === CR) skipLf = true;
        } else {
          if (!inRecord) {
            inRecord = true;
            recordLine = line;
          }
          if (b === QUOTE && state === FIELD_START) {
            fieldQuoted = 1;
            state = QUOTED;
          } else {
            state = UNQUOTED;
          }
        }
      }
    }
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('file-unreadable', `cannot read ${name}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  } finally {
    stream?.destroy();
  }
  if (state === QUOTED) throw new MalusError('invalid-input', `${name} line ${recordLine}: a quoted value is never closed`);
  if (inRecord) {
    endField();
    endRecord();
  }
  return { recordCount, fieldCount: Math.max(fieldCount, 0), lines: lines.subarray(0, recordCount), quoted: quoted.subarray(0, cellCount) };
}
