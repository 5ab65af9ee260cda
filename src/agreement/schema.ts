import { z } from 'zod';

// The agreement format `malus.agreement/v1` (docs/agreement.md). Every object is strict: an unknown
// field anywhere is an error, never silently ignored. The schema never transforms its input, so the
// parsed document is the signed document and its canonical hash is the same.

export const AGREEMENT_FORMAT = 'malus.agreement/v1';

export const ROLES = ['provider', 'analyst', 'receiver', 'payer', 'payee', 'auditor', 'signer'] as const;
export type Role = (typeof ROLES)[number];

export const PLATFORMS = ['sim', 'nitro', 'sev-snp', 'tdx'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** DuckDB type names a column may have; DECIMAL takes a precision 1..38 and a scale 0..precision. */
export const COLUMN_TYPES = [
  'VARCHAR',
  'BIGINT',
  'INTEGER',
  'SMALLINT',
  'DOUBLE',
  'REAL',
  'DATE',
  'TIMESTAMP',
  'TIMESTAMPTZ',
  'BOOLEAN',
  'UUID',
  'DECIMAL(p,s)',
] as const;

export function isColumnType(text: string): boolean {
  const decimal = /^DECIMAL\((\d{1,2}),(\d{1,2})\)$/.exec(text);
  if (decimal !== null) {
    const precision = Number(decimal[1]);
    const scale = Number(decimal[2]);
    return precision >= 1 && precision <= 38 && scale <= precision;
  }
  return (COLUMN_TYPES as readonly string[]).includes(text) && text !== 'DECIMAL(p,s)';
}

export const AGGREGATE_FUNCTIONS = ['SUM', 'SUM_DISTINCT', 'COUNT', 'COUNT_DISTINCT', 'AVG'] as const;
export const JOIN_OPERATORS = ['AND', 'OR'] as const;
export const ADDITIONAL_ANALYSES = ['ALLOWED', 'REQUIRED', 'NOT_ALLOWED'] as const;

const oneOf = (values: readonly string[]): string => `expected one of ${values.join(', ')}`;

const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'expected an identifier (letters, digits, _; at most 63; not starting with a digit)');
const partyId = z.string().regex(/^[0-9a-f]{20}$/, 'expected a party id (20 lower-case hex characters)');
const base64urlKey = z.string().min(1).max(64);
const sha256Ref = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lower-case hex>');
const rfc3339 = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/,
    'expected an RFC 3339 date-time with a time zone, such as 2026-01-01T00:00:00Z',
  )
  .refine((text) => !Number.isNaN(Date.parse(text)), 'not a real date-time');
const columnType = z.string().refine(isColumnType, oneOf(COLUMN_TYPES));
/** A UUID, as C3R takes its `--id`: hex digits in either case (C3R salts its keys with the lower-case form). */
const c3rCollaborationId = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'expected a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)');
const url = z.string().max(2048).refine((text) => URL.canParse(text), 'expected an absolute URL');
const positive = z.number().positive();
const uniqueList = <T extends z.ZodType<string>>(item: T) =>
  z.array(item).refine((items) => new Set(items).size === items.length, 'has duplicates');

export const partySchema = z.strictObject({
  id: partyId,
  name: z.string().min(1).max(200),
  signingKey: base64urlKey,
  encryptionKey: base64urlKey,
  roles: uniqueList(z.enum(ROLES)).min(1),
});

/**
 * How `malus dataset prepare` canonicalizes a column before it is pseudonymized, so that the
 * parties' join keys match (docs/dataset-preparation.md): `trim`, `lowercase`, `uppercase`,
 * `email`, `e164` or `e164:+CC` (a default country calling code), `date:FORMAT` (strptime).
 */
export const NORMALIZER_PATTERN = /^(?:trim|lowercase|uppercase|email|e164(?::\+[1-9]\d{0,2})?|date:[^\s].{0,63})$/;
export const C3R_COLUMN_TYPES = ['cleartext', 'sealed', 'fingerprint'] as const;

