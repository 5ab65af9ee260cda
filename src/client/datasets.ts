import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Agreement } from '../agreement/index.js';
import {
  datasetIdSchema,
  datasetList,
  datasetView,
  uploadProgressView,
  uploadStateView,
  type DatasetView,
  type UploadStateView,
} from '../api/index.js';
import { MalusError, isMalusError, issuesFromZod, type Reason } from '../errors/index.js';
import {
  DATASET_FILES,
  openOwnerDataKey,
  parseDatasetHeader,
  sealedDataKeySchema,
  signedManifestSchema,
  verifyManifest,
  type SealedDataKey,
  type SignedManifest,
} from '../ingest/index.js';
import { keyCommitment, type EvidenceTrust } from '../keyrelease/index.js';
import { request, requestStream, type MalusClient } from './client.js';
import { registerDataKey } from './confidential.js';

// The owner's side of dataset upload (docs/datasets.md): check the prepared folder against the
// agreement and the caller's own key, register the data key with the clean room only after its
// attestation checks out, then send the manifest and the encrypted file in pieces from wherever the
// server stopped, so that running it again after an interruption resumes and, once complete, does
// nothing.

/** Pieces of 4 MiB by default; the server takes at most 8 MiB per request. */
export const DEFAULT_UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
const MAX_UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024;
const UPLOAD_MEDIA_TYPE = 'application/offset+octet-stream';
/** The dataset header is at most 64 KiB after its 12-byte magic and length. */
const HEADER_READ_BYTES = 12 + 64 * 1024;
/** A slow disk's hashing speed (about 10 MB/s), for the time the server may take to complete a dataset. */
const COMPLETION_BYTES_PER_MS = 10_000;
/** How often in a row an upload may find the server elsewhere than it expected before giving up. */
const MAX_OFFSET_RETRIES = 3;

const datasetsPath = (id: string): string => `/v1/collaborations/${encodeURIComponent(id)}/datasets`;
const datasetPath = (id: string, dataset: string): string => `${datasetsPath(id)}/${encodeURIComponent(dataset)}`;
const workerDatasetPath = (jobId: string, dataset: string): string =>
  `/v1/workers/me/jobs/${encodeURIComponent(jobId)}/datasets/${encodeURIComponent(dataset)}`;

export interface UploadDatasetParameters {
  /** A folder `malus dataset prepare` wrote: dataset.mds, manifest.json and data-key.json. */
  readonly dir: string;
  /** The active agreement, as the caller checked it (not as the server says). */
  readonly agreement: Agreement;
  /**
   * The hashes of the active agreement and the versions it amends; when given, the manifest's
   * agreement must be one of them (the server checks this in any case).
   */
  readonly lineage?: readonly string[];
  /** Development CAs trusted for the key-release service's sim evidence (trust on first use otherwise). */
  readonly simRoots?: readonly string[];
  readonly trust?: Omit<EvidenceTrust, 'simRoots'>;
  /**
   * Called with the bytes the server holds and the file's size: once before the first piece (so a
   * resumed upload shows where it resumes), then after every piece; not at all when the server
   * already holds the dataset.
   */
  readonly onProgress?: (sent: number, total: number) => void;
  /** Bytes per request, at most 8 MiB (4 MiB by default). */
  readonly chunkBytes?: number;
  readonly now?: Date;
}

interface PreparedFolder {
  readonly signed: SignedManifest;
  readonly sealedKey: SealedDataKey;
  readonly ciphertextPath: string;
}

