// The bounded discrete logarithm that ends exponential ElGamal: v from V = v G with 0 <= v < 2^bits,
// by baby-step giant-step. The baby steps j G (j < m = 2^ceil(bits/2)) are computed once per process
// and kept; each solve then walks at most 2^bits / m giant steps V - i m G. Every step is one
// libsodium addition (about 25 us in WebAssembly), so 32 bits cost about 3 s on one core and 40 bits
// about 50 s; the work splits over the executor's threads.
import { MalusError } from '../errors/index.js';
import type { PsiGroup } from './group.js';
import type { KernelExecutor, KernelResult } from './kernel.js';

export const MAX_DLOG_BITS = 40;

const tables = new Map<number, Map<string, number>>();

const key = (bytes: Uint8Array, at: number): string => Buffer.from(bytes.buffer, bytes.byteOffset + at, 32).toString('latin1');

/** k G for a (possibly zero or negative) integer k, |k| < 2^252. */
function multipleOfBase(group: PsiGroup, k: bigint): Uint8Array {
  if (k === 0n) return group.identity;
  const scalar = group.scalarFromInteger(k < 0n ? -k : k);
  return group.mulBase(k < 0n ? group.negateScalar(scalar) : scalar);
}

function unwrap(result: KernelResult): Uint8Array {
  if ('failedAt' in result) throw new MalusError('internal', 'a discrete-logarithm step failed');
  return result.output;
}

/** start + i step for i < count, split over the executor's threads. */
async function chain(group: PsiGroup, executor: KernelExecutor, start: Uint8Array, step: Uint8Array, stepMultiple: bigint, count: number): Promise<Uint8Array> {
  const parts = Math.min(executor.threads, Math.max(1, Math.floor(count / 1024)));
  const size = Math.ceil(count / parts);
  const jobs: Promise<KernelResult>[] = [];
  for (let p = 0; p * size < count; p++) {
    const offset = p * size;
    const first = offset === 0 ? start : group.add(start, multipleOfBase(group, BigInt(offset) * stepMultiple));
    jobs.push(executor.exec({ op: 'chain', param: step, input: first, count: Math.min(size, count - offset) }));
  }
  const out = new Uint8Array(count * 32);
  let at = 0;
  for (const result of await Promise.all(jobs)) {
    const part = unwrap(result);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function babySteps(group: PsiGroup, executor: KernelExecutor, half: number): Promise<Map<string, number>> {
  const cached = tables.get(half);
  if (cached !== undefined) return cached;
  const m = 2 ** half;
  const points = await chain(group, executor, group.identity, group.mulBase(group.scalarFromInteger(1n)), 1n, m);
  const table = new Map<string, number>();
  for (let j = 0; j < m; j++) table.set(key(points, j * 32), j);
  tables.set(half, table);
  return table;
}

/** v with V = v G and 0 <= v < 2^bits, or undefined when there is none. */
export async function boundedDlog(group: PsiGroup, executor: KernelExecutor, target: Uint8Array, bits: number): Promise<bigint | undefined> {
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_DLOG_BITS) throw new MalusError('invalid-input', `a bounded discrete logarithm takes 1 to ${MAX_DLOG_BITS} bits (not ${bits})`);
  if (!group.isCanonical(target)) return undefined;
  const half = Math.ceil(bits / 2);
  const m = 2 ** half;
  const table = await babySteps(group, executor, half);
  const giants = Math.ceil(2 ** bits / m);
  const step = multipleOfBase(group, -BigInt(m));
  // Rounds of giant steps that grow, so a small sum stops early.
  let round = 256 * executor.threads;
  for (let base = 0; base < giants; base += round, round = Math.min(round * 2, 8192 * executor.threads)) {
    const count = Math.min(round, giants - base);
    const start = base === 0 ? target : group.add(target, multipleOfBase(group, -BigInt(base) * BigInt(m)));
    const points = await chain(group, executor, start, step, -BigInt(m), count);
    for (let i = 0; i < count; i++) {
      const j = table.get(key(points, i * 32));
      if (j !== undefined) {
        const value = BigInt(base + i) * BigInt(m) + BigInt(j);
        return value < 2n ** BigInt(bits) ? value : undefined;
      }
    }
  }
  return undefined;
}
