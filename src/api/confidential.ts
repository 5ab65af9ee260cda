import { z } from 'zod';
import { agreementSchema, agreementSignatureSchema } from '../agreement/index.js';
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

export const submitJobBody = z.strictObject({
  kind: z
    .enum(['key-check', 'dataset-check'])
    .describe("key-check: the enclave fetches the datasets' keys and signs commitments to them; dataset-check: it also decrypts every dataset into DuckDB and signs row counts and ciphertext hashes"),
  datasets: z.array(resourceId).min(1).max(64).refine((d) => new Set(d).size === d.length, 'has duplicates'),
});

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

export const jobView = z.strictObject({
  id: jobIdSchema,
  collaboration: z.string(),
  agreement: hash,
  kind: z.string(),
  datasets: z.array(z.string()),
  state: z.enum(['queued', 'running', 'succeeded', 'failed']),
  submittedBy: partyId,
  worker: z.string().nullable(),
  result: signedStatementSchema.nullable(),
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
  heldByControlPlane: z.array(z.string()),
  versions: z.array(z.strictObject({ agreement: agreementSchema, signatures: z.array(agreementSignatureSchema) })),
});

export const claimView = z.strictObject({ job: claimedJobView.nullable() });

export const finishJobBody = z.union([z.strictObject({ result: signedStatementSchema }), z.strictObject({ error: z.string().min(1).max(1000) })]);

export type JobView = z.infer<typeof jobView>;
export type ServiceAttestationView = z.infer<typeof serviceAttestationView>;
export type WorkerView = z.infer<typeof workerView>;
export type ClaimedJobView = z.infer<typeof claimedJobView>;
