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
}
