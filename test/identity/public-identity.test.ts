import { describe, expect, it } from 'vitest';
import { fromBase64Url, fromHex, sha256, toBase64Url, toHex } from '../../src/crypto/index.js';
import { isMalusError } from '../../src/errors/index.js';
import {
  PARTY_ID_PATTERN,
  assertPublicIdentity,
  checkPublicIdentity,
  decodeEncryptionKey,
  decodeSigningKey,
  generatePartyKeys,
  partyIdFor,
} from '../../src/identity/index.js';

// RFC 8032 §7.1 TEST 1 public key, and RFC 7748 §6.1 Alice's X25519 public key.
const ED_PUBLIC = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')!;
const X_PUBLIC = fromHex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')!;
const IDENTITY_POINT = toBase64Url(Uint8Array.of(1, ...new Uint8Array(31)));

describe('partyIdFor', () => {
  it('is the first 10 bytes of SHA-256 of the raw key, as 20 lower-case hex characters', () => {
    const id = partyIdFor(ED_PUBLIC);
    expect(id).toMatch(/^[0-9a-f]{20}$/);
    expect(id).toBe(toHex(sha256(ED_PUBLIC)).slice(0, 20));
    expect(PARTY_ID_PATTERN.test(id)).toBe(true);
  });

  it('differs for different keys and is stable for the same key', () => {
    const a = generatePartyKeys('A').identity;
    const b = generatePartyKeys('B').identity;
    expect(a.id).not.toBe(b.id);
    expect(partyIdFor(fromBase64Url(a.signingKey)!)).toBe(a.id);
    expect(partyIdFor(fromBase64Url(a.signingKey)!)).toBe(partyIdFor(fromBase64Url(a.signingKey)!));
  });

  it('PARTY_ID_PATTERN refuses upper case, wrong lengths and non-hex', () => {
    for (const bad of ['ABCDEF0123456789abcd', '0123456789abcdef012', '0123456789abcdef01234', 'g123456789abcdef0123', '']) {
      expect(PARTY_ID_PATTERN.test(bad)).toBe(false);
    }
  });
});

