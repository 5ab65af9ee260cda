import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '../../src/ledger/index.js';

// transparency-dev/merkle test data (../shared/vectors/tlog): every case must give its stated result.

const ROOT = '../shared/vectors/tlog';

function files(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]))
    .sort();
}

const b64 = (text: string | null): Uint8Array => new Uint8Array(Buffer.from(text ?? '', 'base64'));

interface InclusionCase {
  leafIdx: number;
  treeSize: number;
  root: string | null;
  leafHash: string | null;
  proof: string[] | null;
  wantErr: boolean;
}

interface ConsistencyCase {
  size1: number;
  size2: number;
  root1: string | null;
  root2: string | null;
  proof: string[] | null;
  wantErr: boolean;
}

const inclusion = files(join(ROOT, 'inclusion'));
const consistency = files(join(ROOT, 'consistency'));

describe('RFC 9162 proof vectors', () => {
  it('finds all of them', () => {
    expect(inclusion.length).toBeGreaterThanOrEqual(80);
    expect(consistency.length).toBeGreaterThanOrEqual(80);
  });

  it.each(inclusion.map((f) => [relative(ROOT, f), f]))('inclusion %s', (_name, file) => {
    const c = JSON.parse(readFileSync(file, 'utf8')) as InclusionCase;
    const result = verifyInclusion({
      index: c.leafIdx,
      size: c.treeSize,
      leafHash: b64(c.leafHash),
      root: b64(c.root),
      proof: (c.proof ?? []).map(b64),
    });
    expect(result.ok).toBe(!c.wantErr);
  });

  it.each(consistency.map((f) => [relative(ROOT, f), f]))('consistency %s', (_name, file) => {
    const c = JSON.parse(readFileSync(file, 'utf8')) as ConsistencyCase;
    const result = verifyConsistency({
      size1: c.size1,
      size2: c.size2,
      root1: b64(c.root1),
      root2: b64(c.root2),
      proof: (c.proof ?? []).map(b64),
    });
    expect(result.ok).toBe(!c.wantErr);
  });

  it('the reference tree of eight leaves has the published root', () => {
    const leaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
    const root = rootFromLeafHashes(leaves.map((hex) => leafHash(Buffer.from(hex, 'hex'))));
    expect(Buffer.from(root).toString('hex')).toBe('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
  });
});
