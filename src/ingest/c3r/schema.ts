// C3R's table schema file: which input column becomes which output column, and how. Two shapes:
//   { "headerRow": true,  "columns": [ { "sourceHeader", "targetHeader"?, "type", "pad"? }, ... ] }
//   { "headerRow": false, "columns": [ [ { "targetHeader", "type", "pad"? }, ... ], [], ... ] }
// The second ("positional") has one inner list per input column, in file order; each inner list
// names zero or more output columns made from that input column.
// Unlike C3R (whose JSON reader ignores unknown keys), unknown keys are refused here: a misspelt
// "targetheader" would otherwise silently fall back to the default target name.
import { MalusError, type Issue } from '../../errors/index.js';
import { c3rHeaderProblem, normalizeC3rHeader, positionalHeader } from './headers.js';

export const C3R_COLUMN_TYPES = ['cleartext', 'sealed', 'fingerprint'] as const;
export type C3rColumnType = (typeof C3R_COLUMN_TYPES)[number];

export const C3R_PAD_TYPES = ['none', 'fixed', 'max'] as const;
export type C3rPadType = (typeof C3R_PAD_TYPES)[number];

/** C3R's limit on a pad length (PadUtil.MAX_PAD_BYTES). */
export const C3R_MAX_PAD_LENGTH = 10_000;
/** C3R's limit on the number of output columns (Limits.ENCRYPTED_OUTPUT_COLUMN_COUNT_MAX). */
export const C3R_MAX_COLUMNS = 1600;

export type C3rPad = { readonly type: 'none' } | { readonly type: 'fixed' | 'max'; readonly length: number };

export interface C3rColumnSchema {
  /** Normalized source header; for a positional schema the name C3R gives the column (`_c0`, `_c1`, ...). */
  readonly sourceHeader: string;
  /** Positional schemas only: the zero-based input column. */
  readonly sourceIndex?: number;
  /** Normalized output header: what the output shows and what the IV and HMAC key are derived from. */
  readonly targetHeader: string;
  readonly type: C3rColumnType;
  /** Sealed columns only. */
  readonly pad?: C3rPad;
}

export interface C3rSchema {
  readonly headerRow: boolean;
  readonly columns: readonly C3rColumnSchema[];
  /** Positional schemas only: the number of columns every input row must have. */
  readonly sourceColumnCount?: number;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKeys(value: Json, allowed: readonly string[], path: string, issues: Issue[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) issues.push({ path: path === '' ? key : `${path}.${key}`, message: `unknown field (allowed: ${allowed.join(', ')})` });
  }
}

// C3R's JSON reader turns a JSON null into "not given"; so does this parser.
function given(value: Json, key: string): unknown {
  const v = value[key];
  return v === null ? undefined : v;
}

function parsePad(raw: unknown, path: string, issues: Issue[]): C3rPad | undefined {
  if (!isObject(raw)) {
    issues.push({ path, message: 'must be an object such as {"type": "none"} or {"type": "fixed", "length": 32}' });
    return undefined;
  }
  unknownKeys(raw, ['type', 'length'], path, issues);
  const type = given(raw, 'type');
  const length = given(raw, 'length');
  // C3R upper-cases the pad type before matching it, so "MAX" and "max" are the same.
  const padType = typeof type === 'string' ? C3R_PAD_TYPES.find((t) => t === type.toLowerCase()) : undefined;
  if (padType === undefined) {
    issues.push({ path: `${path}.type`, message: `must be one of ${C3R_PAD_TYPES.join(', ')}` });
    return undefined;
  }
  if (padType === 'none') {
    if (length !== undefined) issues.push({ path: `${path}.length`, message: 'a pad length is only allowed when the pad type is fixed or max' });
    return { type: 'none' };
  }
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > C3R_MAX_PAD_LENGTH) {
    issues.push({ path: `${path}.length`, message: `a ${padType} pad needs a length: an integer from 0 to ${C3R_MAX_PAD_LENGTH} (bytes)` });
    return undefined;
  }
  return { type: padType, length };
}

function parseType(raw: unknown, path: string, issues: Issue[]): C3rColumnType | undefined {
  // C3R trims and upper-cases the column type before matching it.
  const type = typeof raw === 'string' ? C3R_COLUMN_TYPES.find((t) => t === raw.trim().toLowerCase()) : undefined;
  if (type === undefined) issues.push({ path, message: `must be one of ${C3R_COLUMN_TYPES.join(', ')}` });
  return type;
}

function parseHeader(raw: unknown, path: string, issues: Issue[]): string | undefined {
  if (typeof raw !== 'string') {
    issues.push({ path, message: 'must be a string' });
    return undefined;
  }
  const header = normalizeC3rHeader(raw);
  const problem = c3rHeaderProblem(header);
  if (problem !== undefined) {
    issues.push({ path, message: problem });
    return undefined;
  }
  return header;
}

/** C3R's default target name when a mapped column gives none. */
function defaultTarget(source: string, type: C3rColumnType): string {
  if (type === 'sealed') return `${source}_sealed`;
  if (type === 'fingerprint') return `${source}_fingerprint`;
  return source;
}

interface ColumnContext {
  readonly positionalIndex?: number;
}

