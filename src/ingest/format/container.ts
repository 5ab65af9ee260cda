import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { MalusError } from '../../errors/index.js';

// The encrypted dataset file, `malus.dataset/v1` (docs/dataset-format.md):
//
//   "MALUSDS1" | u32be header length | header (RFC 8785 JSON) | chunk*
//   chunk = u32be sealed length | AES-256-GCM(data key, nonce_i, plaintext_i, aad = SHA-256(prefix)) || tag
//
// where prefix is everything before the first chunk and nonce_i = noncePrefix(7) | u32be(i) | last(1).
// This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the counter stops
// reordering, the last-chunk flag stops truncation, the header hash in every AAD binds each chunk to
// this collaboration, agreement, table and schema, and the data key is fresh per dataset, so chunks
// spliced in from another dataset never authenticate.

export const DATASET_FORMAT = 'malus.dataset/v1';
export const DATASET_MAGIC = Buffer.from('MALUSDS1', 'latin1');
export const CHUNK_BYTES = 1 << 20;
const MAX_HEADER_BYTES = 64 * 1024;
const TAG_BYTES = 16;
const NONCE_PREFIX_BYTES = 7;
export const DATA_KEY_BYTES = 32;
/** A dataset id, as the API and the file paths on the server take it. */
export const DATASET_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{2,63}$/;

const sha256Ref = z.string().regex(/^sha256:[0-9a-f]{64}$/);

export const datasetHeaderSchema = z.strictObject({
  format: z.literal(DATASET_FORMAT),
  dataset: z.string().regex(DATASET_ID_PATTERN),
  collaboration: z.string().min(1).max(64),
  agreementHash: sha256Ref,
  table: z.string().min(1).max(63),
  owner: z.string().regex(/^[0-9a-f]{20}$/),
  schemaHash: sha256Ref,
  rows: z.number().int().min(0),
  /** What the chunks hold once decrypted: a Parquet file as DuckDB writes it. */
  payload: z.literal('parquet'),
  cipher: z.literal('AES-256-GCM-STREAM'),
  chunkBytes: z.literal(CHUNK_BYTES),
  noncePrefix: z.string().regex(/^[A-Za-z0-9_-]{10}$/),
});

export type DatasetHeader = z.infer<typeof datasetHeaderSchema>;
export type DatasetHeaderFields = Omit<DatasetHeader, 'format' | 'payload' | 'cipher' | 'chunkBytes' | 'noncePrefix'>;

export function newDatasetHeader(fields: DatasetHeaderFields): DatasetHeader {
  return {
    format: DATASET_FORMAT,
    ...fields,
    payload: 'parquet',
    cipher: 'AES-256-GCM-STREAM',
    chunkBytes: CHUNK_BYTES,
    noncePrefix: randomBytes(NONCE_PREFIX_BYTES).toString('base64url'),
  };
}

/** The bytes before the first chunk: magic, length and canonical header. */
export function encodeHeader(header: DatasetHeader): Buffer {
  const json = Buffer.from(canonicalize(header) ?? '', 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([DATASET_MAGIC, length, json]);
}

function nonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const out = Buffer.alloc(12);
  prefix.copy(out, 0);
  out.writeUInt32BE(index, NONCE_PREFIX_BYTES);
  out[11] = last ? 1 : 0;
  return out;
}

function checkKey(key: Uint8Array): void {
  if (key.length !== DATA_KEY_BYTES) throw new MalusError('invalid-input', `a data key is ${DATA_KEY_BYTES} bytes, not ${key.length}`);
}

/**
 * Seals a plaintext stream chunk by chunk. `push` buffers until a whole chunk is ready, so callers
 * may feed any sizes; `finish` seals the final (possibly short, possibly empty) chunk.
 */
