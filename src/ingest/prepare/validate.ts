import { pseudonymizedColumns, type Column, type Table } from '../../agreement/index.js';
import { ident, type IngestDb } from '../duckdb.js';
import { pseudonymSql } from './join-key.js';
import { normalizeSql, trimSql } from './normalize.js';
import { ProblemList, type Problem } from './problems.js';
import { RAW_TABLE } from './read.js';

// Every value check runs in one DuckDB pass over the staged rows: each row yields the ids of the
// checks it fails; the first 20 failures are described and the rest counted. A value is quoted in
// a message only for ordinary columns on the provider's own machine, never for identity or join
// columns. A converted column keeps its raw text only on the rows where a quoting check fails: the
// typed value is what the dataset holds, and a second copy of every cell would cost the staging
// pass a tenth of its time.

interface Check {
  readonly column: string;
  readonly failing: string;
  readonly message: string;
  readonly quoteValue: boolean;
  /** The staged column whose text a quoting check shows. */
  readonly quoteFrom?: string;
}

export interface PreparationPlan {
  /**
   * The staging query around the input's rows (`inner`, columns named as in the agreement): adds
   * each column's typed value and each check's flag, each computed once, so that every later step
   * reads materialized values instead of normalizing and casting again.
   */
  readonly stage: (inner: string) => string;
  /** The query that turns `malus_raw` into the dataset's rows, in the agreement's column order. */
  readonly output: string;
  /** Statements that build the pseudonym maps `output` joins with; run after validation. */
  readonly maps: readonly string[];
  readonly checks: readonly Check[];
}

const C3R_PREFIX = { sealed: '02:enc:', fingerprint: '02:hmac:' } as const;

/** The staged column holding a column's typed value, and the one holding check k's flag. */
const typedName = (i: number): string => `malus_t${i}`;
const flagName = (k: number): string => `malus_f${k}`;

const valueName = (i: number): string => `malus_n${i}`;
/** The staged column holding a converted column's raw text on the rows that fail one of its quoting checks, else NULL. */
const quotedName = (i: number): string => `malus_q${i}`;

/**
 * One column's expressions, each computed once at its own level of the staging query: `value`
 * (normalized text) over the raw column, `typed` over the value's column, and checks over the raw,
 * value and typed columns by name.
 */
