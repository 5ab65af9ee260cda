import { HASH_SIZE, EMPTY_ROOT, nodeHash } from './merkle.js';

// An append-only Merkle tree in memory, built for a million leaves and more. Each level keeps the
// hashes of its complete subtrees in one growable buffer (level 0 = leaf hashes), so any complete
// subtree's hash is a slice, and roots and proofs at any past size cost O(log n) hashes.

class HashLevel {
  private buffer = Buffer.alloc(HASH_SIZE * 1024);
  length = 0;

  push(hash: Uint8Array): void {
    if ((this.length + 1) * HASH_SIZE > this.buffer.length) {
      const grown = Buffer.alloc(this.buffer.length * 2);
      this.buffer.copy(grown, 0, 0, this.length * HASH_SIZE);
      this.buffer = grown;
    }
    this.buffer.set(hash, this.length * HASH_SIZE);
    this.length += 1;
  }

  get(index: number): Uint8Array {
    return new Uint8Array(this.buffer.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE));
  }

  slice(from: number, count: number): Uint8Array {
    return new Uint8Array(this.buffer.subarray(from * HASH_SIZE, (from + count) * HASH_SIZE));
  }
}

function checkCount(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer`);
}

export class MerkleTree {
  private readonly levels: HashLevel[] = [new HashLevel()];

  get size(): number {
    return this.levels[0]?.length ?? 0;
  }

  append(leafHash: Uint8Array): number {
    if (leafHash.length !== HASH_SIZE) throw new RangeError(`a leaf hash must be ${HASH_SIZE} bytes`);
    const index = this.size;
    (this.levels[0] as HashLevel).push(leafHash);
    // Complete every parent this leaf finishes: node i at level l+1 covers nodes 2i and 2i+1.
    let level = 0;
    let position = index;
    while (position % 2 === 1) {
      const current = this.levels[level] as HashLevel;
      const parent = nodeHash(current.get(position - 1), current.get(position));
      level += 1;
      if (this.levels[level] === undefined) this.levels.push(new HashLevel());
      (this.levels[level] as HashLevel).push(parent);
      position = Math.floor(position / 2);
    }
    return index;
  }

  appendMany(leafHashes: readonly Uint8Array[]): void {
    for (const hash of leafHashes) this.append(hash);
  }

  leafHash(index: number): Uint8Array {
    this.checkIndex(index, this.size);
    return (this.levels[0] as HashLevel).get(index);
  }

  /** The root at any size up to the current one (EMPTY_ROOT for 0). */
  root(size: number = this.size): Uint8Array {
    this.checkSize(size);
    return size === 0 ? EMPTY_ROOT : this.rangeHash(0, size);
  }

  /** RFC 9162 §2.1.3.1 PATH(m, D[n]): sibling hashes from the leaf up. */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.checkSize(size);
    this.checkIndex(index, size);
    const proof: Uint8Array[] = [];
    this.path(index, 0, size, proof);
    return proof;
  }

  /** RFC 9162 §2.1.4.1 PROOF(m, D[n]) for 1 <= size1 <= size2. */
  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    this.checkSize(size2);
    checkCount(size1, 'size1');
    if (size1 < 1 || size1 > size2) throw new RangeError(`size1 must be between 1 and ${size2}`);
    const proof: Uint8Array[] = [];
    this.subproof(size1, 0, size2, true, proof);
    return proof;
  }

  /** A tlog-tiles tile: `width` hashes at tree height 8*level, starting at node index*256. */
  tileHashes(level: number, index: number, width: number): Uint8Array {
    checkCount(level, 'level');
    checkCount(index, 'index');
    if (!Number.isInteger(width) || width < 1 || width > 256) throw new RangeError('width must be 1..256');
    const height = level * 8;
    const stored = this.levels[height];
    const first = index * 256;
    if (stored === undefined || first + width > stored.length) throw new RangeError('tile is beyond the tree');
    return stored.slice(first, width);
  }

  /** MTH of leaves [start, end): complete aligned subtrees come from storage, the rest is folded. */
  private rangeHash(start: number, end: number): Uint8Array {
    const n = end - start;
    if ((n & (n - 1)) === 0 && start % n === 0) {
      const level = Math.log2(n);
      const stored = this.levels[level];
      if (stored !== undefined && start / n < stored.length) return stored.get(start / n);
    }
    let k = 1;
    while (k * 2 < n) k *= 2;
    return nodeHash(this.rangeHash(start, start + k), this.rangeHash(start + k, end));
  }

  private path(m: number, start: number, end: number, out: Uint8Array[]): void {
    const n = end - start;
    if (n <= 1) return;
    let k = 1;
    while (k * 2 < n) k *= 2;
    if (m < k) {
      this.path(m, start, start + k, out);
      out.push(this.rangeHash(start + k, end));
    } else {
      this.path(m - k, start + k, end, out);
      out.push(this.rangeHash(start, start + k));
    }
  }

  private subproof(m: number, start: number, end: number, complete: boolean, out: Uint8Array[]): void {
    const n = end - start;
    if (m === n) {
      if (!complete) out.push(this.rangeHash(start, end));
      return;
    }
    let k = 1;
    while (k * 2 < n) k *= 2;
    if (m <= k) {
      this.subproof(m, start, start + k, complete, out);
      out.push(this.rangeHash(start + k, end));
    } else {
      this.subproof(m - k, start + k, end, false, out);
      out.push(this.rangeHash(start, start + k));
    }
  }

  private checkSize(size: number): void {
    checkCount(size, 'size');
    if (size > this.size) throw new RangeError(`size ${size} is beyond the tree's ${this.size} leaves`);
  }

  private checkIndex(index: number, size: number): void {
    checkCount(index, 'index');
    if (index >= size) throw new RangeError(`index ${index} is not below size ${size}`);
  }
}
