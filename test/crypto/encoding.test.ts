import { describe, expect, it } from 'vitest';
import {
  equalBytes,
  fromBase64,
  fromBase64Url,
  fromHex,
  sha256,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
} from '../../src/crypto/index.js';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

describe('base64url (RFC 4648 §5, unpadded)', () => {
  it('encodes the RFC 4648 §10 vectors without padding, in the URL alphabet', () => {
    expect(toBase64Url(utf8(''))).toBe('');
    expect(toBase64Url(utf8('f'))).toBe('Zg');
    expect(toBase64Url(utf8('fo'))).toBe('Zm8');
    expect(toBase64Url(utf8('foo'))).toBe('Zm9v');
    expect(toBase64Url(utf8('foob'))).toBe('Zm9vYg');
    expect(toBase64Url(utf8('fooba'))).toBe('Zm9vYmE');
    expect(toBase64Url(utf8('foobar'))).toBe('Zm9vYmFy');
    expect(toBase64Url(bytes(0xfb, 0xff, 0xbf))).toBe('-_-_');
  });

  it('encodes only the view of a subarray, not its whole buffer', () => {
    const whole = bytes(1, 2, 3, 4, 5);
    expect(toBase64Url(whole.subarray(1, 3))).toBe(toBase64Url(bytes(2, 3)));
    expect(toHex(whole.subarray(1, 3))).toBe('0203');
    expect(toBase64(whole.subarray(4))).toBe('BQ==');
  });

  it('round-trips every length from 0 to 40', () => {
    for (let n = 0; n <= 40; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      expect(fromBase64Url(toBase64Url(data))).toEqual(data);
    }
  });

  it('decodes canonical text', () => {
    expect(fromBase64Url('Zm9vYmE')).toEqual(utf8('fooba'));
    expect(fromBase64Url('-_-_')).toEqual(bytes(0xfb, 0xff, 0xbf));
    expect(fromBase64Url('')).toEqual(new Uint8Array());
  });

  it.each([
    ['padding', 'Zm9vYmE='],
    ['double padding', 'Zg=='],
    ['standard-alphabet +', '+/+/'],
    ['standard-alphabet /', 'ab/c'],
    ['a space', 'Zm9v Yg'],
    ['a newline', 'Zm9v\nYg'],
    ['a non-ASCII letter', 'Zm9vé'],
    ['a dot', 'Zm9v.g'],
    ['an impossible length (4n+1)', 'Zm9vY'],
    ['non-canonical trailing bits (1 byte)', 'Zh'],
    ['non-canonical trailing bits (2 bytes)', 'Zm9'],
    ['non-canonical trailing bits (AB for 0x00)', 'AB'],
  ])('rejects %s', (_label, text) => {
    expect(fromBase64Url(text)).toBeUndefined();
  });

  it('the canonical neighbours of the non-canonical texts do decode', () => {
    expect(fromBase64Url('Zg')).toEqual(utf8('f'));
    expect(fromBase64Url('AA')).toEqual(bytes(0));
    expect(fromBase64Url('Zm8')).toEqual(utf8('fo'));
  });
});

describe('base64 (RFC 4648 §4, padded)', () => {
  it('encodes and decodes the RFC 4648 §10 vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg=='],
      ['fooba', 'Zm9vYmE='],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      expect(toBase64(utf8(plain))).toBe(encoded);
      expect(fromBase64(encoded)).toEqual(utf8(plain));
    }
  });

  it.each([
    ['missing padding', 'Zg'],
    ['URL alphabet', '-_-_'],
    ['non-canonical trailing bits', 'Zh=='],
    ['too much padding', 'Zg==='],
    ['padding in the middle', 'Zg==Zg=='],
    ['whitespace', 'Zm9v Zg=='],
  ])('rejects %s', (_label, text) => {
    expect(fromBase64(text)).toBeUndefined();
  });
});

describe('hex', () => {
  it('encodes lower case and round-trips', () => {
    expect(toHex(bytes(0x00, 0x0f, 0xa0, 0xff))).toBe('000fa0ff');
    expect(fromHex('000fa0ff')).toEqual(bytes(0x00, 0x0f, 0xa0, 0xff));
    expect(fromHex('')).toEqual(new Uint8Array());
  });

  it.each([
    ['upper case', '0A'],
    ['an odd length', 'abc'],
    ['a non-hex letter', 'zz'],
    ['a 0x prefix', '0x00'],
    ['whitespace', '00 11'],
    ['a trailing non-hex character', '0011g'],
  ])('rejects %s', (_label, text) => {
    expect(fromHex(text)).toBeUndefined();
  });
});

describe('equalBytes', () => {
  it('compares contents and lengths', () => {
    expect(equalBytes(bytes(1, 2, 3), bytes(1, 2, 3))).toBe(true);
    expect(equalBytes(new Uint8Array(), new Uint8Array())).toBe(true);
    expect(equalBytes(bytes(1, 2, 3), bytes(1, 2, 4))).toBe(false);
    expect(equalBytes(bytes(0x80, 2, 3), bytes(0, 2, 3))).toBe(false);
    expect(equalBytes(bytes(1, 2, 3), bytes(1, 2))).toBe(false);
    expect(equalBytes(bytes(1, 2), bytes(1, 2, 0))).toBe(false);
  });
});

describe('sha256 and utf8', () => {
  it('matches the FIPS 180-2 "abc" and empty-string vectors', () => {
    expect(toHex(sha256('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(sha256(new Uint8Array()))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('encodes text as UTF-8', () => {
    expect(utf8('é€😀')).toEqual(bytes(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80));
  });
});