function parseColumn(raw: unknown, path: string, context: ColumnContext, issues: Issue[]): C3rColumnSchema | undefined {
  if (!isObject(raw)) {
    issues.push({ path, message: 'must be an object with type and, for sealed columns, pad' });
    return undefined;
  }
  const positional = context.positionalIndex !== undefined;
  unknownKeys(raw, positional ? ['targetHeader', 'type', 'pad'] : ['sourceHeader', 'targetHeader', 'type', 'pad'], path, issues);
  const before = issues.length;
  const type = parseType(given(raw, 'type'), `${path}.type`, issues);
  const rawPad = given(raw, 'pad');
  let pad: C3rPad | undefined;
  if (type === 'sealed') {
    if (rawPad === undefined) issues.push({ path: `${path}.pad`, message: 'a sealed column needs a pad, e.g. {"type": "none"}' });
    else pad = parsePad(rawPad, `${path}.pad`, issues);
  } else if (rawPad !== undefined && type !== undefined) {
    issues.push({ path: `${path}.pad`, message: `only sealed columns are padded; this column is ${type}` });
  }

  let source: string | undefined;
  if (context.positionalIndex !== undefined) {
    source = positionalHeader(context.positionalIndex);
  } else if (given(raw, 'sourceHeader') === undefined) {
    issues.push({ path: `${path}.sourceHeader`, message: 'is required when headerRow is true' });
  } else {
    source = parseHeader(given(raw, 'sourceHeader'), `${path}.sourceHeader`, issues);
  }

  let target: string | undefined;
  const rawTarget = given(raw, 'targetHeader');
  if (rawTarget !== undefined) {
    target = parseHeader(rawTarget, `${path}.targetHeader`, issues);
  } else if (positional) {
    issues.push({ path: `${path}.targetHeader`, message: 'is required when headerRow is false (there is no source name to derive it from)' });
  } else if (source !== undefined && type !== undefined) {
    target = defaultTarget(source, type);
    const problem = c3rHeaderProblem(target);
    if (problem !== undefined) issues.push({ path: `${path}.targetHeader`, message: `the default target name: ${problem}` });
  }

  if (issues.length > before || type === undefined || source === undefined || target === undefined) return undefined;
  return {
    sourceHeader: source,
    ...(context.positionalIndex === undefined ? {} : { sourceIndex: context.positionalIndex }),
    targetHeader: target,
    type,
    ...(pad === undefined ? {} : { pad }),
  };
}

function parseColumns(raw: unknown, headerRow: boolean, issues: Issue[]): { columns: C3rColumnSchema[]; sourceColumnCount?: number } {
  const columns: C3rColumnSchema[] = [];
  if (!Array.isArray(raw) || raw.length === 0) {
    issues.push({
      path: 'columns',
      message: headerRow ? 'must be a non-empty array of column objects' : 'must be a non-empty array with one list of output columns per input column',
    });
    return { columns };
  }
  if (headerRow) {
    raw.forEach((item, i) => {
      const column = parseColumn(item, `columns[${i}]`, {}, issues);
      if (column !== undefined) columns.push(column);
    });
    return { columns };
  }
  raw.forEach((inner, i) => {
    // An input column that feeds no output column may be an empty list or null.
    if (inner === null) return;
    if (!Array.isArray(inner)) {
      issues.push({ path: `columns[${i}]`, message: 'must be a list of output columns made from input column ' + String(i + 1) });
      return;
    }
    inner.forEach((item, j) => {
      const column = parseColumn(item, `columns[${i}][${j}]`, { positionalIndex: i }, issues);
      if (column !== undefined) columns.push(column);
    });
  });
  return { columns, sourceColumnCount: raw.length };
}

// Schemas this module produced, so a parsed schema handed back in is not parsed again.
const parsedSchemas = new WeakSet<object>();

/** A schema from parseC3rSchema as it is; anything else (the schema file's JSON, as text or parsed) is parsed. */
export function toC3rSchema(input: unknown, name = 'the schema'): C3rSchema {
  if (typeof input === 'object' && input !== null && parsedSchemas.has(input)) return input as C3rSchema;
  return parseC3rSchema(input, name);
}

/**
 * Parses and validates a C3R table schema (the JSON text of the file, or the parsed value). Every
 * problem is reported, each with the field it is about. `name` says which file, for the message.
 */
export function parseC3rSchema(input: unknown, name = 'the schema'): C3rSchema {
  let raw = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input) as unknown;
    } catch (error) {
      throw new MalusError('invalid-input', `${name} is not JSON: ${(error as Error).message}`);
    }
  }
  const issues: Issue[] = [];
  if (!isObject(raw)) throw new MalusError('invalid-input', `${name} is not a C3R schema: expected a JSON object with headerRow and columns`);
  unknownKeys(raw, ['headerRow', 'columns'], '', issues);
  const headerRow = given(raw, 'headerRow');
  if (typeof headerRow !== 'boolean') {
    issues.push({ path: 'headerRow', message: 'must be true (the data has a header row) or false (columns are matched by position)' });
  }
  const { columns, sourceColumnCount } = parseColumns(given(raw, 'columns'), headerRow !== false, issues);

  if (issues.length === 0) {
    if (columns.length === 0) issues.push({ path: 'columns', message: 'must name at least one output column' });
    if (columns.length > C3R_MAX_COLUMNS) issues.push({ path: 'columns', message: `names ${columns.length} output columns; C3R allows at most ${C3R_MAX_COLUMNS}` });
    const seen = new Set<string>();
    const duplicates = new Set<string>();
    for (const column of columns) {
      if (seen.has(column.targetHeader)) duplicates.add(column.targetHeader);
      seen.add(column.targetHeader);
    }
    if (duplicates.size > 0) {
      issues.push({ path: 'columns', message: `each target header may be used once (after lower-casing); repeated: ${[...duplicates].join(', ')}` });
    }
  }
  if (issues.length > 0) throw new MalusError('invalid-input', `${name} is not a valid C3R schema`, { issues });
  const schema: C3rSchema = { headerRow: headerRow === true, columns, ...(sourceColumnCount === undefined ? {} : { sourceColumnCount }) };
  parsedSchemas.add(schema);
  return schema;
}