function columnPlan(table: Table, column: Column, sensitive: Set<string>, i: number) {
  const raw = ident(column.name);
  const text = `CAST(${raw} AS VARCHAR)`;
  const normalizers = column.normalize ?? [];
  // A text column without normalizers is its own value: nothing is copied for it.
  const normalized = normalizers.length > 0;
  const converted = normalized || column.type !== 'VARCHAR';
  const valueRef = normalized ? valueName(i) : text;
  const typedRef = converted ? typedName(i) : text;
  const checks: Check[] = [];
  const quoteValue = !sensitive.has(column.name);
  const value = normalizers.length > 0 ? `(${normalizeSql(normalizers, text, column.type)})` : text;
  if (normalizers.length > 0) {
    checks.push({ column: column.name, failing: `${valueRef} IS NULL AND ${raw} IS NOT NULL`, message: `cannot be normalized with ${normalizers.join(', ')}`, quoteValue });
  }
  if (column.c3r === 'sealed' || column.c3r === 'fingerprint') {
    const prefix = C3R_PREFIX[column.c3r];
    checks.push({ column: column.name, failing: `${raw} IS NOT NULL AND NOT starts_with(${text}, '${prefix}')`, message: `is not a C3R ${column.c3r} cell (${prefix}…)`, quoteValue: false });
    // C3R writes a NULL as an empty cell only when the collaboration preserves NULLs; otherwise it
    // seals (or fingerprints) every NULL, so an empty cell means other settings or another file.
    if (table.c3r?.preserveNulls === false) {
      const verb = column.c3r === 'sealed' ? 'seals' : 'fingerprints';
      checks.push({ column: column.name, failing: `${raw} IS NULL`, message: `is empty, but the table's C3R settings do not preserve NULLs (C3R ${verb} every NULL)`, quoteValue: false });
    }
  }
  let typed = valueRef;
  if (column.type !== 'VARCHAR') {
    typed = column.type.toUpperCase() === 'TIMESTAMP' ? timestampCast(valueRef) : `TRY_CAST(${valueRef} AS ${column.type})`;
    checks.push({ column: column.name, failing: `${typedRef} IS NULL AND ${valueRef} IS NOT NULL`, message: `is not a valid ${column.type}`, quoteValue });
    const lossy = lossyCast(column.type, valueRef, typedRef);
    if (lossy !== undefined) checks.push({ column: column.name, failing: `coalesce(${lossy.failing}, false)`, message: lossy.message, quoteValue });
  }
  if (column.name === table.identityColumn) {
    const empty = column.type === 'VARCHAR' ? `${trimSql(typedRef)} = ''` : 'false';
    checks.push({ column: column.name, failing: `${typedRef} IS NULL OR ${empty}`, message: 'is empty: the identity column must hold a value on every row', quoteValue: false });
  }
  // Qualified for the output query, which joins tables whose columns could share a name with it.
  const outputRef = converted ? `${RAW_TABLE}.${typedName(i)}` : `CAST(${RAW_TABLE}.${raw} AS VARCHAR)`;
  const quoting = checks.filter((check) => check.quoteValue);
  // Evaluated at the level of the checks, over the raw column, which is then dropped.
  const quoted = converted && quoting.length > 0 ? `CASE WHEN ${quoting.map((check) => `(${check.failing})`).join(' OR ')} THEN ${text} END AS ${quotedName(i)}` : undefined;
  const quoteFrom = converted ? quotedName(i) : raw;
  return {
    value: normalized ? value : undefined,
    typed: converted ? typed : undefined,
    quoted,
    outputRef,
    checks: checks.map((check) => (check.quoteValue ? { ...check, quoteFrom } : check)),
  };
}

/**
 * A TIMESTAMP holds UTC time. DuckDB's cast to TIMESTAMP drops an offset (`10:00+02:00` becomes
 * 10:00), so text that may carry one (longer than `YYYY-MM-DD HH:MM:SS`, or with a sign after
 * the date) is read as the instant it names and turned to UTC; the rest takes the fast cast,
 * which the slower one would agree with.
 */
function timestampCast(text: string): string {
  // A date takes at least 8 characters (YYYY-M-D): a '-' after them can only start an offset.
  const mayHaveOffset = `strlen(${text}) > 19 OR contains(${text}, '+') OR contains(substr(${text}, 9), '-')`;
  return `CASE WHEN ${mayHaveOffset} THEN TRY_CAST(TRY_CAST(${text} AS TIMESTAMPTZ) AS TIMESTAMP) ELSE TRY_CAST(${text} AS TIMESTAMP) END`;
}

const INTEGER_TYPES = new Set(['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT']);

/**
 * DuckDB's casts from text round (`1.999` to a DECIMAL(12,2) is 2.00, `1.5` to an INTEGER is 2)
 * and truncate (a timestamp to a DATE drops its time): a value the cast changes is refused, not
 * stored as another value. The text is cast again to a wider type and compared; a DECIMAL of 38
 * digits, or a HUGEINT, has no wider type and is not checked this way.
 */