export function datasetSealer(header: DatasetHeader, key: Uint8Array): { prefix: Buffer; push(data: Uint8Array): Buffer[]; finish(): Buffer } {
  checkKey(key);
  const prefix = encodeHeader(header);
  const aad = createHash('sha256').update(prefix).digest();
  const noncePrefix = Buffer.from(header.noncePrefix, 'base64url');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;
  let finished = false;
  const seal = (plaintext: Buffer, last: boolean): Buffer => {
    if (index > 0xffffffff) throw new MalusError('invalid-input', 'dataset too large: more than 2^32 chunks');
    const cipher = createCipheriv('aes-256-gcm', key, nonce(noncePrefix, index, last));
    cipher.setAAD(aad);
    const encrypted = cipher.update(plaintext);
    const rest = cipher.final(); // empty for GCM
    const tag = cipher.getAuthTag();
    index += 1;
    // One buffer per sealed chunk, copied once: length, ciphertext, tag.
    const body = encrypted.length + rest.length + tag.length;
    const out = Buffer.allocUnsafe(4 + body);
    out.writeUInt32BE(body, 0);
    encrypted.copy(out, 4);
    rest.copy(out, 4 + encrypted.length);
    tag.copy(out, 4 + encrypted.length + rest.length);
    return out;
  };
  return {
    prefix,
    push(data) {
      if (finished) throw new Error('datasetSealer: push after finish');
      pending.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      pendingBytes += data.byteLength;
      const out: Buffer[] = [];
      // Keep at least one byte back so that the final chunk is never empty unless the stream is.
      while (pendingBytes > CHUNK_BYTES) {
        // Copied together only when the chunk spans pieces.
        const first = pending[0] as Buffer;
        const all = first.length >= CHUNK_BYTES ? first : Buffer.concat(pending);
        out.push(seal(all.subarray(0, CHUNK_BYTES), false));
        const rest = all.subarray(CHUNK_BYTES);
        pending = all === first ? [...(rest.length > 0 ? [rest] : []), ...pending.slice(1)] : [rest];
        pendingBytes -= CHUNK_BYTES;
      }
      return out;
    },
    finish() {
      if (finished) throw new Error('datasetSealer: finish twice');
      finished = true;
      return seal(Buffer.concat(pending), true);
    },
  };
}

