import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import { MASTER_KEY_FILE, aesKeyWrapper, loadOrCreateMasterKey, type KeyWrapContext } from '../../src/keyrelease/index.js';

// Data keys at rest: AES-256-GCM under the master key, the AAD naming the row the key belongs to,
// and the master key file in the data directory, owner-only.

const CONTEXT: KeyWrapContext = { collaborationId: 'campaign-1', datasetId: 'pub-impressions-1', owner: '0123456789abcdef0123' };

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

describe('aesKeyWrapper', () => {
  const wrapper = aesKeyWrapper(randomBytes(32));
  const dek = new Uint8Array(randomBytes(32));

  it('unwraps what it wrapped, under the same context', async () => {
    const wrapped = await wrapper.wrap(dek, CONTEXT);
    // Version byte, 12-byte IV, the 32-byte key, 16-byte tag; never the key itself.
    expect(wrapped).toHaveLength(1 + 12 + 32 + 16);
    expect(Buffer.from(wrapped).includes(Buffer.from(dek))).toBe(false);
    expect(await wrapper.unwrap(wrapped, CONTEXT)).toEqual(dek);
  });

  it('wraps the same key differently each time (a fresh IV)', async () => {
    const [a, b] = await Promise.all([wrapper.wrap(dek, CONTEXT), wrapper.wrap(dek, CONTEXT)]);
    expect(a).not.toEqual(b);
  });

  it('refuses a flipped byte anywhere: version, IV, body or tag', async () => {
    const wrapped = await wrapper.wrap(dek, CONTEXT);
    for (const offset of [0, 1, 12, 13, 13 + 31, wrapped.length - 1]) {
      expect(await wrapper.unwrap(flip(wrapped, offset), CONTEXT), `offset ${offset}`).toBeUndefined();
    }
  });

  it('refuses another dataset, collaboration or owner', async () => {
    const wrapped = await wrapper.wrap(dek, CONTEXT);
    for (const other of [{ datasetId: 'pub-impressions-2' }, { collaborationId: 'campaign-2' }, { owner: 'fedcba9876543210fedc' }]) {
      expect(await wrapper.unwrap(wrapped, { ...CONTEXT, ...other }), JSON.stringify(other)).toBeUndefined();
    }
  });

  it('keeps the context parts apart: moving a character between fields does not unwrap', async () => {
    const wrapped = await wrapper.wrap(dek, { collaborationId: 'ab', datasetId: 'cd', owner: 'ef' });
    expect(await wrapper.unwrap(wrapped, { collaborationId: 'a', datasetId: 'bcd', owner: 'ef' })).toBeUndefined();
  });

  it('refuses another master key', async () => {
    const wrapped = await wrapper.wrap(dek, CONTEXT);
    expect(await aesKeyWrapper(randomBytes(32)).unwrap(wrapped, CONTEXT)).toBeUndefined();
  });

  it('refuses truncated and empty input', async () => {
    const wrapped = await wrapper.wrap(dek, CONTEXT);
    for (const length of [0, 1, 13, 1 + 12 + 16 - 1, 1 + 12 + 16, wrapped.length - 1]) {
      expect(await wrapper.unwrap(wrapped.subarray(0, length), CONTEXT), `length ${length}`).toBeUndefined();
    }
  });

  it('refuses a master key that is not 32 bytes', () => {
    for (const length of [0, 16, 31, 33]) expect(() => aesKeyWrapper(new Uint8Array(length))).toThrow(RangeError);
  });
});

describe('loadOrCreateMasterKey', () => {
  const dirs: string[] = [];
  const freshDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'malus-master-key-'));
    dirs.push(dir);
    return dir;
  };

  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function codeOf(run: () => unknown): string {
    try {
      run();
    } catch (error) {
      if (isMalusError(error)) return error.code;
      throw error;
    }
    return 'no error';
  }

  it('creates a 32-byte file readable by its owner only, and reuses it', () => {
    const dir = freshDir();
    const key = loadOrCreateMasterKey(dir);
    const path = join(dir, MASTER_KEY_FILE);
    expect(key).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(new Uint8Array(readFileSync(path))).toEqual(key);
    expect(loadOrCreateMasterKey(dir)).toEqual(key);
  });

  it('gives every data directory its own key', () => {
    expect(loadOrCreateMasterKey(freshDir())).not.toEqual(loadOrCreateMasterKey(freshDir()));
  });

  it('wraps under one load and unwraps under the next', async () => {
    const dir = freshDir();
    const dek = new Uint8Array(randomBytes(32));
    const wrapped = await aesKeyWrapper(loadOrCreateMasterKey(dir)).wrap(dek, CONTEXT);
    expect(await aesKeyWrapper(loadOrCreateMasterKey(dir)).unwrap(wrapped, CONTEXT)).toEqual(dek);
  });

  it('refuses a key file others can read or write (key-file-permissions), and does not replace it', () => {
    for (const mode of [0o644, 0o640, 0o602]) {
      const dir = freshDir();
      const path = join(dir, MASTER_KEY_FILE);
      const original = randomBytes(32);
      writeFileSync(path, original, { mode: 0o600 });
      chmodSync(path, mode);
      expect(codeOf(() => loadOrCreateMasterKey(dir)), mode.toString(8)).toBe('key-file-permissions');
      expect(readFileSync(path)).toEqual(original);
    }
  });

  it('refuses a key file of the wrong size (key-file-invalid)', () => {
    for (const length of [0, 16, 31, 33, 64]) {
      const dir = freshDir();
      writeFileSync(join(dir, MASTER_KEY_FILE), randomBytes(length), { mode: 0o600 });
      expect(codeOf(() => loadOrCreateMasterKey(dir)), `${length} bytes`).toBe('key-file-invalid');
    }
  });

  it('refuses a data directory it cannot write in (file-unreadable)', () => {
    expect(codeOf(() => loadOrCreateMasterKey(join(freshDir(), 'missing', 'deeper')))).toBe('file-unreadable');
  });
});