function lossyCast(type: string, text: string, typed: string): { failing: string; message: string } | undefined {
  const upper = type.toUpperCase().replace(/\s+/g, '');
  const decimal = /^DECIMAL\((\d+),(\d+)\)$/.exec(upper);
  const rounded = `has more digits after the point than ${type} keeps (it would be rounded)`;
  // Plain decimal text is judged by its digits: more after the point (trailing zeros aside) than
  // the type keeps is refused, however many (a wider cast would round them too). Text with an
  // exponent is cast again to a wider type and compared.
  const digitsAfterPoint = `length(rtrim(regexp_extract(${text}, '^\\s*[+-]?[0-9]*\\.([0-9]+)\\s*$', 1), '0'))`;
  const tooManyDigits = (scale: number): string => `${digitsAfterPoint} > ${scale}`;
  if (INTEGER_TYPES.has(upper)) return { failing: `${tooManyDigits(0)} OR ${typed} <> TRY_CAST(${text} AS DECIMAL(38,18))`, message: rounded };
  if (decimal !== null) {
    const scale = Number(decimal[2]);
    const wide = 38 - (Number(decimal[1]) - scale);
    if (wide <= scale) return { failing: tooManyDigits(scale), message: rounded };
    return { failing: `${tooManyDigits(scale)} OR ${typed} <> TRY_CAST(${text} AS DECIMAL(38,${wide}))`, message: rounded };
  }
  // Microseconds are DuckDB's finest; text as long as `YYYY-MM-DD HH:MM:SS.ffffff` or shorter has no more.
  if (upper === 'TIMESTAMP' || upper === 'TIMESTAMPTZ') {
    return { failing: `strlen(${text}) > 26 AND regexp_matches(${text}, '[0-9]:[0-9]{2}[.,][0-9]{7,}')`, message: `has digits beyond the microsecond, which ${type} would drop` };
  }
  if (upper === 'DATE') return { failing: `CAST(${typed} AS TIMESTAMP) <> TRY_CAST(${text} AS TIMESTAMP)`, message: 'has a time of day, which a DATE would drop' };
  return undefined;
}

export function planPreparation(table: Table, joinKey: Uint8Array | undefined): PreparationPlan {
  const pseudonymized = new Set(pseudonymizedColumns(table));
  const rule = table.analysisRule;
  const sensitive = new Set([...pseudonymized, ...(table.identityColumn === null ? [] : [table.identityColumn]), ...(rule.type === 'custom' ? [] : rule.joinColumns)]);
  const plans = table.columns.map((column, i) => columnPlan(table, column, sensitive, i));
  const checks: Check[] = plans.flatMap((plan) => plan.checks).map((check, k) => ({ ...check, failing: flagName(k) }));
  const flags = [
    ...plans.flatMap((plan) => plan.checks).map((check, k) => `(${check.failing}) AS ${flagName(k)}`),
    ...plans.flatMap((plan) => (plan.quoted === undefined ? [] : [plan.quoted])),
  ];
  const stage = (inner: string): string => {
    const values = plans.flatMap((plan, i) => (plan.value === undefined ? [] : [`${plan.value} AS ${valueName(i)}`]));
    const typed = plans.flatMap((plan, i) => (plan.typed === undefined ? [] : [`${plan.typed} AS ${typedName(i)}`]));
    const level = (items: string[], from: string): string => (items.length === 0 ? from : `SELECT *, ${items.join(', ')} FROM (${from})`);
    // Not kept: normalized text (its typed column holds it), and the raw text of a converted column
    // (its checks are computed here, and what they quote is kept apart), except a C3R sealed
    // column's, whose cells the C3R secret is checked against.
    const dropped = plans.flatMap((plan, i) => [
      ...(plan.value === undefined ? [] : [valueName(i)]),
      ...(plan.typed !== undefined && table.columns[i]?.c3r !== 'sealed' ? [ident((table.columns[i] as Column).name)] : []),
    ]);
    const exclude = dropped.length === 0 ? '' : ` EXCLUDE (${dropped.join(', ')})`;
    return `SELECT *${exclude}${flags.length === 0 ? '' : `, ${flags.join(', ')}`} FROM (${level(typed, level(values, inner))})`;
  };
  const select: string[] = [];
  const joins: string[] = [];
  const maps: string[] = [];
  table.columns.forEach((column, i) => {
    const typed = (plans[i] as { outputRef: string }).outputRef;
    if (joinKey === undefined || !pseudonymized.has(column.name)) {
      select.push(`${typed} AS ${ident(column.name)}`);
      return;
    }
    // Identifiers repeat (one person, many rows): hash each distinct value once, then join.
    const map = `malus_map_${maps.length}`;
    maps.push(`CREATE OR REPLACE TEMP TABLE ${map} AS SELECT v, ${pseudonymSql(joinKey, 'v')} AS p FROM (SELECT DISTINCT ${typed} AS v FROM ${RAW_TABLE}) WHERE v IS NOT NULL`);
    joins.push(`LEFT JOIN ${map} ON ${map}.v = ${typed}`);
    select.push(`${map}.p AS ${ident(column.name)}`);
  });
  return { stage, output: `SELECT ${select.join(', ')} FROM ${RAW_TABLE} ${joins.join(' ')}`, maps, checks };
}