export const columnSchema = z.strictObject({
  name: identifier,
  type: columnType,
  description: z.string().max(2000).optional(),
  normalize: z
    .array(z.string().regex(NORMALIZER_PATTERN, 'expected trim, lowercase, uppercase, email, e164, e164:+CC or date:FORMAT'))
    .max(8)
    .optional(),
  /** For a table brought as a C3R file: the column's C3R kind. */
  c3r: z.enum(C3R_COLUMN_TYPES).optional(),
});

const aggregateColumnSchema = z.strictObject({
  columnNames: z.array(identifier).min(1),
  function: z.enum(AGGREGATE_FUNCTIONS),
});

const outputConstraintSchema = z.strictObject({
  columnName: identifier,
  minimum: z.number().int().min(2).max(100_000),
  type: z.literal('COUNT_DISTINCT'),
});

const aggregationRuleSchema = z.strictObject({
  type: z.literal('aggregation'),
  aggregateColumns: z.array(aggregateColumnSchema).min(1),
  joinColumns: z.array(identifier),
  joinRequired: z.boolean().optional(),
  allowedJoinOperators: uniqueList(z.enum(JOIN_OPERATORS)).optional(),
  dimensionColumns: z.array(identifier),
  scalarFunctions: z.array(z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'expected an upper-case function name')),
  outputConstraints: z.array(outputConstraintSchema).min(1),
  additionalAnalyses: z.enum(ADDITIONAL_ANALYSES).optional(),
});

const listRuleSchema = z.strictObject({
  type: z.literal('list'),
  joinColumns: z.array(identifier).min(1),
  allowedJoinOperators: uniqueList(z.enum(JOIN_OPERATORS)).optional(),
  listColumns: z.array(identifier).min(1),
  /** Each listed value must stand for at least k distinct identities; without one, no list query runs. */
  outputConstraints: z.array(outputConstraintSchema).min(1).optional(),
  additionalAnalyses: z.enum(ADDITIONAL_ANALYSES).optional(),
});

const customRuleSchema = z.strictObject({
  type: z.literal('custom'),
  allowedTemplates: z.array(identifier).min(1),
  allowedAnalysisProviders: z.array(partyId).optional(),
  additionalAnalyses: z.enum(ADDITIONAL_ANALYSES).optional(),
});

export const analysisRuleSchema = z.discriminatedUnion('type', [aggregationRuleSchema, listRuleSchema, customRuleSchema]);

export const tableSchema = z.strictObject({
  name: identifier,
  owner: partyId,
  description: z.string().max(2000).optional(),
  columns: z.array(columnSchema).min(1).max(1000),
  identityColumn: identifier.nullable(),
  analysisRule: analysisRuleSchema,
  /** Whether several rows may share an identity value (default allow: an impressions table does). */
  duplicates: z.enum(['allow', 'reject']).optional(),
  rows: z.strictObject({ min: z.number().int().min(0).optional(), max: z.number().int().min(1).optional() }).optional(),
  /** The table arrives as AWS Clean Rooms C3R output, encrypted under these collaboration settings. */
  c3r: z
    .strictObject({
      allowCleartext: z.boolean(),
      allowDuplicates: z.boolean(),
      allowJoinsOnColumnsWithDifferentNames: z.boolean(),
      preserveNulls: z.boolean(),
      /** Whether the enclave may open sealed columns with the provider's C3R secret. */
      decryptInEnclave: z.boolean(),
      /** The C3R collaboration id the table was encrypted under (C3R's `--id`): it salts the C3R keys. */
      collaborationId: c3rCollaborationId,
    })
    .optional(),
});

export const PARAMETER_TYPES = ['VARCHAR', 'BIGINT', 'DOUBLE', 'DATE', 'TIMESTAMP', 'BOOLEAN'] as const;

