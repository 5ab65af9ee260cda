// The batch work that dominates a PSI run, as one self-contained function. It runs in this thread
// or, unchanged, in worker threads (pool.ts builds the worker from `runKernel.toString()`, so the
// function must not touch anything outside its parameters: no imports, no module constants, no
// nested functions).
import type { Sodium } from './group.js';

/**
 * - `hash-mul`: input n x 64 uniform bytes; out[i] = param * map(input[i]) (the tail of hash-to-group, then a multiplication).
 * - `mul`: input n x 32 elements; out[i] = param * input[i].
 * - `base`: input n x 32 scalars; out[i] = input[i] * G.
 * - `chain`: input one 32-byte element s, param a 32-byte element d; out[i] = s + i * d for i < count.
 */
export type KernelOp = 'hash-mul' | 'mul' | 'base' | 'chain';

export interface KernelJob {
  readonly op: KernelOp;
  readonly param: Uint8Array;
  readonly input: Uint8Array;
  /** The number of outputs (the input's element count, or the chain length). */
  readonly count: number;
}

/** The n x 32 output, or the index of the first input libsodium refused (an invalid element, or a product that is the identity). */
export type KernelResult = { readonly output: Uint8Array } | { readonly failedAt: number };

export function runKernel(lib: Sodium, job: KernelJob): KernelResult {
  const output = new Uint8Array(job.count * 32);
  let i = 0;
  try {
    if (job.op === 'hash-mul') {
      for (; i < job.count; i++) {
        const point = lib.crypto_core_ristretto255_from_hash(job.input.subarray(i * 64, i * 64 + 64));
        output.set(lib.crypto_scalarmult_ristretto255(job.param, point), i * 32);
      }
    } else if (job.op === 'mul') {
      for (; i < job.count; i++) output.set(lib.crypto_scalarmult_ristretto255(job.param, job.input.subarray(i * 32, i * 32 + 32)), i * 32);
    } else if (job.op === 'base') {
      for (; i < job.count; i++) output.set(lib.crypto_scalarmult_ristretto255_base(job.input.subarray(i * 32, i * 32 + 32)), i * 32);
    } else {
      let point = job.input.subarray(0, 32);
      for (; i < job.count; i++) {
        if (i > 0) point = lib.crypto_core_ristretto255_add(point, job.param);
        output.set(point, i * 32);
      }
    }
  } catch {
    return { failedAt: i };
  }
  return { output };
}

/** Where kernel jobs run: this thread, or a worker pool (pool.ts). */
export interface KernelExecutor {
  /** How many jobs can run at once. */
  readonly threads: number;
  exec(job: KernelJob): Promise<KernelResult>;
}

export function inThread(lib: Sodium): KernelExecutor {
  return { threads: 1, exec: (job) => Promise.resolve(runKernel(lib, job)) };
}

/**
 * Runs an element-wise op over `count` elements in chunks, asking `input(start, n)` for each chunk's
 * input just before sending it, so this thread prepares the next chunk while the workers compute.
 */
export async function runChunked(
  executor: KernelExecutor,
  op: Exclude<KernelOp, 'chain'>,
  param: Uint8Array,
  count: number,
  input: (start: number, n: number) => Uint8Array,
): Promise<KernelResult> {
  // Several chunks per thread so a slow thread does not hold the batch up.
  const chunk = executor.threads === 1 ? Math.max(count, 1) : Math.max(256, Math.ceil(count / (executor.threads * 8)));
  const jobs: Promise<KernelResult>[] = [];
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    jobs.push(executor.exec({ op, param, input: input(start, n), count: n }));
  }
  const results = await Promise.all(jobs);
  const output = new Uint8Array(count * 32);
  for (const [k, result] of results.entries()) {
    if ('failedAt' in result) return { failedAt: k * chunk + result.failedAt };
    output.set(result.output, k * chunk * 32);
  }
  return { output };
}

const INPUT_BYTES: Record<Exclude<KernelOp, 'chain'>, number> = { 'hash-mul': 64, mul: 32, base: 32 };

/** runChunked over an input already in memory. */
export function runBatch(executor: KernelExecutor, op: Exclude<KernelOp, 'chain'>, param: Uint8Array, input: Uint8Array): Promise<KernelResult> {
  const width = INPUT_BYTES[op];
  const count = input.length / width;
  if (!Number.isInteger(count)) throw new RangeError(`a ${op} batch must be a multiple of ${width} bytes`);
  return runChunked(executor, op, param, count, (start, n) => input.subarray(start * width, (start + n) * width));
}
