import { describe, expect, it } from 'vitest';
import { fromBase64, fromBase64Url, signEd25519, signingPublicKey, verifyEd25519 } from '../../src/crypto/index.js';
import {
  encodeSignatureBase,
  serializeSignatureParams,
  signatureBase,
  verifyRequest,
  type HttpRequestMessage,
} from '../../src/httpsig/index.js';

// RFC 9421 Appendix B.1.4: test-key-ed25519 (a published test vector, not a secret).
const TEST_KEY_D = 'n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU';
const TEST_KEY_X = 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs';

function decode(text: string): Uint8Array {
  const bytes = fromBase64Url(text) ?? fromBase64(text);
  if (bytes === undefined) throw new Error('bad test vector');
  return bytes;
}

const secretKey = decode(TEST_KEY_D);
const publicKey = decode(TEST_KEY_X);

// RFC 9421 Appendix B.2: the test-request message.
const testRequest: HttpRequestMessage = {
  method: 'POST',
  url: 'https://example.com/foo?param=Value&Pet=dog',
  headers: {
    'host': 'example.com',
    'date': 'Tue, 20 Apr 2021 02:07:55 GMT',
    'content-type': 'application/json',
    'content-digest':
      'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
    'content-length': '18',
  },
};
const testBody = new TextEncoder().encode('{"hello": "world"}');

// Appendix B.2.6, with the RFC 8792 line wrapping undone.
const B26_COMPONENTS = ['date', '@method', '@path', '@authority', 'content-type', 'content-length'];
const B26_PARAMS = new Map<string, string | number>([
  ['created', 1618884473],
  ['keyid', 'test-key-ed25519'],
]);
const B26_BASE = [
  '"date": Tue, 20 Apr 2021 02:07:55 GMT',
  '"@method": POST',
  '"@path": /foo',
  '"@authority": example.com',
  '"content-type": application/json',
  '"content-length": 18',
  '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")' +
    ';created=1618884473;keyid="test-key-ed25519"',
].join('\n');
const B26_SIGNATURE_INPUT =
  'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")' +
  ';created=1618884473;keyid="test-key-ed25519"';
const B26_SIGNATURE =
  'wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==';

describe('RFC 9421 B.1.4 test-key-ed25519', () => {
  it('has the published public key', () => {
    expect(signingPublicKey(secretKey)).toEqual(publicKey);
  });
});

describe('RFC 9421 B.2.6 signing a request using ed25519', () => {
  it('builds the signature base byte for byte', () => {
    expect(signatureBase(testRequest, B26_COMPONENTS, B26_PARAMS)).toBe(B26_BASE);
  });

  it('serialises the Signature-Input member as the RFC does', () => {
    expect(`sig-b26=${serializeSignatureParams(B26_COMPONENTS, B26_PARAMS)}`).toBe(B26_SIGNATURE_INPUT);
  });

  it('produces the published signature (Ed25519 is deterministic)', () => {
    const signature = signEd25519(secretKey, encodeSignatureBase(B26_BASE));
    expect(Buffer.from(signature).toString('base64')).toBe(B26_SIGNATURE);
  });

  it('verifies the published signature over the base', () => {
    expect(verifyEd25519(publicKey, encodeSignatureBase(B26_BASE), decode(B26_SIGNATURE))).toBe(true);
  });

  it('passes every verifyRequest check up to the nonce, which the RFC example lacks', () => {
    const result = verifyRequest({
      ...testRequest,
      headers: { ...testRequest.headers, 'signature-input': B26_SIGNATURE_INPUT, 'signature': `sig-b26=:${B26_SIGNATURE}:` },
      body: testBody,
      now: 1618884473 + 5,
      requiredComponents: ['@method', '@path', '@authority'],
      resolveKey: (keyId) => (keyId === 'test-key-ed25519' ? publicKey : undefined),
    });
    expect(result).toMatchObject({ ok: false, reason: 'missing-nonce' });
  });
});

describe('derived components (RFC 9421 §2.2)', () => {
  const request: HttpRequestMessage = {
    method: 'POST',
    url: 'https://www.example.com/path?param=value&foo=bar&baz=bat%2Dman',
    headers: {},
  };
  const base = (message: HttpRequestMessage, name: string): string => {
    const text = signatureBase(message, [name], new Map());
    return text.slice(0, text.indexOf('\n'));
  };

  it('resolves @method, @target-uri, @authority, @scheme, @path, @query and @request-target', () => {
    expect(base(request, '@method')).toBe('"@method": POST');
    expect(base(request, '@target-uri')).toBe(
      '"@target-uri": https://www.example.com/path?param=value&foo=bar&baz=bat%2Dman',
    );
    expect(base(request, '@authority')).toBe('"@authority": www.example.com');
    expect(base(request, '@scheme')).toBe('"@scheme": https');
    expect(base(request, '@path')).toBe('"@path": /path');
    expect(base(request, '@query')).toBe('"@query": ?param=value&foo=bar&baz=bat%2Dman');
    expect(base(request, '@request-target')).toBe('"@request-target": /path?param=value&foo=bar&baz=bat%2Dman');
  });

  it('normalises authority, empty paths and absent queries as the RFC says', () => {
    const bare = { method: 'GET', url: 'https://Example.COM:443', headers: {} };
    expect(base(bare, '@authority')).toBe('"@authority": example.com');
    expect(base(bare, '@path')).toBe('"@path": /');
    expect(base(bare, '@query')).toBe('"@query": ?');
    expect(base({ ...bare, url: 'http://example.com:8080/a' }, '@authority')).toBe('"@authority": example.com:8080');
  });

  it('keeps the path raw and drops the fragment', () => {
    const odd = { method: 'GET', url: 'https://example.com/a/../b%2f?x=1#frag', headers: {} };
    expect(base(odd, '@path')).toBe('"@path": /a/../b%2f');
    expect(base(odd, '@target-uri')).toBe('"@target-uri": https://example.com/a/../b%2f?x=1');
  });

  it('trims field lines and joins repeated ones with ", "', () => {
    const message = { method: 'GET', url: 'https://example.com/', headers: { 'x-list': ['  a ', '\tb'] } };
    expect(base(message, 'x-list')).toBe('"x-list": a, b');
  });

  it('refuses to build a base from absent, duplicate, unknown or line-breaking components', () => {
    expect(() => signatureBase(request, ['x-absent'], new Map())).toThrow(/absent/);
    expect(() => signatureBase(request, ['@method', '@method'], new Map())).toThrow(/twice/);
    expect(() => signatureBase(request, ['@status'], new Map())).toThrow(/unsupported/);
    expect(() => signatureBase(request, ['Content-Type'], new Map())).toThrow(/unsupported/);
    const injected = { ...request, headers: { 'x-evil': 'a\n"@method": GET' } };
    expect(() => signatureBase(injected, ['x-evil'], new Map())).toThrow(/control/);
    expect(() => signatureBase({ ...request, method: 'GET\n' }, ['@method'], new Map())).toThrow(/token/);
    expect(() => signatureBase({ ...request, url: '/relative' }, ['@path'], new Map())).toThrow(/absolute/);
  });
});
