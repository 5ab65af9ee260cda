import { Worker } from 'node:worker_threads';
import { MalusError } from '../errors/index.js';

// The SHA-256 of a ciphertext, computed on a second thread while this one decrypts it: on the
// enclave's two cores the hash the owner signed costs the load almost nothing. One worker serves
// every stream of the process, keeps one hash per stream, and is let go (unref) whenever no
// stream is open. Pieces are copied into 1 MiB slabs that travel to the worker and back
// (transferred, never cloned), so the caller keeps its buffers and a long stream allocates no new
// memory once the slabs are warm: fresh buffers at this rate would make V8 collect garbage every
// few tens of milliseconds. At most SLABS_IN_FLIGHT wait per stream before `update` asks the
// caller to wait.

const SLAB_BYTES = 1 << 20;
const SLABS_IN_FLIGHT = 32;
/** Slabs kept for the next stream once they come back; beyond this they are left to the collector. */
const SLABS_KEPT = 8;

const WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (message) => {
  const { id } = message;
  if (message.slab !== undefined) {
    let hash = hashes.get(id);
    if (hash === undefined) hashes.set(id, (hash = createHash('sha256')));
    hash.update(new Uint8Array(message.slab, 0, message.length));
    parentPort.postMessage({ id, slab: message.slab }, [message.slab]);
    return;
  }
  const hash = hashes.get(id) ?? createHash('sha256');
  hashes.delete(id);
  if (message.end === true) parentPort.postMessage({ id, digest: hash.digest('hex') });
});
`;

interface OpenStream {
  slabsOut: number;
  /** Resolves the caller waiting for the worker to catch up. */
  drained?: () => void;
  finished?: { resolve: (digest: string) => void; reject: (error: unknown) => void };
}

interface HashThread {
  readonly worker: Worker;
  readonly streams: Map<number, OpenStream>;
  readonly freeSlabs: ArrayBuffer[];
  nextId: number;
}

let thread: HashThread | undefined;

function startThread(): HashThread {
  // No inherited flags: the source is CommonJS whatever the parent was started with (--input-type, loaders).
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
  const started: HashThread = { worker, streams: new Map(), freeSlabs: [], nextId: 0 };
  const stop = (reason: string): void => {
    if (thread === started) thread = undefined;
    const error = new MalusError('internal', `the hashing thread stopped (${reason})`);
    for (const stream of started.streams.values()) {
      stream.finished?.reject(error);
      stream.drained?.();
    }
    started.streams.clear();
  };
  worker.on('message', (message: { id: number; slab?: ArrayBuffer; digest?: string }) => {
    if (message.slab !== undefined && started.freeSlabs.length < SLABS_KEPT) started.freeSlabs.push(message.slab);
    const stream = started.streams.get(message.id);
    if (stream === undefined) return;
    if (message.slab !== undefined) {
      stream.slabsOut -= 1;
      if (stream.slabsOut <= SLABS_IN_FLIGHT / 2 && stream.drained !== undefined) {
        stream.drained();
        stream.drained = undefined;
      }
    } else if (message.digest !== undefined) {
      close(started, message.id);
      stream.finished?.resolve(`sha256:${message.digest}`);
    }
  });
  worker.on('error', (error) => {
    stop(error.message);
  });
  worker.on('exit', (code) => {
    stop(`exit code ${code}`);
  });
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
  const stream: OpenStream = { slabsOut: 0 };
  owner.streams.set(id, stream);
  owner.worker.ref();
  let slab: { buffer: ArrayBuffer; bytes: Uint8Array } | undefined;
  let filled = 0;
  let ended = false;
  const unusable = (): MalusError | undefined => {
    if (ended) return new MalusError('internal', 'a background hash was used after its digest');
    if (!owner.streams.has(id)) return new MalusError('internal', 'the hashing thread stopped');
    return undefined;
  };
  const send = (): void => {
    if (slab === undefined || filled === 0) return;
    stream.slabsOut += 1;
    owner.worker.postMessage({ id, slab: slab.buffer, length: filled }, [slab.buffer]);
    slab = undefined;
    filled = 0;
  };
  return {
    update(piece) {
      const refused = unusable();
      if (refused !== undefined) throw refused;
      for (let offset = 0; offset < piece.byteLength; ) {
        if (slab === undefined) {
          const buffer = owner.freeSlabs.pop() ?? new ArrayBuffer(SLAB_BYTES);
          slab = { buffer, bytes: new Uint8Array(buffer) };
        }
        const take = Math.min(SLAB_BYTES - filled, piece.byteLength - offset);
        slab.bytes.set(piece.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === SLAB_BYTES) send();
      }
      if (stream.slabsOut <= SLABS_IN_FLIGHT) return undefined;
      return new Promise((resolve) => (stream.drained = resolve));
    },
    digest() {
      const refused = unusable();
      if (refused !== undefined) return Promise.reject(refused);
      ended = true;
      send();
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