async function readJson<T extends z.ZodType>(path: string, schema: T, what: string): Promise<z.infer<T>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MalusError('invalid-input', `${what} ${path} is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new MalusError('invalid-input', `${what} ${path} is not valid`, { issues: issuesFromZod(parsed.error, json) });
  return parsed.data;
}

async function readFolder(dir: string): Promise<PreparedFolder> {
  return {
    signed: await readJson(join(dir, DATASET_FILES.manifest), signedManifestSchema, 'the manifest'),
    sealedKey: await readJson(join(dir, DATASET_FILES.dataKey), sealedDataKeySchema, 'the sealed data key'),
    ciphertextPath: join(dir, DATASET_FILES.ciphertext),
  };
}

/** The manifest must be the caller's own, for a table it owns in this agreement. */
function checkManifest(client: MalusClient, signed: SignedManifest, parameters: UploadDatasetParameters): void {
  const me = client.keys?.identity.id;
  if (me === undefined) throw new MalusError('usage', 'uploading a dataset needs your key file');
  const { manifest } = signed;
  const { agreement } = parameters;
  if (!datasetIdSchema.safeParse(manifest.dataset).success) {
    throw new MalusError('invalid-input', `dataset id ${manifest.dataset}: expected 3 to 64 characters, a-z, 0-9, ".", "_", "-"`);
  }
  if (manifest.collaboration !== agreement.id) {
    throw new MalusError('invalid-input', `the dataset was prepared for collaboration ${manifest.collaboration}, not ${agreement.id}`);
  }
  const table = agreement.tables.find((t) => t.name === manifest.table);
  if (table === undefined) throw new MalusError('invalid-input', `the agreement has no table ${manifest.table}`);
  if (table.owner !== me || manifest.owner !== me || signed.signature.signer !== me) {
    throw new MalusError('forbidden', `table ${table.name} belongs to ${table.owner}; the manifest is for ${manifest.owner}, signed by ${signed.signature.signer}; you are ${me}`);
  }
  const verdict = verifyManifest(signed, { agreement, lineage: parameters.lineage ?? [manifest.agreementHash] });
  if (!verdict.ok) {
    const reasons: Reason[] = verdict.reasons.map((r) => ({ code: r.code, message: r.message }));
    if (reasons.some((r) => r.code === 'not-owner' || r.code === 'not-provider')) {
      throw new MalusError('forbidden', 'only the owner of the table, a data provider of the agreement, uploads its datasets', { reasons });
    }
    // A folder whose manifest does not verify is bad input on the owner's own machine (exit 2).
    if (reasons.some((r) => r.code === 'bad-signature')) throw new MalusError('invalid-input', 'manifest.json: the signature does not verify under the owner\'s signing key', { reasons });
    throw new MalusError('invalid-input', 'the manifest does not fit the agreement', { reasons });
  }
}

/** The file must be the one the manifest describes: size, hash and every header field. */
async function checkFile(path: string, signed: SignedManifest): Promise<void> {
  const { manifest } = signed;
  const unreadable = (error: unknown): MalusError =>
    new MalusError('file-unreadable', `cannot read the dataset file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  const size = await stat(path).then(
    (s) => s.size,
    (error: unknown) => {
      throw unreadable(error);
    },
  );
  if (size !== manifest.ciphertext.bytes) throw new MalusError('invalid-input', `${path} is ${size} bytes; its manifest says ${manifest.ciphertext.bytes}`);
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw unreadable(error);
  });
  const hash = createHash('sha256');
  const headPieces: Buffer[] = [];
  let headBytes = 0;
  try {
    for await (const piece of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
      if (headBytes < HEADER_READ_BYTES) {
        const kept = Buffer.from(piece.subarray(0, HEADER_READ_BYTES - headBytes));
        headPieces.push(kept);
        headBytes += kept.length;
      }
      hash.update(piece);
    }
  } catch (error) {
    throw unreadable(error);
  } finally {
    await handle.close();
  }
  if (`sha256:${hash.digest('hex')}` !== manifest.ciphertext.sha256) {
    throw new MalusError('invalid-input', `${path} does not hash to the manifest's ciphertext.sha256: it is not the file the manifest describes`);
  }
  const head = Buffer.concat(headPieces);
  const { header, prefixBytes } = parseDatasetHeader(head);
  const differs: string[] = (['dataset', 'collaboration', 'agreementHash', 'table', 'owner', 'schemaHash', 'rows'] as const).filter((f) => header[f] !== manifest[f]);
  if (`sha256:${createHash('sha256').update(head.subarray(0, prefixBytes)).digest('hex')}` !== manifest.headerHash) differs.push('headerHash');
  if (differs.length > 0) throw new MalusError('invalid-input', `the header of ${path} differs from its manifest in ${differs.join(', ')}`);
}