describe('generatePartyKeys', () => {
  it('makes a self-consistent identity', () => {
    const keys = generatePartyKeys('Acme Advertiser');
    expect(keys.identity).toEqual({
      format: 'malus.identity/v1',
      id: expect.stringMatching(/^[0-9a-f]{20}$/),
      name: 'Acme Advertiser',
      signingKey: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      encryptionKey: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    expect(keys.signingSecret).toHaveLength(32);
    expect(keys.encryptionSecret).toHaveLength(32);
    expect(checkPublicIdentity(keys.identity)).toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['201 characters', 'x'.repeat(201)],
  ])('refuses a name that is %s', (_label, name) => {
    let caught: unknown;
    try {
      generatePartyKeys(name);
    } catch (error) {
      caught = error;
    }
    expect(isMalusError(caught, 'usage')).toBe(true);
    expect((caught as Error).message).toBe('name must be 1 to 200 characters');
  });

  it('accepts a 200-character name', () => {
    expect(generatePartyKeys('y'.repeat(200)).identity.name).toHaveLength(200);
  });
});

describe('decodeSigningKey / decodeEncryptionKey', () => {
  it('decode valid keys', () => {
    expect(decodeSigningKey(toBase64Url(ED_PUBLIC))).toEqual({ key: ED_PUBLIC });
    expect(decodeEncryptionKey(toBase64Url(X_PUBLIC))).toEqual({ key: X_PUBLIC });
  });

  it('explain what is wrong', () => {
    expect(decodeSigningKey(`${toBase64Url(ED_PUBLIC)}=`)).toEqual({ problem: 'expected unpadded base64url' });
    expect(decodeSigningKey(toBase64Url(ED_PUBLIC.subarray(0, 31)))).toEqual({ problem: 'expected 32 bytes, got 31' });
    expect(decodeSigningKey(IDENTITY_POINT)).toEqual({ problem: 'not a valid Ed25519 public key' });
    expect(decodeEncryptionKey('not base64url!')).toEqual({ problem: 'expected unpadded base64url' });
    expect(decodeEncryptionKey(toBase64Url(new Uint8Array(33)))).toEqual({ problem: 'expected 32 bytes, got 33' });
    expect(decodeEncryptionKey(toBase64Url(new Uint8Array(32)))).toEqual({ problem: 'not a usable X25519 public key (small order)' });
  });
});

describe('checkPublicIdentity', () => {
  const good = {
    id: partyIdFor(ED_PUBLIC),
    name: 'RFC',
    signingKey: toBase64Url(ED_PUBLIC),
    encryptionKey: toBase64Url(X_PUBLIC),
  };

  it('has no issues for a consistent identity', () => {
    expect(checkPublicIdentity(good)).toEqual([]);
    expect(() => {
      assertPublicIdentity(good);
    }).not.toThrow();
  });

  it('reports a signing key that is not base64url (and then cannot check the id)', () => {
    expect(checkPublicIdentity({ ...good, signingKey: good.signingKey.replace(/^./, '+') })).toEqual([
      { path: 'signingKey', message: 'expected unpadded base64url' },
    ]);
  });

  it('reports a signing key of the wrong length', () => {
    expect(checkPublicIdentity({ ...good, signingKey: toBase64Url(ED_PUBLIC.subarray(0, 31)) })).toEqual([
      { path: 'signingKey', message: 'expected 32 bytes, got 31' },
    ]);
  });

  it('reports a small-order signing key', () => {
    expect(checkPublicIdentity({ ...good, signingKey: IDENTITY_POINT })).toEqual([
      { path: 'signingKey', message: 'not a valid Ed25519 public key' },
    ]);
  });

  it('reports an id that does not derive from the signing key, naming the right one', () => {
    const other = generatePartyKeys('Other').identity;
    expect(checkPublicIdentity({ ...good, id: other.id })).toEqual([
      { path: 'id', message: `does not match signingKey (expected ${good.id})` },
    ]);
  });

  it('reports bad encryption keys', () => {
    expect(checkPublicIdentity({ ...good, encryptionKey: `${good.encryptionKey}==` })).toEqual([
      { path: 'encryptionKey', message: 'expected unpadded base64url' },
    ]);
    expect(checkPublicIdentity({ ...good, encryptionKey: toBase64Url(X_PUBLIC.subarray(0, 16)) })).toEqual([
      { path: 'encryptionKey', message: 'expected 32 bytes, got 16' },
    ]);
    expect(checkPublicIdentity({ ...good, encryptionKey: IDENTITY_POINT })).toEqual([
      { path: 'encryptionKey', message: 'not a usable X25519 public key (small order)' },
    ]);
  });

  it('reports every problem at once, under the given path', () => {
    expect(checkPublicIdentity({ ...good, signingKey: 'AAAA', encryptionKey: 'A' }, 'parties[2]')).toEqual([
      { path: 'parties[2].signingKey', message: 'expected 32 bytes, got 3' },
      { path: 'parties[2].encryptionKey', message: 'expected unpadded base64url' },
    ]);
  });

  it('assertPublicIdentity throws invalid-input with the issues', () => {
    let caught: unknown;
    try {
      assertPublicIdentity({ ...good, encryptionKey: IDENTITY_POINT });
    } catch (error) {
      caught = error;
    }
    expect(isMalusError(caught, 'invalid-input')).toBe(true);
    if (!isMalusError(caught)) return;
    expect(caught.message).toBe('public identity is invalid');
    expect(caught.issues).toEqual([{ path: 'encryptionKey', message: 'not a usable X25519 public key (small order)' }]);
    expect(caught.describe()).toBe('public identity is invalid\nencryptionKey: not a usable X25519 public key (small order)');
  });
});
