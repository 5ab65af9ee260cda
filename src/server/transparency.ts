import { MalusError, isMalusError } from '../errors/index.js';
import {
  MerkleTree,
  addCosignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  encodeEvent,
  leafHash,
  openCheckpoint,
  signCheckpoint,
  verifierKeyString,
  type LogEvent,
  type NoteSigner,
} from '../ledger/index.js';
import type { CheckpointRecord, LogAppend, Store } from '../store/index.js';
import type { LogKey } from './log-key.js';

// The server's side of the transparency log: the in-memory Merkle tree mirrors the leaves in the
// store (the store is the truth; the tree is rebuilt from it on start), appends are group-committed
// (many callers, one durable transaction), and a checkpoint is signed at most once a second when
// entries arrived.

export interface TransparencyLog {
  readonly origin: string;
  /** The log's note verifier key: `<origin>+<key id>+<base64 key>`. */
  readonly verifierKey: string;
  readonly publicKey: Uint8Array;
  readonly tree: MerkleTree;
  /** Appends events durably; resolves with their indexes once committed. */
  append(events: readonly LogEvent[]): Promise<number[]>;
  /** Brings the tree up to date with leaves other transactions appended to the store. */
  sync(): Promise<void>;
  /** Signs and stores a checkpoint if the tree grew since the last one; returns the newest. */
  checkpoint(): Promise<CheckpointRecord>;
  /** The newest checkpoint as a note, with every cosignature the server holds. */
  latestNote(): Promise<{ size: number; note: string }>;
  /** A stored checkpoint of exactly this size, with its cosignatures. */
  noteOfSize(size: number): Promise<string | undefined>;
  /** Starts the once-a-second checkpointer. */
  start(): void;
  /** Stops the checkpointer after a final checkpoint. */
  stop(): Promise<void>;
}

/** Turns an event into the leaf the store keeps. */
export function toLogAppend(event: LogEvent): LogAppend {
  const data = encodeEvent(event);
  return { data, leafHash: leafHash(data), collaborationId: event.collaboration, type: event.type };
}

const SYNC_CHUNK = 50_000;

/**
 * The most witness cosignatures one checkpoint carries. Signed-note readers refuse notes with more
 * than 100 signature lines, and any party can name fresh identities in a proposal: without a cap,
 * enough cosignatures would make the served checkpoint unreadable for everyone.
 */
export const MAX_COSIGNATURES = 64;

export interface OpenTransparencyLogOptions {
  readonly store: Store;
  readonly key: LogKey;
  readonly now: () => Date;
  readonly checkpointIntervalMs?: number;
  readonly onError?: (error: unknown) => void;
}

/**
 * Rebuilds the tree from the store and checks it against the newest checkpoint. A log whose
 * leaves do not reproduce its own signed checkpoint (forked, truncated or edited) is refused.
 */
