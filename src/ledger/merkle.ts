import { createHash } from 'node:crypto';

// RFC 9162 §2.1: Merkle tree hashing, and verification of inclusion and consistency proofs.
// Verification follows the RFC's iterative algorithms (§2.1.3.2 and §2.1.4.2) and rejects
// malformed input with a reason rather than a boolean.

export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export function leafHash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(data).digest());
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest());
}

/** MTH({}): the hash of the empty string. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(createHash('sha256').digest());

/** The largest power of two strictly smaller than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 9162 MTH over leaf hashes, by the definition. A reference for tests and audits. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return EMPTY_ROOT;
  if (hashes.length === 1) return hashes[0] as Uint8Array;
  const k = splitPoint(hashes.length);
  return nodeHash(rootFromLeafHashes(hashes.slice(0, k)), rootFromLeafHashes(hashes.slice(k)));
}

export type ProofFailure =
  | 'bad-hash-length'
  | 'bad-number'
  | 'index-out-of-range'
  | 'size-out-of-range'
  | 'size1-zero'
  | 'proof-too-long'
  | 'proof-too-short'
  | 'bad-proof-length-for-equal-sizes'
  | 'root-mismatch';

export type ProofResult = { ok: true } | { ok: false; reason: ProofFailure; detail: string };

const fail = (reason: ProofFailure, detail: string): ProofResult => ({ ok: false, reason, detail });

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function badHash(hashes: readonly Uint8Array[]): boolean {
  return hashes.some((h) => h.length !== HASH_SIZE);
}

/** RFC 9162 §2.1.3.2. */
export function verifyInclusion(p: {
  index: number;
  size: number;
  leafHash: Uint8Array;
  proof: readonly Uint8Array[];
  root: Uint8Array;
}): ProofResult {
  if (!isCount(p.index) || !isCount(p.size)) return fail('bad-number', 'index and size must be non-negative integers');
  if (p.index >= p.size) return fail('index-out-of-range', `index ${p.index} is not below size ${p.size}`);
  if (badHash([p.leafHash, p.root, ...p.proof])) return fail('bad-hash-length', `every hash must be ${HASH_SIZE} bytes`);
  let fn = p.index;
  let sn = p.size - 1;
  let r = p.leafHash;
  for (const [i, sibling] of p.proof.entries()) {
    if (sn === 0) return fail('proof-too-long', `the proof has more than the ${i} hashes this position needs`);
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(sibling, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail('proof-too-short', `the proof has ${p.proof.length} hashes; more are needed`);
  if (!equal(r, p.root)) return fail('root-mismatch', 'the proof does not lead to the given root');
  return { ok: true };
}

/** RFC 9162 §2.1.4.2. A consistency proof from size 0 is refused: it proves nothing. */
export function verifyConsistency(p: {
  size1: number;
  size2: number;
  root1: Uint8Array;
  root2: Uint8Array;
  proof: readonly Uint8Array[];
}): ProofResult {
  const { size1, size2, proof } = p;
  if (!isCount(size1) || !isCount(size2)) return fail('bad-number', 'sizes must be non-negative integers');
  if (size1 > size2) return fail('size-out-of-range', `size1 ${size1} is larger than size2 ${size2}`);
  if (badHash([p.root1, p.root2, ...proof])) return fail('bad-hash-length', `every hash must be ${HASH_SIZE} bytes`);
  if (size1 === 0) return fail('size1-zero', 'a consistency proof from an empty tree proves nothing');
  if (size1 === size2) {
    if (proof.length !== 0) return fail('bad-proof-length-for-equal-sizes', 'equal sizes need an empty proof');
    return equal(p.root1, p.root2) ? { ok: true } : fail('root-mismatch', 'equal sizes with different roots');
  }
  if (proof.length === 0) return fail('proof-too-short', 'a non-empty proof is needed');
  // When size1 is a power of two the first subtree is root1 itself and is not in the proof.
  const path = (size1 & (size1 - 1)) === 0 ? [p.root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const [first, ...rest] = path as [Uint8Array, ...Uint8Array[]];
  let fr = first;
  let sr = first;
  for (const [i, c] of rest.entries()) {
    if (sn === 0) return fail('proof-too-long', `the proof has more than the ${i + 1} hashes these sizes need`);
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail('proof-too-short', `the proof has ${proof.length} hashes; more are needed`);
  if (!equal(fr, p.root1)) return fail('root-mismatch', 'the proof does not lead to root1');
  if (!equal(sr, p.root2)) return fail('root-mismatch', 'the proof does not lead to root2');
  return { ok: true };
}
