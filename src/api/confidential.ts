import { z } from 'zod';
import { agreementSchema, agreementSignatureSchema } from '../agreement/index.js';
import { receiptSchema } from '../ledger/index.js';
import { queryRequestSchema } from '../rules/index.js';
import { collaborationIdParams } from './schemas.js';

// Wire schemas of key release, enclave workers and jobs (docs/key-release.md, docs/enclave.md).

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const partyId = z.string().regex(/^[0-9a-f]{20}$/);
const b64url = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9_-]*$/, 'expected base64url without padding');
const key32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes as base64url');
const resourceId = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'expected 3 to 64 characters: a-z, 0-9, ".", "_", "-"');
const tableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'expected a table name');
const platform = z.enum(['sim', 'nitro', 'sev-snp', 'tdx']);
export const jobIdSchema = z.string().regex(/^job-[0-9a-f]{32}$/, 'expected a job id (job-<32 hex>)');

/** Evidence documents are at most 64 KiB; base64url makes that 87,382 characters. */
const evidence = b64url(90_000).min(1);
const certificates = z.array(b64url(16_384).min(1)).max(8);
const sealed = z.strictObject({ enc: key32, ciphertext: b64url(1024).min(1) });

export const simRootView = z.strictObject({ certificate: b64url(16_384).min(1), fingerprint: z.string().regex(/^[0-9a-f]{64}$/) });

export const challengeView = z.strictObject({ challenge: key32, expiresAt: z.string() });

export const serviceAttestationQuery = z.strictObject({
  nonce: key32.describe('32 random bytes the provider chose, base64url: the evidence binds them'),
});

export const serviceAttestationView = z.strictObject({
  collaboration: z.string(),
  agreement: hash,
  platform,
  evidence,
  certificates,
  /** The service's HPKE public key: data keys are sealed to it. */
  encryptionKey: key32,
  /** The development CA certificate (base64url DER), present for sim evidence. */
  simRoot: b64url(16_384).optional(),
});

export const registerKeyBody = z.strictObject({
  dataset: resourceId,
  table: tableName,
  sealedKey: sealed,
});

export const registeredKeyView = z.strictObject({
  dataset: resourceId,
  table: tableName,
  owner: partyId,
  keyCommitment: hash,
  created: z.boolean(),
});

export const datasetKeyList = z.strictObject({
  keys: z.array(z.strictObject({ dataset: resourceId, table: tableName, owner: partyId, keyCommitment: hash, createdAt: z.string() })),
});

export const releaseBody = z.strictObject({
  job: jobIdSchema,
  challenge: key32,
  platform,
  evidence,
  certificates,
  encryptionKey: key32,
});

export const releaseView = z.strictObject({
  agreement: hash,
  keys: z.array(z.strictObject({ dataset: resourceId, sealedKey: sealed })),
});

export const workerRegistrationBody = z.strictObject({
  platform,
  evidence,
  certificates,
  encryptionKey: key32,
  challenge: key32,
});

export const workerView = z.strictObject({
  id: key32,
  platform,
  measurement: z.string(),
  encryptionKey: key32,
  evidenceHash: hash,
  registeredAt: z.string(),
  lastSeenAt: z.string(),
});

/**
 * A submission's idempotency key, chosen by the client (docs/api.md): a retry with the same key
 * and the same body gets the job the first submission queued, and is never charged again. It is in
 * the body, not an Idempotency-Key header, because the body is what the request signature covers.
 */
export const idempotencyKeySchema = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{16,128}$/, 'expected 16 to 128 characters of A-Z, a-z, 0-9 and ._~-')
  .describe('a key of your choosing, the same on every retry of this submission: a retry gets the job the first queued');

const checkJobBody = z.strictObject({
  kind: z
    .enum(['key-check', 'dataset-check'])
    .describe("key-check: the enclave fetches the datasets' keys and signs commitments to them; dataset-check: it also decrypts every dataset into DuckDB and signs row counts and ciphertext hashes"),
  datasets: z.array(resourceId).min(1).max(64).refine((d) => new Set(d).size === d.length, 'has duplicates'),
  idempotencyKey: idempotencyKeySchema.optional(),
});

/** Which dataset to read for a table; a table left out reads its newest complete dataset. */
const tableDatasets = z
  .record(tableName, resourceId)
  .refine((d) => Object.keys(d).length <= 64, 'names more than 64 tables')
  .describe('the dataset to read for each table (default: the newest complete dataset of the table)');

