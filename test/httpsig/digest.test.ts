import { describe, expect, it } from 'vitest';
import { checkContentDigest, contentDigest } from '../../src/httpsig/index.js';

// RFC 9530 examples: the 18-byte body {"hello": "world"}.
const BODY = new TextEncoder().encode('{"hello": "world"}');
const SHA256 = 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:';
const SHA512 = 'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:';

describe('contentDigest', () => {
  it('matches the RFC 9530 sha-256 example', () => {
    expect(contentDigest(BODY)).toBe(SHA256);
  });

  it('digests an empty body', () => {
    expect(contentDigest(new Uint8Array(0))).toBe('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:');
  });
});

describe('checkContentDigest', () => {
  it('accepts the RFC 9530 sha-256 and sha-512 examples, alone and together', () => {
    expect(checkContentDigest(SHA256, BODY)).toBeUndefined();
    expect(checkContentDigest(SHA512, BODY)).toBeUndefined();
    expect(checkContentDigest(`${SHA512}, ${SHA256}`, BODY)).toBeUndefined();
  });

  it('ignores unknown algorithms next to a known one', () => {
    expect(checkContentDigest(`md5=:AAAA:, unixsum=:AAAA:, ${SHA256}`, BODY)).toBeUndefined();
  });

  it('rejects a field with only unknown algorithms', () => {
    expect(checkContentDigest('md5=:AAAA:', BODY)).toMatch(/no sha-256 or sha-512/);
  });

  it('rejects when any known entry mismatches', () => {
    const wrong512 = `sha-512=:${Buffer.alloc(64).toString('base64')}:`;
    expect(checkContentDigest(`${SHA256}, ${wrong512}`, BODY)).toMatch(/sha-512 does not match/);
    expect(checkContentDigest(SHA256, new TextEncoder().encode('{"hello": "world!"}'))).toMatch(/sha-256 does not match/);
  });

  it('rejects missing, empty, malformed and oversized fields', () => {
    expect(checkContentDigest(undefined, BODY)).toMatch(/missing/);
    expect(checkContentDigest('  ', BODY)).toMatch(/missing/);
    expect(checkContentDigest('sha-256=X48E9q', BODY)).toBeDefined();
    expect(checkContentDigest('sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="', BODY)).toMatch(/byte sequence/);
    expect(checkContentDigest('sha-256=(:AAAA:)', BODY)).toMatch(/byte sequence/);
    expect(checkContentDigest('{{{', BODY)).toMatch(/structured dictionary/);
    expect(checkContentDigest(`${SHA256}, x=:${'A'.repeat(8000)}:`, BODY)).toMatch(/too long/);
  });
});
