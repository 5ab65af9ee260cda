import { Worker } from 'node:worker_threads';
import { MalusError } from '../errors/index.js';

// The SHA-256 of a ciphertext, computed on a second thread while this one decrypts it: on the
// enclave's two cores the hash the owner signed costs the load almost nothing. One worker serves
// every stream of the process, keeps one hash per stream, and is let go (unref) whenever no
// stream is open. Each piece is copied before it is handed over, so the caller keeps its buffers;
// at most IN_FLIGHT_BYTES wait in the worker's queue before `update` asks the caller to wait.

const IN_FLIGHT_BYTES = 32 << 20;

const WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (message) => {
  const { id } = message;
  if (message.piece !== undefined) {
    let hash = hashes.get(id);
    if (hash === undefined) hashes.set(id, (hash = createHash('sha256')));
    hash.update(new Uint8Array(message.piece));
    parentPort.postMessage({ id, hashed: message.piece.byteLength });
    return;
  }
  const hash = hashes.get(id) ?? createHash('sha256');
  hashes.delete(id);
  if (message.end === true) parentPort.postMessage({ id, digest: hash.digest('hex') });
});
`;

interface OpenStream {
  inFlight: number;
  /** Resolves the caller waiting for the queue to drain below IN_FLIGHT_BYTES. */
  drained?: () => void;
  finished?: { resolve: (digest: string) => void; reject: (error: unknown) => void };
}

interface HashThread {
  readonly worker: Worker;
  readonly streams: Map<number, OpenStream>;
  nextId: number;
}

let thread: HashThread | undefined;

function startThread(): HashThread {
  // No inherited flags: the source is CommonJS whatever the parent was started with (--input-type, loaders).
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
  const started: HashThread = { worker, streams: new Map(), nextId: 0 };
  const stop = (reason: string): void => {
    if (thread === started) thread = undefined;
    const error = new MalusError('internal', `the hashing thread stopped (${reason})`);
    for (const stream of started.streams.values()) {
      stream.finished?.reject(error);
      stream.drained?.();
    }
    started.streams.clear();
  };
  worker.on('message', (message: { id: number; hashed?: number; digest?: string }) => {
    const stream = started.streams.get(message.id);
    if (stream === undefined) return;
    if (message.hashed !== undefined) {
      stream.inFlight -= message.hashed;
      if (stream.inFlight <= IN_FLIGHT_BYTES / 2 && stream.drained !== undefined) {
        stream.drained();
        stream.drained = undefined;
      }
    } else if (message.digest !== undefined) {
      close(started, message.id);
      stream.finished?.resolve(`sha256:${message.digest}`);
    }
  });
  worker.on('error', (error) => { stop(error.message); });
  worker.on('exit', (code) => { stop(`exit code ${code}`); });
  worker.unref();
  return started;
}

function close(owner: HashThread, id: number): void {
  owner.streams.delete(id);
  // An idle worker must not keep the process alive; a busy one must, or a load awaiting its digest could see the process end.
  if (owner.streams.size === 0) owner.worker.unref();
}

export interface BackgroundHash {
  /** Hands a piece to the hashing thread; returns a promise when the caller should wait for it to catch up. */
  update(piece: Uint8Array): Promise<void> | undefined;
  /** `sha256:<hex>` of every piece handed over. */
  digest(): Promise<string>;
  /** Drops the hash: for a stream that failed before its end. */
  abandon(): void;
}

export function backgroundSha256(): BackgroundHash {
  const owner = (thread ??= startThread());
  const id = owner.nextId++;
  const stream: OpenStream = { inFlight: 0 };
  owner.streams.set(id, stream);
  owner.worker.ref();
  let ended = false;
  const end = (): void => {
    if (ended) throw new MalusError('internal', 'a background hash was used after its digest');
    ended = true;
  };
  return {
    update(piece) {
      if (ended) throw new MalusError('internal', 'a background hash was used after its digest');
      if (!owner.streams.has(id)) throw new MalusError('internal', 'the hashing thread stopped');
      const copy = new Uint8Array(piece.byteLength);
      copy.set(piece);
      stream.inFlight += copy.byteLength;
      owner.worker.postMessage({ id, piece: copy.buffer }, [copy.buffer]);
      if (stream.inFlight <= IN_FLIGHT_BYTES) return undefined;
      return new Promise((resolve) => (stream.drained = resolve));
    },
    digest() {
      end();
      if (!owner.streams.has(id)) return Promise.reject(new MalusError('internal', 'the hashing thread stopped'));
      return new Promise((resolve, reject) => {
        stream.finished = { resolve, reject };
        owner.worker.postMessage({ id, end: true });
      });
    },
    abandon() {
      if (ended || !owner.streams.has(id)) return;
      ended = true;
      owner.worker.postMessage({ id, end: false });
      close(owner, id);
    },
  };
}

/** Ends the hashing thread; streams still open fail with `internal`. The next stream starts a new one. */
export async function stopBackgroundHashing(): Promise<void> {
  const running = thread;
  if (running === undefined) return;
  await running.worker.terminate();
}
