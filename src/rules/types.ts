import type { PARAMETER_TYPES } from '../agreement/index.js';
import type { PrivacyCost } from '../dp/index.js';
import type { Violation } from '../errors/index.js';

// The public shapes of governed queries (docs/queries.md): what an analyst asks, what the checker
// says about it, and what the enclave runs.

/** The schema the enclave loads the collaboration's datasets into; rewritten queries name tables in it. */
export const DATA_SCHEMA = 'malus_data';
/** The column a rewritten query adds: true when the row meets every k constraint; the enclave drops the others. */
export const RELEASE_COLUMN = 'malus_released';

export type ParameterValue = string | number | boolean;

/** What an analyst submits: ad-hoc SQL, or an approved template with its parameters. */
export type QueryRequest =
  | { readonly sql: string; readonly template?: undefined; readonly parameters?: undefined }
  | { readonly sql?: undefined; readonly template: string; readonly parameters: Readonly<Record<string, ParameterValue>> };

/** A rule violation: a stable kebab-case code (docs/queries.md), a message, the character offset in the checked SQL or null. */
export type { Violation } from '../errors/index.js';

export interface BoundParameter {
  readonly name: string;
  readonly type: (typeof PARAMETER_TYPES)[number];
  /** The value as DuckDB binds it: VARCHAR/DATE/TIMESTAMP as text, BIGINT as a bigint, DOUBLE a number. */
  readonly value: string | number | bigint | boolean;
}

export interface CheckedQuery {
  readonly allowed: boolean;
  readonly violations: readonly Violation[];
  /** The rule the query was checked under. */
  readonly kind: 'aggregation' | 'list' | 'template' | null;
  /** The agreement tables the query reads, sorted. */
  readonly tables: readonly string[];
  /** What the enclave runs (empty when denied): tables in DATA_SCHEMA, RELEASE_COLUMN added, parameters as $name. */
  readonly rewritten: string;
  readonly parameters: readonly BoundParameter[];
  /** `sha256:<hex>` of the SQL text checked (the template's SQL for a template). */
  readonly queryHash: string;
  /** Present when a privacy policy of the agreement applies: the query runs with differential privacy and spends `cost`. */
  readonly privacy?: QueryPrivacy;
}

export interface QueryPrivacy {
  /** The index of the applying policy in agreement.privacy.policies. */
  readonly policy: number;
  readonly accounting: 'pure' | 'zcdp';
  readonly mechanism: 'laplace' | 'gaussian';
  /** What one run spends from the collaboration's (and the analyst's) budget. */
  readonly cost: PrivacyCost;
  /** What the enclave does with the exact, bounded statistics the rewritten SQL returns. */
  readonly plan: DpPlan;
}

/** One noisy statistic per group, a column `name` of the rewritten SQL's rows (its exact value as text). */
export interface DpMeasurement {
  readonly name: string;
  /** identities: distinct identities of the first table (the release threshold); rows: COUNT(*); distinct-identities: COUNT(DISTINCT another table's identity); sum: clamped SUM in integer units; values: non-null values of a column (AVG's count). */
  readonly statistic: 'identities' | 'rows' | 'distinct-identities' | 'sum' | 'values';
  readonly mechanism: 'laplace' | 'gaussian';
  /** The noise scale, rational text: b of the discrete Laplace, sigma of the discrete Gaussian, in units. */
  readonly scale: string;
  /** What one unit is worth in the output, rational text ("1/100" for cents). */
  readonly unit: string;
  /** For a sum: the clamping bounds in units, and the decimals of the output. */
  readonly bounds?: readonly [string, string];
  readonly decimals?: number;
}

export type DpColumn =
  | { readonly name: string; readonly source: 'group'; readonly index: number }
  | { readonly name: string; readonly source: 'measurement'; readonly index: number }
  /** AVG: the noisy sum over the noisy count. */
  | { readonly name: string; readonly source: 'ratio'; readonly numerator: number; readonly denominator: number };

export interface DpPlan {
  readonly measurements: readonly DpMeasurement[];
  /** The group keys, columns malus_g_<i> of the rewritten SQL's rows; with a public domain, exactly those values are released. */
  readonly groups: readonly { readonly name: string; readonly domain?: readonly string[] }[];
  /** A group is released only when each of these noisy counts of identities is at least its minimum (integer text); none for a public domain without k. */
  readonly release: readonly { readonly measurement: number; readonly minimum: string }[];
  /** The output columns, in the order of the query's select list. */
  readonly columns: readonly DpColumn[];
  readonly maxRowsPerIdentity: number;
  readonly maxGroupsPerIdentity: number;
}

/** The parameter that seeds the random choice of each identity's groups (the enclave binds a fresh one per run). */
export const DP_SEED_PARAMETER = 'malus_seed';
