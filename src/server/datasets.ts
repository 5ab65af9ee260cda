import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import canonicalize from 'canonicalize';
import type { DatasetView, UploadProgressView, UploadStateView } from '../api/index.js';
import { MalusError, type Reason } from '../errors/index.js';
import { parseDatasetHeader, signedManifestSchema, syncPath, verifyManifest, type ManifestReason, type SignedManifest } from '../ingest/index.js';
import type { LogEvent } from '../ledger/index.js';
import type { DatasetRecord, DatasetUploadRecord } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import { activeAgreementOf } from './collaborations.js';
import { requireWorker } from './confidential.js';
import { DEFAULT_UPLOAD_LIMITS, type ServerContext } from './context.js';
import { toLogAppend } from './transparency.js';

// Dataset upload (docs/datasets.md): the owner sends its signed manifest, then the encrypted file in
// pieces at explicit offsets (tus 1.0 conventions), so an interrupted upload resumes where the server
// stopped. The file grows under uploads/<collaboration>/<dataset>.part; once the last byte is in, the
// server re-hashes it, checks its header against the manifest, moves it into
// datasets/<collaboration>/<dataset>.mds and only then records the dataset and its log entry in one
// transaction. A dataset is visible only through its row, so a crash at any point leaves either a
// pending upload (which resumes) or a complete dataset, never half of one.

/** The largest piece one request may carry; JSON bodies keep the server's 1 MiB limit. */
export const UPLOAD_PIECE_BYTES = 8 * 1024 * 1024;
export const UPLOAD_MEDIA_TYPE = 'application/offset+octet-stream';

/** Dataset and collaboration ids come from validated routes; this keeps a path component a name. */
const SAFE_COMPONENT = /^[a-z0-9][a-z0-9._-]{2,63}$/;
/** The dataset header is at most 64 KiB after its 12-byte magic and length. */
const HEADER_READ_BYTES = 12 + 64 * 1024;

interface DatasetFiles {
  readonly part: string;
  readonly final: string;
}

function filesOf(ctx: ServerContext, collaborationId: string, datasetId: string): DatasetFiles {
  if (ctx.dataDir === undefined) throw new MalusError('not-found', 'this server keeps no datasets');
  if (!SAFE_COMPONENT.test(collaborationId) || !SAFE_COMPONENT.test(datasetId)) throw new MalusError('invalid-input', 'bad collaboration or dataset id');
  return {
    part: join(ctx.dataDir, 'uploads', collaborationId, `${datasetId}.part`),
    final: join(ctx.dataDir, 'datasets', collaborationId, `${datasetId}.mds`),
  };
}

