// Worker threads for the kernel: a PSI run is embarrassingly parallel (every element is hashed and
// multiplied on its own), so a machine with two cores runs it about twice as fast. The worker is
// built from `runKernel.toString()` and loads the CommonJS build of the same libsodium package, so
// the code a worker runs is exactly the code this thread runs (test/psi/pool.test.ts checks it).
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MalusError } from '../errors/index.js';
import { runKernel, type KernelExecutor, type KernelJob, type KernelResult } from './kernel.js';

export interface PsiPool extends KernelExecutor {
  /** Ends the workers; jobs still running fail. */
  close(): Promise<void>;
}

interface Pending {
  readonly id: number;
  readonly job: KernelJob;
  readonly resolve: (result: KernelResult) => void;
  readonly reject: (error: unknown) => void;
}

interface Slot {
  readonly worker: Worker;
  busy: Pending | undefined;
}

const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const lib = require(workerData.sodium);
const runKernel = ${runKernel.toString()};
lib.ready.then(() => {
  parentPort.on('message', (job) => {
    const result = runKernel(lib, job);
    if ('output' in result) parentPort.postMessage({ id: job.id, output: result.output }, [result.output.buffer]);
    else parentPort.postMessage({ id: job.id, failedAt: result.failedAt });
  });
  parentPort.postMessage({ ready: true });
});
`;

/** Starts `threads` workers (by default one per core) and waits until each has loaded libsodium. */
export async function createPsiPool(threads = availableParallelism()): Promise<PsiPool> {
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new MalusError('invalid-input', `a PSI pool needs 1 to 64 threads (not ${threads})`);
  const sodiumPath = createRequire(import.meta.url).resolve('libsodium-wrappers-sumo');
  const queue: Pending[] = [];
  let nextId = 0;
  let failure: MalusError | undefined;

  const slots: Slot[] = Array.from({ length: threads }, () => ({ worker: new Worker(WORKER_SOURCE, { eval: true, workerData: { sodium: sodiumPath } }), busy: undefined }));

  const fail = (error: MalusError): void => {
    failure ??= error;
    for (const slot of slots) {
      slot.busy?.reject(failure);
      slot.busy = undefined;
    }
    for (const pending of queue.splice(0)) pending.reject(failure);
  };

  const pump = (): void => {
    for (const slot of slots) {
      if (slot.busy !== undefined) continue;
      const next = queue.shift();
      if (next === undefined) {
        // An idle worker must not keep the process alive.
        slot.worker.unref();
        continue;
      }
      slot.busy = next;
      slot.worker.ref();
      const { op, param, input, count } = next.job;
      slot.worker.postMessage({ id: next.id, op, param, input, count }, [input.buffer as ArrayBuffer]);
    }
  };

  await Promise.all(
    slots.map(
      (slot) =>
        new Promise<void>((resolve, reject) => {
          slot.worker.once('error', reject);
          slot.worker.once('message', () => {
            slot.worker.off('error', reject);
            resolve();
          });
        }),
    ),
  ).catch(async (error: unknown) => {
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
    throw new MalusError('internal', 'a PSI worker did not start', { cause: error });
  });

  for (const slot of slots) {
    slot.worker.on('message', (message: { id: number; output?: Uint8Array; failedAt?: number }) => {
      const pending = slot.busy;
      if (pending?.id !== message.id) return;
      slot.busy = undefined;
      pending.resolve(message.output === undefined ? { failedAt: message.failedAt ?? 0 } : { output: message.output });
      pump();
    });
    slot.worker.on('error', (error) => {
      fail(new MalusError('internal', 'a PSI worker failed', { cause: error }));
    });
    slot.worker.on('exit', () => {
      fail(new MalusError('internal', 'a PSI worker exited'));
    });
    slot.worker.unref();
  }

  return {
    threads,
    exec(job: KernelJob): Promise<KernelResult> {
      if (failure !== undefined) return Promise.reject(failure);
      // The input is transferred to the worker, so it goes as a copy: the caller keeps its bytes.
      const input = job.input.slice();
      return new Promise<KernelResult>((resolve, reject) => {
        queue.push({ id: nextId++, job: { ...job, input }, resolve, reject });
        pump();
      });
    },
    async close(): Promise<void> {
      fail(new MalusError('internal', 'the PSI pool is closed'));
      await Promise.all(slots.map((slot) => slot.worker.terminate()));
    },
  };
}