/** A governed query (docs/queries.md): ad-hoc SQL, or an approved template with its parameters. */
const queryJobBodies = queryRequestSchema.options.map((request) =>
  request.extend({ kind: z.literal('query').describe('query: the enclave runs the checked SQL over the datasets and seals the result to the receivers'), datasets: tableDatasets.optional(), idempotencyKey: idempotencyKeySchema.optional() }),
);

export const submitJobBody = z.union([checkJobBody, ...queryJobBodies]);

const statementSchema = z.strictObject({
  format: z.literal('malus.job-result/v1'),
  job: jobIdSchema,
  collaboration: z.string(),
  agreement: hash,
  kind: z.string(),
  output: z.record(z.string(), z.unknown()),
  enclave: z.strictObject({
    platform: z.string(),
    measurement: z.string(),
    signingKey: key32,
    evidence: z.array(hash).max(64),
  }),
  notice: z.literal('SIMULATED TEE: NOT CONFIDENTIAL').optional(),
  time: z.string(),
});

export const signedStatementSchema = z.strictObject({ statement: statementSchema, signature: b64url(100).min(86) });

/**
 * The most base64url characters a sealed result's ciphertext may have: 24 MiB of text, about 18 MiB
 * of ciphertext, above what an enclave sends (result-too-large) and below the finish route's body limit.
 */
export const MAX_SEALED_CIPHERTEXT_CHARS = 24 * 1024 * 1024;

/** A query's result rows, encrypted to the agreement's receivers (docs/enclave.md). */
export const sealedResultSchema = z.strictObject({
  format: z.literal('malus.sealed-result/v1'),
  /** AES-256-GCM nonce, 12 bytes. */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16}$/, 'expected 12 bytes as base64url'),
  ciphertext: b64url(MAX_SEALED_CIPHERTEXT_CHARS).min(22),
  /** The content key sealed with HPKE to each receiver's X25519 key. */
  recipients: z.array(z.strictObject({ party: partyId, enc: key32, key: b64url(256).min(1) })).min(1).max(64),
});

/** What a job's result is: the signed statement, and for a query the sealed rows it describes. */
export const jobResultSchema = signedStatementSchema.extend({ sealed: sealedResultSchema.optional() });

export const jobView = z.strictObject({
  id: jobIdSchema,
  collaboration: z.string(),
  agreement: hash,
  kind: z.string(),
  datasets: z.array(z.string()),
  state: z.enum(['queued', 'running', 'succeeded', 'failed']),
  submittedBy: partyId,
  worker: z.string().nullable(),
  result: jobResultSchema.nullable(),
  error: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const jobParams = collaborationIdParams.extend({ job: jobIdSchema });

export const workerJobParams = z.strictObject({ job: jobIdSchema });

export const claimedJobView = z.strictObject({
  id: jobIdSchema,
  collaboration: z.string(),
  agreement: hash,
  kind: z.string(),
  datasets: z.array(z.string()),
  /** The party that submitted the job. */
  submittedBy: partyId,
  /** For a query job: the request as submitted (the enclave checks it again) and the dataset of each table. */
  query: queryRequestSchema.optional(),
  tables: z.record(tableName, resourceId).optional(),
  heldByControlPlane: z.array(z.string()),
  versions: z.array(z.strictObject({ agreement: agreementSchema, signatures: z.array(agreementSignatureSchema) })),
});

export const claimView = z.strictObject({ job: claimedJobView.nullable() });

export const finishJobBody = z.union([z.strictObject({ result: jobResultSchema }), z.strictObject({ error: z.string().min(1).max(1000) })]);

/**
 * A job's receipt: the malus.receipt/v1 of its job.finished entry, with what a verifier needs to
 * check the result without the server: the signed statement, the worker's registration evidence
 * (as it was received, base64url) and the agreement the job ran under.
 */
export const jobReceiptView = z.strictObject({
  ...receiptSchema.shape,
  statement: signedStatementSchema,
  enclave: z.strictObject({ platform, evidence, certificates, encryptionKey: key32, challenge: key32 }),
  agreement: agreementSchema,
});

export type JobView = z.infer<typeof jobView>;
export type JobReceiptView = z.infer<typeof jobReceiptView>;
export type SealedResultView = z.infer<typeof sealedResultSchema>;
export type SubmitJobBody = z.infer<typeof submitJobBody>;
export type ServiceAttestationView = z.infer<typeof serviceAttestationView>;
export type WorkerView = z.infer<typeof workerView>;
export type ClaimedJobView = z.infer<typeof claimedJobView>;