function shown(value: unknown): string {
  const text = String(value);
  return text.length > 40 ? `'${text.slice(0, 40)}…'` : `'${text}'`;
}

/** Runs every check of the plan, plus duplicates and row limits, and throws all it finds. */
export async function validateStaged(db: IngestDb, table: Table, plan: PreparationPlan, rows: number): Promise<void> {
  const problems = new ProblemList();
  // Most inputs are clean: one pass that stops at nothing tells, before any detail is gathered.
  const anyFailing = plan.checks.length === 0 ? 0 : await countWhere(db, plan.checks.map((c) => `(${c.failing})`).join(' OR '));
  if (anyFailing > 0) {
    const flags = plan.checks.map((check, i) => `CASE WHEN ${check.failing} THEN ${i} END`).join(', ');
    const reader = await db.connection.runAndReadAll(
      `WITH f AS (SELECT rowid AS r, unnest([${flags}]) AS k FROM ${RAW_TABLE}) ` +
        `SELECT r, k, count(*) OVER () AS total FROM f WHERE k IS NOT NULL ORDER BY r, k LIMIT 20`,
    );
    const failures = reader.getRowObjects();
    const examples: Problem[] = [];
    for (const failure of failures) {
      const check = plan.checks[Number(failure.k)] as Check;
      let message = check.message;
      if (check.quoteValue && check.quoteFrom !== undefined) {
        const value = await db.connection.runAndReadAll(`SELECT CAST(${check.quoteFrom} AS VARCHAR) AS v FROM ${RAW_TABLE} WHERE rowid = ${Number(failure.r)}`);
        message = `${shown(value.getRowObjects()[0]?.v)} ${message}`;
      }
      examples.push({ row: Number(failure.r) + 1, column: check.column, message });
    }
    problems.addCounted(examples, Number(failures[0]?.total ?? 0));
  }
  if (table.duplicates === 'reject' && table.identityColumn !== null) {
    const identity = identityExpression(table);
    const reader = await db.connection.runAndReadAll(
      `SELECT list(rowid + 1 ORDER BY rowid)[1:3] AS at, count(*) OVER () AS total FROM ${RAW_TABLE} ` +
        `WHERE ${identity} IS NOT NULL GROUP BY ${identity} HAVING count(*) > 1 ORDER BY min(rowid) LIMIT 20`,
    );
    const groups = reader.getRowObjects();
    problems.addCounted(
      groups.map((group) => {
        const at = (group.at as { items: unknown[] }).items.map(Number);
        return { row: at[0] as number, column: table.identityColumn as string, message: `repeats the identity of row${at.length > 2 ? 's' : ''} ${at.slice(1).join(', ')} (the table's duplicates policy is reject)` };
      }),
      Number(groups[0]?.total ?? 0),
    );
  }
  if (table.rows?.min !== undefined && rows < table.rows.min) problems.add({ message: `the input has ${rows} rows; the agreement requires at least ${table.rows.min}` });
  if (table.rows?.max !== undefined && rows > table.rows.max) problems.add({ message: `the input has ${rows} rows; the agreement allows at most ${table.rows.max}` });
  problems.throwIfAny(`the input does not satisfy table ${table.name}`);
}

async function countWhere(db: IngestDb, condition: string): Promise<number> {
  const reader = await db.connection.runAndReadAll(`SELECT count(*) AS n FROM ${RAW_TABLE} WHERE ${condition}`);
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}

function identityExpression(table: Table): string {
  const i = table.columns.findIndex((c) => c.name === table.identityColumn);
  const column = table.columns[i] as Column;
  return (column.normalize ?? []).length > 0 || column.type !== 'VARCHAR' ? typedName(i) : `CAST(${ident(column.name)} AS VARCHAR)`;
}
