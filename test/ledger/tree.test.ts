import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT,
  MerkleTree,
  leafHash,
  nodeHash,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../../src/ledger/index.js';

const hashes = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('MerkleTree', () => {
  it('agrees with the definition for every prefix, and its proofs verify, up to 70 leaves', () => {
    const leaves = hashes(70);
    const tree = new MerkleTree();
    tree.appendMany(leaves);
    for (let size = 1; size <= 70; size++) {
      const root = rootFromLeafHashes(leaves.slice(0, size));
      expect(hex(tree.root(size))).toBe(hex(root));
      for (let index = 0; index < size; index++) {
        const proof = tree.inclusionProof(index, size);
        expect(verifyInclusion({ index, size, leafHash: leaves[index]!, proof, root }).ok).toBe(true);
      }
      for (let size1 = 1; size1 <= size; size1++) {
        const proof = tree.consistencyProof(size1, size);
        const root1 = rootFromLeafHashes(leaves.slice(0, size1));
        expect(verifyConsistency({ size1, size2: size, root1, root2: root, proof }).ok).toBe(true);
      }
    }
  });

  it('has the empty root at size 0 and refuses out-of-range requests', () => {
    const tree = new MerkleTree();
    expect(hex(tree.root())).toBe(hex(EMPTY_ROOT));
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    tree.appendMany(hashes(5));
    expect(() => tree.root(6)).toThrow(RangeError);
    expect(() => tree.inclusionProof(5, 5)).toThrow(RangeError);
    expect(() => tree.consistencyProof(0, 5)).toThrow(RangeError);
    expect(() => tree.consistencyProof(6, 5)).toThrow(RangeError);
    expect(() => tree.append(new Uint8Array(31))).toThrow(RangeError);
  });

  it('serves tiles of complete subtrees: level 0 is leaf hashes, level 1 the 256-leaf roots', () => {
    const leaves = hashes(256 * 2 + 3);
    const tree = new MerkleTree();
    tree.appendMany(leaves);
    expect(hex(tree.tileHashes(0, 2, 3))).toBe(leaves.slice(512, 515).map(hex).join(''));
    expect(hex(tree.tileHashes(1, 0, 2))).toBe(
      [rootFromLeafHashes(leaves.slice(0, 256)), rootFromLeafHashes(leaves.slice(256, 512))].map(hex).join(''),
    );
    expect(() => tree.tileHashes(0, 2, 4)).toThrow(RangeError);
    expect(() => tree.tileHashes(1, 0, 3)).toThrow(RangeError);
  });

  it('rejects proofs with real tampering', () => {
    const leaves = hashes(13);
    const tree = new MerkleTree();
    tree.appendMany(leaves);
    const root = tree.root();
    const proof = tree.inclusionProof(6);
    const flipped = proof.map((h, i) => (i === 1 ? Uint8Array.from(h, (b, j) => (j === 0 ? b ^ 1 : b)) : h));
    expect(verifyInclusion({ index: 6, size: 13, leafHash: leaves[6]!, proof: flipped, root })).toMatchObject({ ok: false, reason: 'root-mismatch' });
    expect(verifyInclusion({ index: 6, size: 13, leafHash: leaves[6]!, proof: proof.slice(1), root })).toMatchObject({ ok: false });
    expect(verifyInclusion({ index: 6, size: 13, leafHash: leaves[6]!, proof: [...proof, root], root })).toMatchObject({ ok: false, reason: 'proof-too-long' });
    expect(verifyInclusion({ index: 13, size: 13, leafHash: leaves[6]!, proof, root })).toMatchObject({ ok: false, reason: 'index-out-of-range' });
    expect(verifyInclusion({ index: 6, size: 13, leafHash: new Uint8Array(31), proof, root })).toMatchObject({ ok: false, reason: 'bad-hash-length' });
    expect(verifyConsistency({ size1: 0, size2: 13, root1: EMPTY_ROOT, root2: root, proof: [] })).toMatchObject({ ok: false, reason: 'size1-zero' });
    expect(verifyConsistency({ size1: 13, size2: 13, root1: root, root2: root, proof: [root] })).toMatchObject({
      ok: false,
      reason: 'bad-proof-length-for-equal-sizes',
    });
    expect(verifyConsistency({ size1: 14, size2: 13, root1: root, root2: root, proof: [] })).toMatchObject({ ok: false, reason: 'size-out-of-range' });
  });

  it('hashes leaves and nodes with the RFC 9162 prefixes', () => {
    const a = leafHash(Buffer.from('a'));
    expect(hex(a)).toBe('022a6979e6dab7aa5ae4c3e5e45f7e977112a7e63593820dbec1ec738a24f93c');
    expect(hex(nodeHash(a, a))).toBe(hex(rootFromLeafHashes([a, a])));
  });
});
