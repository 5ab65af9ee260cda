import { z } from 'zod';
import { jobIdSchema } from './confidential.js';
import { collaborationIdParams } from './schemas.js';

// Wire schemas of dataset upload and download (docs/datasets.md). The request body of a manifest
// upload is the owner-signed manifest (`signedManifestSchema` of the ingest module); the upload's
// bytes travel as `application/offset+octet-stream` pieces (tus 1.0 conventions).

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const partyId = z.string().regex(/^[0-9a-f]{20}$/);

/** Dataset ids are those of key registration: scoped to their collaboration. */
export const datasetIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'expected a dataset id: 3 to 64 characters, a-z, 0-9, ".", "_", "-"');

export const datasetParams = collaborationIdParams.extend({ dataset: datasetIdSchema });

export const workerDatasetParams = z.strictObject({ job: jobIdSchema, dataset: datasetIdSchema });

/** What anyone in the collaboration sees of an uploaded dataset: hashes and counts, never data. */
export const datasetView = z.strictObject({
  dataset: datasetIdSchema,
  table: z.string(),
  owner: partyId,
  rows: z.number().int().min(0),
  bytes: z.number().int().min(1),
  /** SHA-256 of the encrypted file. */
  ciphertext: hash,
  headerHash: hash,
  schemaHash: hash,
  agreementHash: hash,
  keyCommitment: hash,
  createdAt: z.string(),
  /** Whether this server's key-release service holds a data key with the manifest's key commitment. */
  keyRegistered: z.boolean(),
});

export const datasetList = z.strictObject({ datasets: z.array(datasetView) });

export const uploadProgressView = z.strictObject({
  /** Bytes of the encrypted file the server holds: the next piece starts here. */
  offset: z.number().int().min(0),
  bytes: z.number().int().min(1),
});

export const uploadStateView = z.discriminatedUnion('status', [
  datasetView.extend({ status: z.literal('complete') }),
  uploadProgressView.extend({ status: z.literal('uploading') }),
]);

/** The `upload-offset` request header of a piece: where in the file its bytes go. */
export const uploadPieceHeaders = z.looseObject({
  'upload-offset': z
    .string()
    .regex(/^(?:0|[1-9][0-9]{0,15})$/, 'expected the offset in bytes, a non-negative integer')
    .describe('Where in the file this piece starts: the bytes received so far'),
});

export type DatasetView = z.infer<typeof datasetView>;
export type UploadStateView = z.infer<typeof uploadStateView>;
export type UploadProgressView = z.infer<typeof uploadProgressView>;