const parameterSchema = z.strictObject({
  name: identifier,
  type: z.enum(PARAMETER_TYPES),
  description: z.string().max(2000).optional(),
  min: z.union([z.number(), z.string()]).optional(),
  max: z.union([z.number(), z.string()]).optional(),
  values: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1).optional(),
});

export const templateSchema = z.strictObject({
  name: identifier,
  description: z.string().max(2000).optional(),
  sql: z.string().min(1).max(65536),
  parameters: z.array(parameterSchema),
  /** k constraints on the template's outermost query: each output row must count at least k distinct values of the column. */
  outputConstraints: z.array(outputConstraintSchema.extend({ table: identifier })).optional(),
  approvedBy: uniqueList(partyId),
});

const privacyCostSchema = z.strictObject({ epsilon: positive.optional(), rho: positive.optional() });

/** A column of a DP query, by table (the policy's own table when left out). */
const policyColumn = { table: identifier.optional(), column: identifier };

const privacyPolicySchema = z.strictObject({
  table: identifier.optional(),
  template: identifier.optional(),
  required: z.boolean(),
  mechanism: z.enum(['laplace', 'gaussian']),
  costPerQuery: privacyCostSchema,
  /** Rows one identity may add to each group (kept at random inside the enclave); 1 when left out. */
  maxRowsPerIdentity: z.number().int().min(1).max(1000).optional(),
  /** Groups one identity may add to (kept at random inside the enclave); 1 when left out. */
  maxGroupsPerIdentity: z.number().int().min(1).max(1000).optional(),
  /** Clamping bounds of the columns a DP query may SUM or AVG; a column without bounds cannot be summed. */
  bounds: z.array(z.strictObject({ ...policyColumn, lower: z.number(), upper: z.number() })).max(256).optional(),
  /** Group keys everyone may know: a DP query grouped by these columns only releases exactly these groups. */
  publicDomain: z.array(z.strictObject({ ...policyColumn, values: uniqueList(z.string().max(200)).min(1).max(10000) })).max(16).optional(),
  /** Groups not in a public domain are released by a noisy threshold, each query spending this delta. */
  partitionSelection: z.strictObject({ delta: z.number().gt(0).max(0.001) }).optional(),
});

export const privacySchema = z.strictObject({
  accounting: z.enum(['pure', 'zcdp']),
  budget: z.strictObject({ epsilon: positive.optional(), rho: positive.optional(), delta: z.number().min(0).max(1).optional() }),
  refresh: z.enum(['never', 'daily', 'monthly']),
  analystBudgets: z.array(z.strictObject({ party: partyId, epsilon: positive.optional(), rho: positive.optional() })).optional(),
  policies: z.array(privacyPolicySchema),
});

export const PSI_MODES = ['cardinality', 'intersection', 'sum'] as const;

/** A private set intersection the parties allow: who sends, who receives, which modes, how identifiers are normalized. */
export const psiComputationSchema = z.strictObject({
  name: identifier,
  description: z.string().max(2000).optional(),
  /** Holds Y (and the values of the sum mode); learns nothing. */
  sender: partyId,
  /** Holds X; learns what the mode gives. */
  receiver: partyId,
  modes: uniqueList(z.enum(PSI_MODES)).min(1),
  /** Applied to every element on both sides before hashing, as at dataset preparation. */
  normalize: z
    .array(z.string().regex(NORMALIZER_PATTERN, 'expected trim, lowercase, uppercase, email, e164, e164:+CC or date:FORMAT'))
    .max(8)
    .optional(),
  /** Largest set either party may bring (the sizes are logged). */
  maxSetSize: z.number().int().min(1).max(10_000_000),
});

