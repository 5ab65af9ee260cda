// A uniform random permutation (Fisher-Yates over libsodium's unbiased randombytes_uniform). The
// sender shuffles its reply in the cardinality and sum modes so the receiver cannot tell which of
// its elements matched, and shuffles its own set in every mode so its input order does not leak.
import type { PsiGroup } from './group.js';

export function randomPermutation(group: PsiGroup, n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = group.sodium.randombytes_uniform(i + 1);
    const t = order[i] ?? 0;
    order[i] = order[j] ?? 0;
    order[j] = t;
  }
  return order;
}

/** Row k of the output is row order[k] of `rows` (each `width` bytes). */
export function permuteRows(rows: Uint8Array, width: number, order: Uint32Array): Uint8Array {
  const out = new Uint8Array(rows.length);
  for (let k = 0; k < order.length; k++) {
    const from = (order[k] ?? 0) * width;
    out.set(rows.subarray(from, from + width), k * width);
  }
  return out;
}