/** Opens the owner's data key and checks it is the one the manifest commits to. */
async function dataKeyOf(client: MalusClient, folder: PreparedFolder): Promise<Uint8Array> {
  const { manifest } = folder.signed;
  const keys = client.keys;
  if (keys === undefined) throw new MalusError('usage', 'uploading a dataset needs your key file');
  if (folder.sealedKey.collaboration !== manifest.collaboration || folder.sealedKey.dataset !== manifest.dataset) {
    throw new MalusError('invalid-input', `${DATASET_FILES.dataKey} is for dataset ${folder.sealedKey.dataset} of ${folder.sealedKey.collaboration}, not this one`);
  }
  const dataKey = await openOwnerDataKey(folder.sealedKey, keys);
  if (keyCommitment(dataKey, manifest.collaboration, manifest.dataset) !== manifest.keyCommitment) {
    dataKey.fill(0);
    throw new MalusError('invalid-input', `${DATASET_FILES.dataKey} holds another key than the manifest commits to`);
  }
  return dataKey;
}

function viewOf(state: UploadStateView & { status: 'complete' }): DatasetView {
  return {
    dataset: state.dataset,
    table: state.table,
    owner: state.owner,
    rows: state.rows,
    bytes: state.bytes,
    ciphertext: state.ciphertext,
    headerHash: state.headerHash,
    schemaHash: state.schemaHash,
    agreementHash: state.agreementHash,
    keyCommitment: state.keyCommitment,
    createdAt: state.createdAt,
    keyRegistered: state.keyRegistered,
  };
}