/** Disk failures are the server's, not the caller's: logged in full, answered as a bare 500. */
function diskFailure(what: string, error: unknown): MalusError {
  return new MalusError('store-failure', `could not ${what}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw diskFailure('read an upload', error);
  }
}

async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw diskFailure('remove an upload', error);
  }
}

/**
 * Work on one dataset runs one request at a time in this process: file writes and offsets stay in
 * step. Starting an upload also takes ROOM_LOCK around the check of the limits and the record of
 * the new upload, so that uploads of different datasets started at once see each other.
 */
const datasetLocks = new Map<string, Promise<unknown>>();

function serialized<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = datasetLocks.get(key) ?? Promise.resolve();
  const run = previous.then(work, work);
  const tail = run.catch(() => undefined);
  datasetLocks.set(key, tail);
  void tail.then(() => {
    if (datasetLocks.get(key) === tail) datasetLocks.delete(key);
  });
  return run;
}

const lockKey = (collaborationId: string, datasetId: string): string => `${collaborationId}\u0000${datasetId}`;
const ROOM_LOCK = '\u0000room';

async function requireMember(ctx: ServerContext, id: string, caller: AuthenticatedParty): Promise<void> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
}

async function activeOf(ctx: ServerContext, id: string) {
  const active = await activeAgreementOf(ctx, id, ctx.now());
  if (active === undefined) throw new MalusError('conflict', `collaboration ${id} has no active agreement`);
  return active;
}

const FORBIDDEN_REASONS: readonly string[] = ['not-owner', 'not-provider'];
const INPUT_REASONS: readonly string[] = ['wrong-collaboration', 'unknown-table'];

/** A refused manifest as the error its most serious reason calls for, carrying every reason. */
function manifestRefusal(reasons: readonly ManifestReason[]): MalusError {
  const codes = reasons.map((r) => r.code as string);
  const all: Reason[] = reasons.map((r) => ({ code: r.code, message: r.message }));
  if (codes.some((c) => FORBIDDEN_REASONS.includes(c))) {
    return new MalusError('forbidden', 'only the owner of the table, a data provider of the active agreement, uploads its datasets', { reasons: all });
  }
  if (codes.includes('bad-signature')) return new MalusError('signature-invalid', 'the manifest signature does not verify', { reasons: all });
  if (codes.some((c) => INPUT_REASONS.includes(c))) return new MalusError('invalid-input', 'the manifest does not fit this collaboration', { reasons: all });
  return new MalusError('conflict', 'the manifest does not fit the active agreement', { reasons: all });
}

/** Checks a manifest against the collaboration's active agreement, or throws why not. */
async function checkManifest(ctx: ServerContext, id: string, signed: SignedManifest): Promise<void> {
  const verdict = verifyManifest(signed, await activeOf(ctx, id));
  if (!verdict.ok) throw manifestRefusal(verdict.reasons);
}

async function keyRegistered(ctx: ServerContext, records: readonly DatasetRecord[]): Promise<Set<string>> {
  const first = records[0];
  if (first === undefined) return new Set();
  const ids = records.map((r) => r.datasetId);
  const registered = new Set<string>();
  // keysOf takes at most 500 ids at a time.
  for (let i = 0; i < ids.length; i += 500) {
    for (const key of await ctx.store.keys.keysOf(first.collaborationId, ids.slice(i, i + 500))) registered.add(`${key.datasetId}\u0000${key.keyCommitment}`);
  }
  return new Set(records.filter((r) => registered.has(`${r.datasetId}\u0000${r.keyCommitment}`)).map((r) => r.datasetId));
}

/** What a dataset is, in hashes and counts: the same facts in its view and in its log entry. */
function datasetFacts(record: DatasetRecord) {
  return {
    dataset: record.datasetId,
    table: record.table,
    owner: record.owner,
    rows: record.rows,
    bytes: record.bytes,
    ciphertext: record.ciphertextSha256,
    headerHash: record.headerHash,
    schemaHash: record.schemaHash,
    agreementHash: record.agreementHash,
    keyCommitment: record.keyCommitment,
  };
}

function toView(record: DatasetRecord, registered: boolean): DatasetView {
  return {
    ...datasetFacts(record),
    createdAt: record.createdAt,
    keyRegistered: registered,
  };
}

async function viewOf(ctx: ServerContext, record: DatasetRecord): Promise<DatasetView> {
  return toView(record, (await keyRegistered(ctx, [record])).has(record.datasetId));
}

export async function listDatasets(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<DatasetView[]> {
  await requireMember(ctx, id, caller);
  const records = await ctx.store.datasets.list(id);
  const registered = await keyRegistered(ctx, records);
  return records.map((r) => toView(r, registered.has(r.datasetId)));
}

export async function showDataset(ctx: ServerContext, caller: AuthenticatedParty, id: string, datasetId: string): Promise<DatasetView> {
  await requireMember(ctx, id, caller);
  const record = await ctx.store.datasets.get(id, datasetId);
  if (record === undefined) throw new MalusError('not-found', `dataset ${datasetId} not found`);
  return viewOf(ctx, record);
}

const sameJson = (a: unknown, b: unknown): boolean => canonicalize(a) === canonicalize(b);

/**
 * Where a pending upload really is: the bytes received, unless its part file holds fewer (it was
 * lost). A complete file left at its final path by a crash between the move and the commit is taken
 * back, so the completion runs again instead of the owner sending everything again.
 */
async function reconcile(ctx: ServerContext, files: DatasetFiles, pending: DatasetUploadRecord): Promise<number> {
  let size = await sizeOf(files.part);
  if (size === undefined && pending.bytesReceived === pending.bytesExpected && (await sizeOf(files.final)) === pending.bytesExpected) {
    try {
      await mkdir(dirname(files.part), { recursive: true, mode: 0o700 });
      await rename(files.final, files.part);
      await syncPath(dirname(files.part));
    } catch (error) {
      throw diskFailure('recover an upload', error);
    }
    size = pending.bytesExpected;
  }
  const held = Math.min(size ?? 0, pending.bytesReceived);
  if (held !== pending.bytesReceived) await ctx.store.datasets.advanceUpload(pending.collaborationId, pending.datasetId, pending.bytesReceived, held);
  return held;
}

/**
 * Refuses an upload the server will not hold: a ciphertext over the size limit, a party with too
 * many uploads in progress, or more bytes than the disk has free once every upload in progress
 * has claimed what it still needs. Checked when an upload starts, so a manifest cannot claim the disk.
 */
async function checkRoomFor(ctx: ServerContext, caller: AuthenticatedParty, id: string, datasetId: string, bytes: number): Promise<void> {
  const limits = ctx.uploadLimits ?? DEFAULT_UPLOAD_LIMITS;
  if (bytes > limits.maxDatasetBytes) {
    throw new MalusError('payload-too-large', `the ciphertext is ${bytes} bytes; this server takes at most ${limits.maxDatasetBytes} per dataset`, {
      issues: [{ path: 'body.manifest.ciphertext.bytes', message: `at most ${limits.maxDatasetBytes}` }],
    });
  }
  // The pending upload this one replaces (same dataset) no longer counts.
  const others = (await ctx.store.datasets.pendingUploads()).filter((u) => !(u.collaborationId === id && u.datasetId === datasetId));
  const mine = others.filter((u) => u.collaborationId === id && u.owner === caller.id);
  if (mine.length >= limits.maxPendingPerParty) {
    throw new MalusError('conflict', `party ${caller.id} already has ${mine.length} uploads in progress in collaboration ${id} (at most ${limits.maxPendingPerParty}): finish one first (${mine.map((u) => u.datasetId).join(', ')})`);
  }
  const claimed = others.reduce((sum, u) => sum + (u.bytesExpected - u.bytesReceived), 0);
  let free: number;
  try {
    const disk = await statfs(ctx.dataDir as string);
    free = disk.bavail * disk.bsize;
  } catch (error) {
    throw diskFailure('measure the free disk space', error);
  }
  if (claimed + bytes > free) {
    throw new MalusError('insufficient-storage', `the server cannot hold ${bytes} more bytes: ${free} are free and uploads in progress still need ${claimed}`);
  }
}

function progress(offset: number, bytes: number): UploadProgressView & { status: 'uploading' } {
  return { status: 'uploading', offset, bytes };
}

/**
 * `PUT …/datasets/{dataset}`: starts (or finds) the upload of a dataset for its signed manifest. The
 * caller must be the manifest's signer, and the manifest must pass verifyManifest against the active
 * agreement. A pending upload under another manifest is replaced when its owner sends a newer one.
 */
export async function startUpload(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  datasetId: string,
  signed: SignedManifest,
): Promise<{ created: boolean; state: UploadStateView }> {
  await requireMember(ctx, id, caller);
  const { manifest } = signed;
  if (signed.signature.signer !== caller.id) {
    throw new MalusError('forbidden', `the manifest is signed by ${signed.signature.signer}: only its signer uploads it`);
  }
  if (manifest.dataset !== datasetId) {
    throw new MalusError('invalid-input', `the manifest is for dataset ${manifest.dataset}, not ${datasetId}`, {
      issues: [{ path: 'body.manifest.dataset', message: `expected ${datasetId}, the dataset of the path` }],
    });
  }
  await checkManifest(ctx, id, signed);
  const [key] = await ctx.store.keys.keysOf(id, [datasetId]);
  if (key !== undefined && (key.keyCommitment !== manifest.keyCommitment || key.owner !== manifest.owner || key.table !== manifest.table)) {
    throw new MalusError('conflict', `dataset ${datasetId} has a registered data key that is not the one its manifest commits to`);
  }
  const files = filesOf(ctx, id, datasetId);
  return serialized(lockKey(id, datasetId), async () => {
    const existing = await ctx.store.datasets.get(id, datasetId);
    if (existing !== undefined) {
      if (existing.ciphertextSha256 === manifest.ciphertext.sha256 && existing.bytes === manifest.ciphertext.bytes) {
        return { created: false, state: { status: 'complete', ...(await viewOf(ctx, existing)) } };
      }
      throw new MalusError('conflict', `dataset ${datasetId} is already uploaded with another ciphertext`);
    }
    const pending = await ctx.store.datasets.getUpload(id, datasetId);
    if (pending !== undefined) {
      if (sameJson(pending.manifest, signed)) {
        return { created: false, state: progress(await reconcile(ctx, files, pending), pending.bytesExpected) };
      }
      if (pending.owner !== caller.id) throw new MalusError('conflict', `dataset ${datasetId} is being uploaded by another party`);
    }
    // A new upload, or the owner's newer manifest replacing its own pending one: start from nothing.
    // With no dataset recorded, a file under the final name is what a crash between completing's
    // rename and its commit left: it goes too, or it would hold disk that no upload claims.
    await serialized(ROOM_LOCK, async () => {
      await checkRoomFor(ctx, caller, id, datasetId, manifest.ciphertext.bytes);
      await removeFile(files.part);
      await removeFile(files.final);
      await ctx.store.datasets.putUpload({
        collaborationId: id,
        datasetId,
        manifest: signed,
        owner: caller.id,
        bytesExpected: manifest.ciphertext.bytes,
        bytesReceived: 0,
        startedAt: ctx.now().toISOString(),
      });
    });
    return { created: true, state: progress(0, manifest.ciphertext.bytes) };
  });
}

async function pendingOf(ctx: ServerContext, caller: AuthenticatedParty, id: string, datasetId: string): Promise<DatasetUploadRecord> {
  const pending = await ctx.store.datasets.getUpload(id, datasetId);
  if (pending === undefined) throw new MalusError('not-found', `no upload of dataset ${datasetId} is in progress`);
  if (pending.owner !== caller.id) throw new MalusError('forbidden', `only the owner uploads dataset ${datasetId}`);
  return pending;
}

/** `GET …/upload`: how many bytes of a pending upload the server holds. */
export async function uploadProgress(ctx: ServerContext, caller: AuthenticatedParty, id: string, datasetId: string): Promise<UploadProgressView> {
  await requireMember(ctx, id, caller);
  const files = filesOf(ctx, id, datasetId);
  return serialized(lockKey(id, datasetId), async () => {
    const pending = await pendingOf(ctx, caller, id, datasetId);
    return { offset: await reconcile(ctx, files, pending), bytes: pending.bytesExpected };
  });
}

/**
 * `DELETE …/upload`: the owner gives up a pending upload (tus termination). Its bytes and its claim
 * on the disk go, and so does its place among the party's uploads in progress. A complete dataset
 * is not touched (404: there is no upload), and the dataset id keeps any data key registered for it.
 */
export async function abandonUpload(ctx: ServerContext, caller: AuthenticatedParty, id: string, datasetId: string): Promise<void> {
  await requireMember(ctx, id, caller);
  const files = filesOf(ctx, id, datasetId);
  await serialized(lockKey(id, datasetId), async () => {
    await pendingOf(ctx, caller, id, datasetId);
    // The record goes first: a crash after it leaves files that the next start of this upload removes.
    await ctx.store.datasets.abandonUpload(id, datasetId);
    await removeFile(files.part);
    if ((await ctx.store.datasets.get(id, datasetId)) === undefined) await removeFile(files.final);
  });
}

/** Thrown when a piece does not start where the upload is; the route repeats the offset in a header. */
export class OffsetMismatch extends MalusError {
  constructor(readonly offset: number, presented: number) {
    super('conflict', `the upload is at offset ${offset}, not ${presented}: send from there`, {
      reasons: [{ code: 'offset-mismatch', message: `the server holds ${offset} bytes of this upload` }],
    });
  }
}

async function writePiece(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // Not O_APPEND: the piece goes exactly at its offset.
    const handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT, 0o600);
    try {
      let written = 0;
      while (written < bytes.length) {
        written += (await handle.write(bytes, written, bytes.length - written, offset + written)).bytesWritten;
      }
      // Whatever a crash left past the received bytes goes.
      await handle.truncate(offset + bytes.length);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw diskFailure('write an upload', error);
  }
}

/**
 * `PATCH …/upload`: writes a piece at `offset` (which must be the bytes received so far), syncs it,
 * records the new offset and, once every byte is in, completes the dataset.
 */
export async function receivePiece(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  datasetId: string,
  offset: number,
  piece: Uint8Array,
): Promise<UploadStateView> {
  await requireMember(ctx, id, caller);
  const files = filesOf(ctx, id, datasetId);
  return serialized(lockKey(id, datasetId), async () => {
    const pending = await pendingOf(ctx, caller, id, datasetId);
    const received = await reconcile(ctx, files, pending);
    if (offset !== received) throw new OffsetMismatch(received, offset);
    const end = offset + piece.length;
    if (end > pending.bytesExpected) {
      throw new MalusError('invalid-input', `the piece ends at byte ${end}, past the ${pending.bytesExpected} bytes of the manifest`, {
        issues: [{ path: 'body', message: `at most ${pending.bytesExpected - offset} bytes from offset ${offset}` }],
      });
    }
    if (piece.length > 0) {
      await writePiece(files.part, offset, piece);
      if (!(await ctx.store.datasets.advanceUpload(id, datasetId, offset, end))) throw new MalusError('conflict', `the upload of ${datasetId} moved meanwhile`);
    }
    if (end < pending.bytesExpected) return progress(end, pending.bytesExpected);
    return { status: 'complete', ...(await complete(ctx, files, { ...pending, bytesReceived: end })) };
  });
}

async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } catch (error) {
    throw diskFailure('read an upload', error);
  }
  return { sha256: `sha256:${hash.digest('hex')}`, bytes };
}

async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Every way the file differs from its manifest: its hash and size, and each field of its header. */
async function fileProblems(path: string, signed: SignedManifest): Promise<Reason[]> {
  const { manifest } = signed;
  const problems: Reason[] = [];
  const actual = await hashFile(path);
  if (actual.bytes !== manifest.ciphertext.bytes) {
    problems.push({ code: 'size-mismatch', message: `the file is ${actual.bytes} bytes; the manifest says ${manifest.ciphertext.bytes}` });
  }
  if (actual.sha256 !== manifest.ciphertext.sha256) {
    problems.push({ code: 'ciphertext-mismatch', message: `the file hashes to ${actual.sha256}; the manifest says ${manifest.ciphertext.sha256}` });
  }
  let head: Buffer;
  try {
    head = await readHead(path, Math.min(HEADER_READ_BYTES, actual.bytes));
  } catch (error) {
    throw diskFailure('read an upload', error);
  }
  let parsed: ReturnType<typeof parseDatasetHeader>;
  try {
    parsed = parseDatasetHeader(head);
  } catch (error) {
    problems.push({ code: 'header-invalid', message: error instanceof MalusError ? error.message : 'the dataset header does not parse' });
    return problems;
  }
  const { header, prefixBytes } = parsed;
  const fields = ['dataset', 'collaboration', 'agreementHash', 'table', 'owner', 'schemaHash', 'rows'] as const;
  for (const field of fields) {
    if (header[field] !== manifest[field]) {
      problems.push({ code: 'header-mismatch', message: `the header's ${field} is ${String(header[field])}; the manifest says ${String(manifest[field])}` });
    }
  }
  const headerHash = `sha256:${createHash('sha256').update(head.subarray(0, prefixBytes)).digest('hex')}`;
  if (headerHash !== manifest.headerHash) {
    problems.push({ code: 'header-mismatch', message: `the header hashes to ${headerHash}; the manifest says ${manifest.headerHash}` });
  }
  return problems;
}

