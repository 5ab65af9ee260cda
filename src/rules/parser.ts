import { DuckDBInstance, type DuckDBConnection, type DuckDBPreparedStatement } from '@duckdb/node-api';
import { MalusError } from '../errors/index.js';

// DuckDB's own parser, reached through json_serialize_sql: the tree the checker walks is the tree
// DuckDB will execute, never a second parser's idea of it. The instance holds no data, reads no
// files and loads no extensions; it is shared by every check in the process.

export type AstNode = { [key: string]: unknown };

export type Parsed =
  | { readonly ok: true; readonly statements: readonly AstNode[] }
  | { readonly ok: false; readonly kind: 'syntax' | 'not-select' | 'literal' | 'other'; readonly message: string; readonly position: number | null };

/**
 * The first number in the JSON text (outside strings) that a JavaScript number cannot hold
 * exactly, other than the "no location" marker: such a literal would change on the way through
 * the checker, so the SQL that ran would not be the SQL that was checked.
 */
function unsafeNumber(json: string): string | undefined {
  let i = 0;
  while (i < json.length) {
    const c = json[i] as string;
    if (c === '"') {
      i++;
      while (i < json.length && json[i] !== '"') i += json[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const match = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/.exec(json.slice(i, i + 400));
      const token = match?.[0] ?? c;
      if (token !== '18446744073709551615' && /^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) return token;
      i += token.length;
      continue;
    }
    i++;
  }
  return undefined;
}

let shared: Promise<DuckDBConnection> | undefined;

async function openParser(): Promise<DuckDBConnection> {
  const instance = await DuckDBInstance.create(':memory:', {
    temp_directory: '',
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    enable_external_access: 'false',
    threads: '1',
    memory_limit: '256MB',
  });
  const connection = await instance.connect();
  // Its queries run on empty tables only to learn types: the optimizer would only cost time.
  await connection.run('PRAGMA disable_optimizer');
  await connection.run('SET lock_configuration = true');
  return connection;
}

function parser(): Promise<DuckDBConnection> {
  shared ??= openParser().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

const prepared = new Map<string, Promise<DuckDBPreparedStatement>>();
let queue: Promise<unknown> = Promise.resolve();

/** Runs a one-value statement; calls are queued, since a prepared statement holds one binding at a time. */
function scalar(sql: string, value: string): Promise<string> {
  const run = queue.then(async () => {
    let statement = prepared.get(sql);
    if (statement === undefined) {
      statement = parser().then((connection) => connection.prepare(sql));
      prepared.set(sql, statement);
      statement.catch(() => prepared.delete(sql));
    }
    const ready = await statement;
    ready.bindVarchar(1, value);
    const reader = await ready.runAndReadAll();
    const cell = reader.getRows()[0]?.[0];
    if (typeof cell !== 'string') throw new MalusError('internal', 'the SQL parser returned no text');
    return cell;
  });
  queue = run.catch(() => undefined);
  return run;
}

export type FunctionKind = 'scalar' | 'aggregate' | 'table' | 'macro' | 'pragma' | 'table_macro';

let catalog: Promise<ReadonlyMap<string, FunctionKind>> | undefined;

/**
 * What DuckDB itself says each function is (scalar, aggregate, table, ...), by lower-case name:
 * the checker asks the engine rather than keeping its own list of aggregates that could go stale.
 */
export function functionCatalog(): Promise<ReadonlyMap<string, FunctionKind>> {
  catalog ??= (async () => {
    const connection = await parser();
    const reader = await connection.runAndReadAll('SELECT DISTINCT lower(function_name), function_type FROM duckdb_functions()');
    const kinds = new Map<string, FunctionKind>();
    for (const [name, kind] of reader.getRows()) {
      // A name that is both (rare) is treated as the more dangerous kind.
      const previous = kinds.get(String(name));
      if (previous === undefined || previous === 'scalar' || previous === 'macro') kinds.set(String(name), String(kind) as FunctionKind);
    }
    return kinds;
  })().catch((error: unknown) => {
    catalog = undefined;
    throw error;
  });
  return catalog;
}

/** Parses SQL with DuckDB into its statements' query nodes (the full, unabridged serialization). */
export async function parseSql(sql: string): Promise<Parsed> {
  const text = await scalar('SELECT json_serialize_sql($1::VARCHAR)', sql);
  // "No location" is 2^64-1, which a JavaScript number cannot hold: it becomes null here.
  const unsafe = unsafeNumber(text);
  if (unsafe !== undefined) return { ok: false, kind: 'literal', message: `the number ${unsafe} is beyond what the checker represents exactly`, position: null };
  let result: AstNode;
  try {
    result = JSON.parse(text.replaceAll('"query_location":18446744073709551615', '"query_location":null')) as AstNode;
  } catch {
    // DuckDB writes infinite or NaN constants as bare Infinity and NaN, which are not JSON.
    return { ok: false, kind: 'literal', message: 'a numeric literal is infinite or not a number', position: null };
  }
  if (result.error === true) {
    const message = typeof result.error_message === 'string' ? result.error_message : 'the SQL does not parse';
    const position = typeof result.position === 'string' && /^\d+$/.test(result.position) ? Number(result.position) : null;
    if (result.error_type === 'parser') return { ok: false, kind: 'syntax', message, position };
    if (/Only SELECT statements/i.test(message)) return { ok: false, kind: 'not-select', message, position: null };
    return { ok: false, kind: 'other', message, position };
  }
  const statements = Array.isArray(result.statements) ? (result.statements as AstNode[]) : [];
  return { ok: true, statements };
}

/**
 * The column types DuckDB gives a query, run on empty tables: `setup` statements run first (once
 * per distinct text, so schemas of empty tables are made once), then the query.
 */
export function columnTypes(setup: readonly string[], sql: string): Promise<string[]> {
  const run = queue.then(async () => {
    const connection = await parser();
    for (const statement of setup) {
      if (ranSetup.has(statement)) continue;
      await connection.run(statement);
      ranSetup.add(statement);
    }
    // Prepared, not run: binding alone gives the types.
    const prepared = await connection.prepare(sql);
    return Array.from({ length: prepared.columnCount }, (_, i) => prepared.columnType(i).toString());
  });
  queue = run.catch(() => undefined);
  return run;
}

const ranSetup = new Set<string>();

/** Turns one statement's tree (as parseSql returns it, perhaps rewritten) back into SQL text. */
export async function deparse(statement: AstNode): Promise<string> {
  // Locations are dropped: they point into the original text, and the deserializer needs none.
  const json = JSON.stringify({ error: false, statements: [statement] }, (key, value: unknown) => (key === 'query_location' ? undefined : value));
  return scalar('SELECT json_deserialize_sql($1::JSON)', json);
}
