import { createCipheriv, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fromBase64Url, signEd25519, toBase64Url, utf8, verifyEd25519 } from '../../src/crypto/index.js';
import { MalusError, type ErrorCode } from '../../src/errors/index.js';
import {
  generatePartyKeys,
  readKeyFile,
  readPublicIdentity,
  writeKeyFile,
  type PartyKeys,
} from '../../src/identity/index.js';

const PASSPHRASE = 'tr0ub4dor&3 is not a passphrase';

/** Runs fn, which must throw a MalusError with this code and exactly this message. */
function expectMalusError(fn: () => unknown, code: ErrorCode, message: string): MalusError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MalusError);
  const error = caught as MalusError;
  expect({ code: error.code, message: error.message }).toEqual({ code, message });
  return error;
}

function readJson(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

/** Edits a key file in place, keeping its 0600 mode. */
function edit(path: string, change: (file: Record<string, any>) => void): void {
  const file = readJson(path);
  change(file);
  writeFileSync(path, JSON.stringify(file, null, 2));
  expect(statSync(path).mode & 0o777).toBe(0o600);
}

function expectSameKeys(actual: PartyKeys, expected: PartyKeys): void {
  expect(actual.identity).toEqual(expected.identity);
  expect(actual.signingSecret).toEqual(expected.signingSecret);
  expect(actual.encryptionSecret).toEqual(expected.encryptionSecret);
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'malus-key-file-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('writeKeyFile (no passphrase)', () => {
  it('writes the documented malus.key/v1 document with mode 0600 and nothing else', () => {
    const keys = generatePartyKeys('Acme');
    const path = join(dir, 'acme.key');
    writeKeyFile(path, keys, { now: new Date('2026-11-22T10:00:00.000Z') });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['acme.key']);
    expect(readJson(path)).toEqual({
      format: 'malus.key/v1',
      id: keys.identity.id,
      name: 'Acme',
      signingKey: keys.identity.signingKey,
      encryptionKey: keys.identity.encryptionKey,
      createdAt: '2026-11-22T10:00:00.000Z',
      secrets: {
        protection: 'none',
        signingKey: toBase64Url(keys.signingSecret),
        encryptionKey: toBase64Url(keys.encryptionSecret),
      },
    });
  });

  it('refuses to overwrite an existing file, leaving it and the directory as they were', () => {
    const path = join(dir, 'party.key');
    writeKeyFile(path, generatePartyKeys('First'));
    const before = readFileSync(path);
    expectMalusError(
      () => {
        writeKeyFile(path, generatePartyKeys('Second'));
      },
      'usage',
      `${path} already exists; refusing to overwrite a key file`,
    );
    expect(readFileSync(path)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['party.key']);
  });

  it('refuses to overwrite a file that is not a key file either', () => {
    const path = join(dir, 'notes.txt');
    writeFileSync(path, 'precious');
    expectMalusError(
      () => {
        writeKeyFile(path, generatePartyKeys('P'));
      },
      'usage',
      `${path} already exists; refusing to overwrite a key file`,
    );
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });

  it('reports a directory that does not exist as file-unreadable and creates nothing', () => {
    const path = join(dir, 'missing', 'party.key');
    expectMalusError(
      () => {
        writeKeyFile(path, generatePartyKeys('P'));
      },
      'file-unreadable',
      `cannot write ${path}: ENOENT`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('is not blocked by a temporary file a crashed run of the same pid left behind', () => {
    const path = join(dir, 'party.key');
    const stale = `.party.key.${process.pid}.tmp`;
    writeFileSync(join(dir, stale), 'half');
    const keys = generatePartyKeys('P');
    writeKeyFile(path, keys);
    expect(readdirSync(dir).sort()).toEqual([stale, 'party.key'].sort());
    expectSameKeys(readKeyFile(path), keys);
  });
});

describe('readKeyFile / readPublicIdentity (no passphrase)', () => {
  it('round-trips identity and secrets, and the secrets sign for the identity', () => {
    const keys = generatePartyKeys('Round Trip');
    const path = join(dir, 'p.key');
    writeKeyFile(path, keys);
    const loaded = readKeyFile(path);
    expectSameKeys(loaded, keys);
    expect(readPublicIdentity(path)).toEqual(keys.identity);
    const message = utf8('hello');
    const signature = signEd25519(loaded.signingSecret, message);
    expect(verifyEd25519(fromBase64Url(loaded.identity.signingKey)!, message, signature)).toBe(true);
  });

  it('ignores a passphrase given for an unprotected file', () => {
    const keys = generatePartyKeys('P');
    const path = join(dir, 'p.key');
    writeKeyFile(path, keys);
    expectSameKeys(readKeyFile(path, { passphrase: 'unused' }), keys);
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o666])('refuses mode %o with the chmod 600 remedy', (mode) => {
    const path = join(dir, 'p.key');
    writeKeyFile(path, generatePartyKeys('P'));
    chmodSync(path, mode);
    const octal = mode.toString(8).padStart(4, '0');
    const error = expectMalusError(
      () => readKeyFile(path),
      'key-file-permissions',
      `key file ${path} is accessible by group or others (mode ${octal}); run: chmod 600 ${path}`,
    );
    expect(error.message).toContain(`chmod 600 ${path}`);
    // The public half is not secret, so it may still be read.
    expect(readPublicIdentity(path).name).toBe('P');
  });

  it.each([0o400, 0o700])('accepts owner-only mode %o', (mode) => {
    const keys = generatePartyKeys('P');
    const path = join(dir, 'p.key');
    writeKeyFile(path, keys);
    chmodSync(path, mode);
    expectSameKeys(readKeyFile(path), keys);
  });

  it.each([
    ['signingKey and id replaced by another party’s', (f: Record<string, any>, o: PartyKeys) => {
      f.signingKey = o.identity.signingKey;
      f.id = o.identity.id;
    }],
    ['encryptionKey replaced by another party’s', (f: Record<string, any>, o: PartyKeys) => {
      f.encryptionKey = o.identity.encryptionKey;
    }],
    ['id replaced by another party’s', (f: Record<string, any>, o: PartyKeys) => {
      f.id = o.identity.id;
    }],
    ['signingKey that is not base64url', (f: Record<string, any>) => {
      f.signingKey = `${String(f.signingKey)}=`;
    }],
  ])('refuses a file whose public half was tampered with: %s', (_label, tamper) => {
    const path = join(dir, 'p.key');
    writeKeyFile(path, generatePartyKeys('P'));
    const other = generatePartyKeys('Other');
    edit(path, (file) => {
      tamper(file, other);
    });
    expectMalusError(() => readKeyFile(path), 'key-file-invalid', `key file ${path}: secret keys do not match the public keys it shows`);
  });

  it('refuses a secret that is not 32 bytes of base64url', () => {
    const path = join(dir, 'p.key');
    writeKeyFile(path, generatePartyKeys('P'));
    edit(path, (file) => {
      file.secrets.encryptionKey = toBase64Url(new Uint8Array(31));
    });
    expectMalusError(() => readKeyFile(path), 'key-file-invalid', `key file ${path}: secrets.encryptionKey is not 32 bytes of base64url`);
    edit(path, (file) => {
      file.secrets.signingKey = 'not base64url!';
    });
    expectMalusError(() => readKeyFile(path), 'key-file-invalid', `key file ${path}: secrets.signingKey is not 32 bytes of base64url`);
  });

  it('refuses a file that is not JSON', () => {
    const path = join(dir, 'p.key');
    writeFileSync(path, 'format: malus.key/v1\n', { mode: 0o600 });
    expectMalusError(() => readKeyFile(path), 'key-file-invalid', `key file ${path} is not JSON`);
    expectMalusError(() => readPublicIdentity(path), 'key-file-invalid', `key file ${path} is not JSON`);
  });

  it.each([
    ['a wrong format', (f: Record<string, any>) => (f.format = 'malus.key/v2'), 'format'],
    ['no secrets', (f: Record<string, any>) => delete f.secrets, 'secrets'],
    ['an unknown protection', (f: Record<string, any>) => (f.secrets.protection = 'tpm'), 'secrets.protection'],
    ['an unknown field', (f: Record<string, any>) => (f.comment = 'hi'), 'top level'],
    ['a numeric name', (f: Record<string, any>) => (f.name = 42), 'name'],
  ])('refuses a JSON document with %s, saying where', (_label, change, where) => {
    const path = join(dir, 'p.key');
    writeKeyFile(path, generatePartyKeys('P'));
    edit(path, change);
    const message = `key file ${path} is not a malus.key/v1 file (at ${where})`;
    expectMalusError(() => readKeyFile(path), 'key-file-invalid', message);
    expectMalusError(() => readPublicIdentity(path), 'key-file-invalid', message);
  });

  it('reports a missing file as file-unreadable', () => {
    const path = join(dir, 'nope.key');
    expectMalusError(() => readKeyFile(path), 'file-unreadable', `cannot read key file ${path}: ENOENT`);
    expectMalusError(() => readPublicIdentity(path), 'file-unreadable', `cannot read key file ${path}: ENOENT`);
  });

  it('reports a directory as file-unreadable', () => {
    expectMalusError(() => readKeyFile(dir), 'file-unreadable', `cannot read key file ${dir}: EISDIR`);
  });
});

describe('passphrase-protected key files', () => {
  let sharedDir: string;
  let keys: PartyKeys;
  let path: string;

  beforeAll(() => {
    sharedDir = mkdtempSync(join(tmpdir(), 'malus-key-file-sealed-'));
    keys = generatePartyKeys('Sealed Party');
    path = join(sharedDir, 'sealed.key');
    writeKeyFile(path, keys, { passphrase: PASSPHRASE, now: new Date('2026-01-02T03:04:05.000Z') });
  });
  afterAll(() => {
    rmSync(sharedDir, { recursive: true, force: true });
  });

  /** A copy of the sealed file in the per-test directory, for tests that edit it. */
  function copy(): string {
    const target = join(dir, 'copy.key');
    writeFileSync(target, readFileSync(path), { mode: 0o600 });
    return target;
  }

  it('writes the sealed form with mode 0600 and no secret in the clear', () => {
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(sharedDir)).toEqual(['sealed.key']);
    const text = readFileSync(path, 'utf8');
    const file = JSON.parse(text);
    expect(file.createdAt).toBe('2026-01-02T03:04:05.000Z');
    expect(file.secrets).toEqual({
      protection: 'passphrase',
      sealed: {
        kdf: 'scrypt',
        N: 131072,
        r: 8,
        p: 1,
        salt: expect.any(String),
        cipher: 'aes-256-gcm',
        iv: expect.any(String),
        ciphertext: expect.any(String),
      },
    });
    expect(text).not.toContain(toBase64Url(keys.signingSecret));
    expect(text).not.toContain(toBase64Url(keys.encryptionSecret));
    expect(text).not.toContain(PASSPHRASE);
  });

  it('readPublicIdentity works without the passphrase', () => {
    expect(readPublicIdentity(path)).toEqual(keys.identity);
  });

  it('readKeyFile without a passphrase (or an empty one) says how to give it', () => {
    const message = `key file ${path} is passphrase-protected; pass --passphrase-env VAR with the passphrase in VAR`;
    expectMalusError(() => readKeyFile(path), 'key-file-passphrase', message);
    expectMalusError(() => readKeyFile(path, { passphrase: '' }), 'key-file-passphrase', message);
  });

  it('readKeyFile with the passphrase returns the secrets', () => {
    expectSameKeys(readKeyFile(path, { passphrase: PASSPHRASE }), keys);
  });

  it('a wrong passphrase is key-file-passphrase, naming the file and the variable, never the passphrase', () => {
    const wrong = 'Tr0ub4dor&3 is not a passphrase';
    const error = expectMalusError(
      () => readKeyFile(path, { passphrase: wrong, passphraseSource: 'MALUS_PASSPHRASE' }),
      'key-file-passphrase',
      `wrong passphrase from MALUS_PASSPHRASE for key file ${path}`,
    );
    expect(error.message).not.toContain(wrong);
    expect(error.describe()).not.toContain(wrong);
    expect(JSON.stringify(error)).not.toContain(wrong);
  });

  it('a wrong passphrase without a named source', () => {
    expectMalusError(() => readKeyFile(path, { passphrase: 'nope' }), 'key-file-passphrase', `wrong passphrase for key file ${path}`);
  });

  it('a tampered public key does not open (it is the AAD), even with the right passphrase', () => {
    const target = copy();
    const other = generatePartyKeys('Other');
    edit(target, (file) => {
      file.signingKey = other.identity.signingKey;
      file.id = other.identity.id;
    });
    expectMalusError(
      () => readKeyFile(target, { passphrase: PASSPHRASE }),
      'key-file-passphrase',
      `wrong passphrase for key file ${target}`,
    );
  });

  it('refuses hostile scrypt parameters as a wrong passphrase, without deriving', () => {
    const target = copy();
    edit(target, (file) => {
      file.secrets.sealed.N = 2 ** 40;
    });
    expectMalusError(
      () => readKeyFile(target, { passphrase: PASSPHRASE }),
      'key-file-passphrase',
      `wrong passphrase for key file ${target}`,
    );
  });

  it.each([
    ['plaintext that is not JSON', 'not json at all'],
    ['JSON of the wrong shape', '{"signingKey":"x"}'],
  ])('sealed %s is key-file-invalid, not a crash', (_label, plaintext) => {
    // Seal by hand (cheap N = 2^14), with the right AAD, as a file made by another tool could be.
    const target = copy();
    const file = readJson(target);
    const aad = utf8(['malus.key/v1', file.id, file.name, file.signingKey, file.encryptionKey].join('\n'));
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const key = scryptSync(PASSPHRASE, salt, 32, { N: 2 ** 14, r: 8, p: 1 });
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    edit(target, (f) => {
      f.secrets.sealed = { ...f.secrets.sealed, N: 2 ** 14, salt: toBase64Url(salt), iv: toBase64Url(iv), ciphertext: toBase64Url(body) };
    });
    expectMalusError(() => readKeyFile(target, { passphrase: PASSPHRASE }), 'key-file-invalid', `key file ${target}: sealed secrets are malformed`);
  });
});

describe('readPublicIdentity of a public identity document', () => {
  it('accepts the document `malus keygen --public` prints, and refuses one whose id does not match its key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'malus-pubid-'));
    const { identity } = generatePartyKeys('Acme');
    writeFileSync(join(dir, 'acme.pub.json'), JSON.stringify(identity));
    expect(readPublicIdentity(join(dir, 'acme.pub.json'))).toEqual(identity);
    writeFileSync(join(dir, 'bad.pub.json'), JSON.stringify({ ...identity, id: '0'.repeat(20) }));
    expect(() => readPublicIdentity(join(dir, 'bad.pub.json'))).toThrow(
      expect.objectContaining({ code: 'key-file-invalid', issues: [{ path: 'id', message: `does not match signingKey (expected ${identity.id})` }] }),
    );
    rmSync(dir, { recursive: true, force: true });
  });
});
