import type { AstNode } from './parser.js';
import { text } from './ast.js';

// Function names the checker treats specially, whatever any allowlist says.

/** Functions that reach outside the query (environment, settings, files, the catalog) or raise errors on demand. */
const SANDBOX_NAMES = new Set([
  'getenv',
  'current_setting',
  'error',
  'setseed',
  'random',
  'sql_auto_complete',
  'current_schemas',
  'current_schema',
  'current_database',
  'current_catalog',
  'current_user',
  'session_user',
  'user',
  'version',
  'txid_current',
  'has_any_column_privilege',
  'has_column_privilege',
  'has_database_privilege',
  'has_foreign_data_wrapper_privilege',
  'has_function_privilege',
  'has_language_privilege',
  'has_schema_privilege',
  'has_sequence_privilege',
  'has_server_privilege',
  'has_table_privilege',
  'has_tablespace_privilege',
  'pg_has_role',
  'nextval',
  'currval',
  'query',
  'query_table',
  'glob',
  'checkpoint',
  'force_checkpoint',
]);
const SANDBOX_PREFIXES = ['read_', 'duckdb_', 'pragma_', 'parquet_', 'sniff_', 'iceberg_', 'delta_', 'postgres_', 'sqlite_', 'mysql_', 'enable_', 'disable_', 'pg_', 'icu_'];

export function isSandboxFunction(name: string): boolean {
  const lower = name.toLowerCase();
  return SANDBOX_NAMES.has(lower) || SANDBOX_PREFIXES.some((prefix) => lower.startsWith(prefix));
}

/** Constructors of composite values: they can smuggle several row values through one column. */
const CONSTRUCTORS = new Set(['list_value', 'list_pack', 'struct_pack', 'row', 'map', 'map_from_entries', 'array_value', 'union_value', 'struct_insert', 'list_concat', 'array_concat']);

export const isConstructor = (name: string): boolean => CONSTRUCTORS.has(name.toLowerCase());

/** Aggregates whose result is one member's value (or a list of them): never allowed, whatever the rule says. */
export const MEMBER_VALUE_AGGREGATES = new Set([
  'min',
  'max',
  'any_value',
  'arbitrary',
  'first',
  'last',
  'first_value',
  'last_value',
  'arg_min',
  'arg_max',
  'argmin',
  'argmax',
  'arg_min_null',
  'arg_max_null',
  'min_by',
  'max_by',
  'mode',
  'median',
  'quantile',
  'quantile_cont',
  'quantile_disc',
  'approx_quantile',
  'reservoir_quantile',
  'list',
  'array_agg',
  'string_agg',
  'group_concat',
  'listagg',
  'histogram',
  'histogram_exact',
  'approx_top_k',
  'bitstring_agg',
  'mad',
]);

export const ARITHMETIC = new Set(['+', '-', '*', '/', '//', '%', '**', '^']);
export const LIKE_OPERATORS = new Set(['~~', '!~~', '~~*', '!~~*']);

export const functionName = (node: AstNode): string => text(node, 'function_name').toLowerCase();

/**
 * Arguments (by position) that must be constants: a value from the data in them (a date part
 * specifier, a format) makes the function raise an error on some rows and not on others.
 */
export const CONSTANT_ARGUMENTS: Readonly<Record<string, readonly number[]>> = {
  date_trunc: [0],
  datetrunc: [0],
  date_part: [0],
  datepart: [0],
  date_diff: [0],
  datediff: [0],
  date_sub: [0],
  datesub: [0],
  time_bucket: [0],
  strftime: [1],
  strptime: [1],
  trunc: [1],
  round: [1],
  left: [1],
  right: [1],
  substring: [1, 2],
  substr: [1, 2],
  lpad: [1, 2],
  rpad: [1, 2],
  repeat: [1],
  regexp_matches: [1],
  regexp_replace: [1, 2],
  regexp_extract: [1, 2],
};