/**
 * Completes an upload whose bytes are all in: re-checks the manifest against the agreement now in
 * force, re-hashes the file and checks its header, moves it into place durably, then records the
 * dataset, drops the upload and appends `dataset.registered` in one transaction. A file that does
 * not match is deleted and the upload starts again from offset 0.
 */
async function complete(ctx: ServerContext, files: DatasetFiles, pending: DatasetUploadRecord): Promise<DatasetView> {
  const signed = storedManifest(pending.manifest);
  const { manifest } = signed;
  await checkManifest(ctx, pending.collaborationId, signed);
  const problems = await fileProblems(files.part, signed);
  if (problems.length > 0) {
    await removeFile(files.part);
    await ctx.store.datasets.advanceUpload(pending.collaborationId, pending.datasetId, pending.bytesReceived, 0);
    throw new MalusError('invalid-input', `the uploaded file does not match its manifest; the upload starts again at offset 0`, { reasons: problems });
  }
  const now = ctx.now().toISOString();
  const record: DatasetRecord = {
    collaborationId: pending.collaborationId,
    datasetId: pending.datasetId,
    table: manifest.table,
    owner: manifest.owner,
    agreementHash: manifest.agreementHash,
    schemaHash: manifest.schemaHash,
    headerHash: manifest.headerHash,
    rows: manifest.rows,
    bytes: manifest.ciphertext.bytes,
    ciphertextSha256: manifest.ciphertext.sha256,
    keyCommitment: manifest.keyCommitment,
    manifest: pending.manifest,
    createdAt: now,
  };
  const event: LogEvent = {
    format: 'malus.event/v1',
    type: 'dataset.registered',
    collaboration: record.collaborationId,
    actor: { kind: 'party', id: record.owner },
    time: now,
    ...datasetFacts(record),
  };
  // Encoded (and so validated) before anything moves: a refused entry leaves the upload as it was.
  const entry = toLogAppend(event);
  try {
    const handle = await open(files.part, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await mkdir(dirname(files.final), { recursive: true, mode: 0o700 });
    await rename(files.part, files.final);
    await syncPath(dirname(files.final));
    await syncPath(dirname(files.part));
  } catch (error) {
    throw diskFailure('move a dataset into place', error);
  }
  await ctx.store.datasets.complete(record, [entry]);
  const stored = await ctx.store.datasets.get(record.collaborationId, record.datasetId);
  return viewOf(ctx, stored ?? record);
}

/** A manifest as the store kept it, checked again: a damaged row must not pass as a manifest. */
function storedManifest(json: Record<string, unknown>): SignedManifest {
  const parsed = signedManifestSchema.safeParse(json);
  if (!parsed.success) throw new MalusError('store-failure', 'a stored dataset manifest is not a signed manifest');
  return parsed.data;
}

/** A dataset the caller's worker may read: its job is running on it and names the dataset. */
async function jobDataset(ctx: ServerContext, caller: AuthenticatedParty, jobId: string, datasetId: string): Promise<DatasetRecord> {
  const worker = await requireWorker(ctx, caller);
  const job = await ctx.store.jobs.get(jobId);
  if (job?.workerId !== worker.id || job.state !== 'running') throw new MalusError('not-found', `job ${jobId} not found`);
  if (!job.datasets.includes(datasetId)) throw new MalusError('not-found', `job ${jobId} names no dataset ${datasetId}`);
  const record = await ctx.store.datasets.get(job.collaborationId, datasetId);
  if (record === undefined) throw new MalusError('not-found', `dataset ${datasetId} is not uploaded`);
  return record;
}

/** The signed manifest of a dataset of the worker's running job. */
export async function jobDatasetManifest(ctx: ServerContext, caller: AuthenticatedParty, jobId: string, datasetId: string): Promise<SignedManifest> {
  return storedManifest((await jobDataset(ctx, caller, jobId, datasetId)).manifest);
}

/** The encrypted file of a dataset of the worker's running job, as a stream, with its size. */
export async function jobDatasetFile(ctx: ServerContext, caller: AuthenticatedParty, jobId: string, datasetId: string): Promise<{ stream: ReadStream; bytes: number }> {
  const record = await jobDataset(ctx, caller, jobId, datasetId);
  const { final } = filesOf(ctx, record.collaborationId, record.datasetId);
  const handle = await open(final, 'r').catch((error: unknown) => {
    throw diskFailure('open a dataset', error);
  });
  const { size } = await handle.stat();
  if (size !== record.bytes) {
    await handle.close();
    throw new MalusError('store-failure', `dataset ${record.datasetId} on disk is ${size} bytes, not ${record.bytes}`);
  }
  return { stream: handle.createReadStream(), bytes: size };
}