/** A secure aggregation the parties allow: who contributes, the vector shape, the threshold and the quantization. */
export const secaggComputationSchema = z.strictObject({
  name: identifier,
  description: z.string().max(2000).optional(),
  parties: uniqueList(partyId).min(3).max(1000),
  /** Shares needed to unmask: the run survives up to parties − threshold dropouts. */
  threshold: z.number().int().min(2),
  vectorLength: z.number().int().min(1).max(10_000_000),
  /** Each entry is clipped to [-clip, clip] before quantization. */
  clip: z.number().positive().max(1e9),
  /** Fixed-point fraction bits of the quantization. */
  fractionBits: z.number().int().min(0).max(24),
  /** Who learns the sum. */
  receivers: uniqueList(partyId).min(1),
});

export const enclavePolicySchema = z.strictObject({
  platforms: uniqueList(z.enum(PLATFORMS)).min(1),
  measurements: uniqueList(z.string().regex(/^(?:[0-9a-f]{64}|[0-9a-f]{96})$/, 'expected 64 or 96 lower-case hex characters')),
  maxEvidenceAgeSeconds: z.number().int().min(1).max(86400),
  allowDebug: z.boolean(),
});

export const keyReleaseSchema = z.strictObject({
  endpoints: z.array(
    z.strictObject({
      owner: partyId,
      url,
      signingKey: base64urlKey.optional(),
    }),
  ),
});

export const settlementSchema = z.strictObject({
  chainId: z.number().int().min(1),
  currency: z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('native') }),
    z.strictObject({ type: z.literal('erc20'), token: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte hex address') }),
  ]),
  payer: partyId,
  payees: z.array(z.strictObject({ party: partyId, shareBasisPoints: z.number().int().min(1).max(10000) })).min(1),
  pricePerResult: z.string().regex(/^(?:0|[1-9]\d{0,77})$/, 'expected an integer amount in the smallest unit, as a string'),
});

export const agreementSchema = z.strictObject({
  format: z.literal(AGREEMENT_FORMAT),
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'expected 3 to 64 characters: a-z, 0-9, ".", "_", "-"'),
  title: z.string().min(1).max(200),
  description: z.string().max(10000).optional(),
  version: z.number().int().min(1),
  previous: sha256Ref.nullable(),
  validFrom: rfc3339,
  validUntil: rfc3339,
  parties: z.array(partySchema).min(1).max(64),
  tables: z.array(tableSchema).max(256),
  templates: z.array(templateSchema).max(256).optional(),
  privacy: privacySchema.optional(),
  receivers: uniqueList(partyId).min(1),
  enclave: enclavePolicySchema,
  keyRelease: keyReleaseSchema.optional(),
  /**
   * The providers' shared join secret, by commitment only (docs/dataset-preparation.md): a provider
   * holding a different secret is stopped before its pseudonyms silently fail to join.
   */
  joinKey: z.strictObject({ commitment: sha256Ref }).optional(),
  /** Computations that run on cryptography alone, without an enclave (docs/psi.md, docs/secagg.md). */
  psi: z.array(psiComputationSchema).max(64).optional(),
  secureAggregation: z.array(secaggComputationSchema).max(64).optional(),
  settlement: settlementSchema.optional(),
});

export type Agreement = z.infer<typeof agreementSchema>;
export type Party = z.infer<typeof partySchema>;
export type Table = z.infer<typeof tableSchema>;
export type Column = z.infer<typeof columnSchema>;
export type AnalysisRule = z.infer<typeof analysisRuleSchema>;
export type Template = z.infer<typeof templateSchema>;
export type PrivacySettings = z.infer<typeof privacySchema>;
export type PrivacyPolicy = z.infer<typeof privacyPolicySchema>;
export type PsiComputation = z.infer<typeof psiComputationSchema>;
export type SecaggComputation = z.infer<typeof secaggComputationSchema>;
export type EnclavePolicy = z.infer<typeof enclavePolicySchema>;
export type KeyReleaseSettings = z.infer<typeof keyReleaseSchema>;
export type SettlementTerms = z.infer<typeof settlementSchema>;