export async function openTransparencyLog(options: OpenTransparencyLogOptions): Promise<TransparencyLog> {
  const { store, key, now } = options;
  const signer: NoteSigner = ed25519NoteSigner(key.origin, key.secretKey);
  const verifier = ed25519NoteVerifier(key.origin, key.publicKey);
  const tree = new MerkleTree();

  let syncing: Promise<unknown> = Promise.resolve();
  const sync = (): Promise<void> => {
    const run = syncing.then(async () => {
      const size = await store.log.size();
      for (let from = tree.size; from < size; from += SYNC_CHUNK) {
        // Re-hash each entry: a leaf whose stored bytes were edited must not enter the tree.
        for (const entry of await store.log.entries(from, Math.min(size, from + SYNC_CHUNK))) {
          if (!Buffer.from(leafHash(entry.data)).equals(Buffer.from(entry.leafHash))) {
            throw new MalusError('store-failure', `log entry ${entry.index} does not hash to its leaf: the log was edited or forked`);
          }
          tree.append(entry.leafHash);
        }
      }
    });
    syncing = run.catch(() => undefined);
    return run;
  };

  await sync();
  const latest = await store.log.latestCheckpoint();
  if (latest !== undefined) {
    const opened = openCheckpoint(latest.note, verifier, key.origin);
    if (!opened.ok) throw new MalusError('store-failure', `the log's latest checkpoint does not verify: ${opened.reason}`);
    // Another process may have appended and checkpointed between the read of the leaves and that
    // of the checkpoint: the leaves are caught up once more before a short log counts as truncated.
    if (tree.size < latest.size) await sync();
    if (tree.size < latest.size) {
      throw new MalusError('store-failure', `the log holds ${tree.size} entries but its checkpoint says ${latest.size}: truncated`);
    }
    if (!Buffer.from(tree.root(latest.size)).equals(Buffer.from(opened.checkpoint.root))) {
      throw new MalusError('store-failure', `the log's entries do not reproduce its checkpoint at size ${latest.size}: forked or edited`);
    }
  }

  // Group commit: callers in the same tick share one transaction (and one fsync).
  let pending: { entries: LogAppend[]; resolve: (first: number) => void; reject: (e: unknown) => void }[] = [];
  let flushScheduled = false;
  const flush = async (): Promise<void> => {
    flushScheduled = false;
    const batch = pending;
    pending = [];
    try {
      const first = await store.log.append(batch.flatMap((b) => b.entries));
      let offset = first;
      for (const b of batch) {
        b.resolve(offset);
        offset += b.entries.length;
      }
    } catch (error) {
      for (const b of batch) b.reject(error);
    }
  };
  const append = async (events: readonly LogEvent[]): Promise<number[]> => {
    const entries = events.map(toLogAppend);
    const first = await new Promise<number>((resolve, reject) => {
      pending.push({ entries, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(() => void flush());
      }
    });
    return entries.map((_, i) => first + i);
  };

  // One checkpoint at a time in this process; another process on the same store may save the same
  // size first, which is fine: the root of a size is the same for everyone reading the same leaves.
  let checkpointing: Promise<unknown> = Promise.resolve();
  const checkpoint = (): Promise<CheckpointRecord> => {
    const run = checkpointing.then(async (): Promise<CheckpointRecord> => {
      await sync();
      const last = await store.log.latestCheckpoint();
      if (last !== undefined && last.size >= tree.size) return last;
      const root = tree.root();
      const record: CheckpointRecord = {
        size: tree.size,
        root,
        note: signCheckpoint({ origin: key.origin, size: tree.size, root, extensions: [] }, signer),
        createdAt: now().toISOString(),
      };
      try {
        await store.log.saveCheckpoint(record);
        return record;
      } catch (error) {
        if (!isMalusError(error, 'conflict')) throw error;
        return (await store.log.latestCheckpoint()) ?? record;
      }
    });
    checkpointing = run.catch(() => undefined);
    return run;
  };

  const withCosignatures = async (record: CheckpointRecord): Promise<string> => {
    const lines = (await store.log.cosignatures(record.size)).slice(0, MAX_COSIGNATURES).map((c) => c.line);
    return lines.length === 0 ? record.note : addCosignatures(record.note, lines);
  };

  let timer: NodeJS.Timeout | undefined;
  return {
    origin: key.origin,
    verifierKey: verifierKeyString(key.origin, key.publicKey),
    publicKey: key.publicKey,
    tree,
    append,
    sync,
    checkpoint,
    async latestNote() {
      const record = (await store.log.latestCheckpoint()) ?? (await checkpoint());
      return { size: record.size, note: await withCosignatures(record) };
    },
    async noteOfSize(size) {
      const record = await store.log.checkpointCovering(size);
      return record?.size === size ? withCosignatures(record) : undefined;
    },
    start() {
      if (timer !== undefined) return;
      timer = setInterval(() => {
        checkpoint().catch((error: unknown) => options.onError?.(error));
      }, options.checkpointIntervalMs ?? 1000);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      if (pending.length > 0) await flush();
      await checkpoint();
    },
  };
}