/** Reads and checks the header at the start of a dataset file. */
export function parseDatasetHeader(bytes: Uint8Array): { header: DatasetHeader; prefixBytes: number } {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < DATASET_MAGIC.length + 4 || !buffer.subarray(0, DATASET_MAGIC.length).equals(DATASET_MAGIC)) {
    throw new MalusError('invalid-input', 'not a Malus dataset file: the first 8 bytes are not MALUSDS1');
  }
  const length = buffer.readUInt32BE(DATASET_MAGIC.length);
  if (length > MAX_HEADER_BYTES) throw new MalusError('invalid-input', `dataset header length ${length} at offset 8 exceeds ${MAX_HEADER_BYTES}`);
  const start = DATASET_MAGIC.length + 4;
  if (buffer.length < start + length) throw new MalusError('invalid-input', 'dataset file ends inside its header');
  const text = buffer.subarray(start, start + length).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MalusError('invalid-input', 'dataset header at offset 12 is not JSON');
  }
  const parsed = datasetHeaderSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MalusError('invalid-input', `dataset header field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  if (canonicalize(parsed.data) !== text) throw new MalusError('invalid-input', 'dataset header is not in canonical form');
  return { header: parsed.data, prefixBytes: start + length };
}

/**
 * A byte queue that never joins pieces: a chunk straddling two reads is handed on as views of
 * both, and only the few bytes a caller needs contiguous (a length, a tag, the header) are copied.
 */
function byteQueue(): { length: number; push(piece: Uint8Array): void; copy(from: number, n: number): Buffer; views(from: number, n: number): Buffer[]; drop(n: number): void } {
  const pieces: Buffer[] = [];
  let length = 0;
  return {
    get length() {
      return length;
    },
    push(piece: Uint8Array) {
      if (piece.byteLength === 0) return;
      pieces.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      length += piece.byteLength;
    },
    /** A copy of bytes [from, from + n), or a view when they lie in one piece. */
    copy(from: number, n: number): Buffer {
      let index = 0;
      let skip = from;
      while (skip >= (pieces[index] as Buffer).length) skip -= (pieces[index++] as Buffer).length;
      const first = pieces[index] as Buffer;
      if (first.length - skip >= n) return first.subarray(skip, skip + n);
      const out = Buffer.allocUnsafe(n);
      for (let written = 0; written < n; index += 1, skip = 0) {
        written += (pieces[index] as Buffer).copy(out, written, skip, skip + n - written);
      }
      return out;
    },
    /** Views covering bytes [from, from + n), in order. */
    views(from: number, n: number): Buffer[] {
      const out: Buffer[] = [];
      let skip = from;
      for (let index = 0, left = n; left > 0; index += 1) {
        const piece = pieces[index] as Buffer;
        if (skip >= piece.length) {
          skip -= piece.length;
          continue;
        }
        const view = piece.subarray(skip, skip + left);
        skip = 0;
        out.push(view);
        left -= view.length;
      }
      return out;
    },
    drop(n: number) {
      let left = Math.min(n, length);
      length -= left;
      while (left > 0) {
        const first = pieces[0] as Buffer;
        if (first.length > left) {
          pieces[0] = first.subarray(left);
          return;
        }
        left -= first.length;
        pieces.shift();
      }
    },
  };
}

/**
 * Opens a dataset stream chunk by chunk, yielding verified plaintext only, in pieces that follow
 * how the ciphertext arrived. Every failure names the chunk and its byte offset; nothing of a chunk
 * is yielded before its tag has verified.
 */
export async function* openDataset(
  source: AsyncIterable<Uint8Array>,
  key: Uint8Array,
  onHeader?: (header: DatasetHeader) => void,
): AsyncGenerator<Buffer, DatasetHeader> {
  checkKey(key);
  const queue = byteQueue();
  let consumed = 0;
  let header: DatasetHeader | undefined;
  let aad: Buffer | undefined;
  let noncePrefix: Buffer | undefined;
  let index = 0;
  // An object, not a let: the flag is set inside tryChunk, where control-flow narrowing cannot see it.
  const seen = { last: false };
  const fail = (message: string): never => {
    throw new MalusError('invalid-input', message);
  };
  // A chunk's plaintext, as the pieces the decipher gave back for the pieces it was fed.
  const tryChunk = (final: boolean): Buffer[] | undefined => {
    if (queue.length < 4) return undefined;
    const length = queue.copy(0, 4).readUInt32BE(0);
    if (length < TAG_BYTES || length > CHUNK_BYTES + TAG_BYTES) fail(`chunk ${index} at offset ${consumed} has an impossible length ${length}`);
    if (queue.length < 4 + length) return undefined;
    // The last chunk is the one that ends the stream: decide only when no more bytes follow it.
    if (queue.length === 4 + length && !final) return undefined;
    const last = queue.length === 4 + length && final;
    const decipher = createDecipheriv('aes-256-gcm', key, nonce(noncePrefix as Buffer, index, last));
    decipher.setAAD(aad as Buffer);
    decipher.setAuthTag(queue.copy(4 + length - TAG_BYTES, TAG_BYTES));
    const plaintext: Buffer[] = [];
    try {
      // The sealed body may straddle reads: each piece goes through the decipher as it lies.
      for (const view of queue.views(4, length - TAG_BYTES)) {
        const opened = decipher.update(view);
        if (opened.length > 0) plaintext.push(opened);
      }
      const rest = decipher.final(); // empty for GCM; checked anyway rather than assumed
      if (rest.length > 0) plaintext.push(rest);
    } catch {
      const why = last
        ? 'the file is truncated, or the chunk was altered or moved, or the key is wrong'
        : 'the chunk was altered, moved, or taken from another dataset, or the key is wrong';
      return fail(`chunk ${index} at offset ${consumed} does not authenticate: ${why}`);
    }
    consumed += 4 + length;
    queue.drop(4 + length);
    index += 1;
    if (last) seen.last = true;
    return plaintext;
  };
  for await (const piece of source) {
    queue.push(piece);
    if (header === undefined) {
      if (queue.length < DATASET_MAGIC.length + 4) continue;
      const length = queue.copy(0, DATASET_MAGIC.length + 4).readUInt32BE(DATASET_MAGIC.length);
      if (queue.length < DATASET_MAGIC.length + 4 + length && length <= MAX_HEADER_BYTES) continue;
      const parsed = parseDatasetHeader(queue.copy(0, Math.min(queue.length, DATASET_MAGIC.length + 4 + length)));
      header = parsed.header;
      onHeader?.(header);
      aad = createHash('sha256').update(queue.copy(0, parsed.prefixBytes)).digest();
      noncePrefix = Buffer.from(header.noncePrefix, 'base64url');
      consumed = parsed.prefixBytes;
      queue.drop(parsed.prefixBytes);
    }
    for (let chunk = tryChunk(false); chunk !== undefined; chunk = tryChunk(false)) yield* chunk;
  }
  if (header === undefined) return fail(queue.length === 0 ? 'the dataset file is empty' : 'the dataset file ends inside its header');
  for (let chunk = tryChunk(true); chunk !== undefined; chunk = seen.last ? undefined : tryChunk(true)) yield* chunk;
  if (!seen.last) {
    fail(
      queue.length === 0
        ? `the dataset file is truncated at offset ${consumed}: its last chunk is missing`
        : `the dataset file is truncated inside chunk ${index} at offset ${consumed}`,
    );
  }
  if (queue.length > 0) fail(`${queue.length} bytes follow the last chunk at offset ${consumed}`);
  return header;
}