async function readPiece(path: string, offset: number, length: number): Promise<Uint8Array> {
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw new MalusError('file-unreadable', `cannot read the dataset file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  });
  try {
    const buffer = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
      if (bytesRead === 0) throw new MalusError('file-unreadable', `${path} ended at byte ${offset + filled} while it was being uploaded`);
      filled += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/**
 * Uploads a prepared dataset folder and returns the dataset as the server records it. Nothing leaves
 * this machine before the folder checks out against the agreement and the caller's key, and the data
 * key and manifest leave only after the key-release service's attestation satisfies the agreement
 * (`attestation-refused` otherwise). Running it again resumes an interrupted upload; a dataset the
 * server already holds with this ciphertext is answered as it is.
 */
export async function uploadDataset(client: MalusClient, parameters: UploadDatasetParameters): Promise<DatasetView> {
  const chunkBytes = parameters.chunkBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_UPLOAD_CHUNK_BYTES) {
    throw new MalusError('usage', `chunkBytes must be an integer from 1 to ${MAX_UPLOAD_CHUNK_BYTES}`);
  }
  const folder = await readFolder(parameters.dir);
  const { signed, ciphertextPath } = folder;
  const { manifest } = signed;
  checkManifest(client, signed, parameters);
  await checkFile(ciphertextPath, signed);
  const dataKey = await dataKeyOf(client, folder);
  try {
    await registerDataKey(client, {
      agreement: parameters.agreement,
      dataset: manifest.dataset,
      table: manifest.table,
      dataKey,
      ...(parameters.simRoots === undefined ? {} : { simRoots: parameters.simRoots }),
      ...(parameters.trust === undefined ? {} : { trust: parameters.trust }),
      ...(parameters.now === undefined ? {} : { now: parameters.now }),
    });
  } catch (error) {
    // Most often a dataset prepared again under the id of an earlier one: say what to do.
    if (isMalusError(error) && error.code === 'conflict' && error.message.includes('different data key')) {
      throw new MalusError(
        'conflict',
        `${error.message}: a dataset id keeps the first data key registered for it, so a dataset prepared again is uploaded under another id (dataset prepare --dataset); an unfinished upload under this one can be given up (dataset abandon)`,
      );
    }
    throw error;
  } finally {
    dataKey.fill(0);
  }

  // "Complete" is believed only of this dataset: the same ciphertext, table, owner and key.
  const ours = (state: UploadStateView & { status: 'complete' }): DatasetView => {
    const view = viewOf(state);
    const mismatched = (
      [
        ['dataset', view.dataset, manifest.dataset],
        ['ciphertext', view.ciphertext, manifest.ciphertext.sha256],
        ['bytes', view.bytes, manifest.ciphertext.bytes],
        ['table', view.table, manifest.table],
        ['owner', view.owner, manifest.owner],
        ['keyCommitment', view.keyCommitment, manifest.keyCommitment],
      ] as const
    ).filter(([, got, expected]) => got !== expected);
    if (mismatched.length > 0) {
      throw new MalusError('server-error', `the server calls dataset ${manifest.dataset} complete, but with another ${mismatched.map(([field]) => field).join(', ')} than its manifest`);
    }
    return view;
  };
  const path = datasetPath(parameters.agreement.id, manifest.dataset);
  const started = await request(client, { method: 'PUT', path, body: signed, response: uploadStateView });
  const total = manifest.ciphertext.bytes;
  if (started.status === 'complete') return ours(started);
  const where = async (): Promise<number> => (await request(client, { method: 'GET', path: `${path}/upload`, response: uploadProgressView })).offset;
  let offset = await where();
  parameters.onProgress?.(offset, total);
  let retries = 0;
  for (;;) {
    const piece = await readPiece(ciphertextPath, offset, Math.min(chunkBytes, total - offset));
    let state: UploadStateView;
    try {
      state = await request(client, {
        method: 'PATCH',
        path: `${path}/upload`,
        raw: { bytes: piece, contentType: UPLOAD_MEDIA_TYPE },
        headers: { 'upload-offset': String(offset) },
        response: uploadStateView,
        // The last piece waits while the server re-hashes the whole file.
        ...(offset + piece.length === total ? { timeoutMs: client.timeoutMs + Math.ceil(total / COMPLETION_BYTES_PER_MS) } : {}),
      });
    } catch (error) {
      // The server is elsewhere than we thought: another run of this upload moved it on or
      // finished it (its pending upload is then gone), or an answer was lost. The same manifest
      // again answers where it is, or that the dataset is complete.
      const moved = isMalusError(error, 'conflict') && error.reasons.some((r) => r.code === 'offset-mismatch');
      if ((moved || isMalusError(error, 'not-found')) && retries < MAX_OFFSET_RETRIES) {
        retries += 1;
        const again = await request(client, { method: 'PUT', path, body: signed, response: uploadStateView });
        if (again.status === 'complete') {
          parameters.onProgress?.(total, total);
          return ours(again);
        }
        // Others moving it on is progress: only answers that go nowhere count against the retries.
        if (again.offset > offset) retries = 0;
        offset = again.offset;
        parameters.onProgress?.(offset, total);
        continue;
      }
      throw error;
    }
    retries = 0;
    if (state.status === 'complete') {
      parameters.onProgress?.(total, total);
      return ours(state);
    }
    offset = state.offset;
    parameters.onProgress?.(offset, total);
  }
}

/**
 * Gives up the caller's pending upload of a dataset: the server drops its bytes and its claim on
 * the disk. The dataset id keeps any data key registered for it, so a dataset prepared again is
 * uploaded under another id.
 */
export async function abandonUpload(client: MalusClient, collaborationId: string, datasetId: string): Promise<void> {
  await request(client, { method: 'DELETE', path: `${datasetPath(collaborationId, datasetId)}/upload`, response: z.undefined() });
}

export async function listDatasets(client: MalusClient, collaborationId: string): Promise<DatasetView[]> {
  return (await request(client, { method: 'GET', path: datasetsPath(collaborationId), response: datasetList })).datasets;
}

export function getDataset(client: MalusClient, collaborationId: string, datasetId: string): Promise<DatasetView> {
  return request(client, { method: 'GET', path: datasetPath(collaborationId, datasetId), response: datasetView });
}

/** The enclave worker's read of a dataset its running job names: the encrypted file, streamed. */
export function fetchJobDataset(client: MalusClient, jobId: string, datasetId: string): Promise<AsyncIterable<Uint8Array>> {
  return requestStream(client, workerDatasetPath(jobId, datasetId));
}

/** The owner-signed manifest of a dataset the worker's running job names (the enclave verifies it itself). */
export function fetchJobDatasetManifest(client: MalusClient, jobId: string, datasetId: string): Promise<SignedManifest> {
  return request(client, { method: 'GET', path: `${workerDatasetPath(jobId, datasetId)}/manifest`, response: signedManifestSchema });
}

export type { DatasetView, SignedManifest };
