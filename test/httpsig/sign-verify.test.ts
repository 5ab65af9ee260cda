import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, signEd25519, toBase64 } from '../../src/crypto/index.js';
import {
  DEFERRED_BODY,
  checkContentDigest,
  contentDigest,
  encodeSignatureBase,
  serializeSignatureParams,
  signatureBase,
  signRequest,
  verifyRequest,
  type SignRequestParams,
  type VerifyRequestParams,
} from '../../src/httpsig/index.js';

const alice = generateSigningKeyPair();
const mallory = generateSigningKeyPair();
const NOW = 1_750_000_000;
const URL_ = 'https://malus.example/v1/collaborations/c1/queries?dry=1';
const BODY = new TextEncoder().encode('{"sql":"select count(*) from t"}');

function signed(overrides: Partial<SignRequestParams> = {}) {
  return signRequest({
    method: 'POST',
    url: URL_,
    body: BODY,
    keyId: 'alice',
    secretKey: alice.secretKey,
    created: NOW,
    nonce: 'n-1',
    ...overrides,
  });
}

function verify(headers: VerifyRequestParams['headers'], overrides: Partial<VerifyRequestParams> = {}) {
  return verifyRequest({
    method: 'POST',
    url: URL_,
    headers: { 'content-type': 'application/json', ...headers },
    body: BODY,
    now: NOW + 1,
    resolveKey: (keyId) => (keyId === 'alice' ? alice.publicKey : undefined),
    ...overrides,
  });
}

/** Signs arbitrary components and parameters, for signatures signRequest would never make. */
function customSignature(components: string[], params: Map<string, string | number>, label = 'malus') {
  const digest = contentDigest(BODY);
  const message = { method: 'POST', url: URL_, headers: { 'content-digest': digest } };
  const base = signatureBase(message, components, params);
  const signature = signEd25519(alice.secretKey, encodeSignatureBase(base));
  return {
    'content-digest': digest,
    'signature-input': `${label}=${serializeSignatureParams(components, params)}`,
    'signature': `${label}=:${toBase64(signature)}:`,
  };
}

describe('signRequest', () => {
  it('emits the Malus profile', () => {
    const headers = signed();
    expect(headers['content-digest']).toBe(contentDigest(BODY));
    expect(headers['signature-input']).toBe(
      'malus=("@method" "@target-uri" "content-digest");created=1750000000;nonce="n-1";keyid="alice";alg="ed25519"',
    );
    expect(headers.signature).toMatch(/^malus=:[A-Za-z0-9+/]{86}==:$/);
  });

  it('defaults created to now, nonce to 16 random bytes and digests an empty body', () => {
    const before = Math.floor(Date.now() / 1000);
    const headers = signRequest({ method: 'GET', url: URL_, keyId: 'alice', secretKey: alice.secretKey });
    const after = Math.floor(Date.now() / 1000);
    const created = Number(/;created=(\d+)/.exec(headers['signature-input'])?.[1]);
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(after);
    expect(headers['signature-input']).toMatch(/;nonce="[A-Za-z0-9_-]{22}";/);
    expect(headers['content-digest']).toBe(contentDigest(new Uint8Array(0)));
    const other = signRequest({ method: 'GET', url: URL_, keyId: 'alice', secretKey: alice.secretKey });
    expect(other['signature-input']).not.toBe(headers['signature-input']);
  });

  it('rejects inputs it cannot serialise', () => {
    expect(() => signed({ label: 'Bad Label' })).toThrow(/label/);
    expect(() => signed({ keyId: 'k\u00e9y' })).toThrow(/keyId/);
    expect(() => signed({ nonce: '' })).toThrow(/nonce/);
    expect(() => signed({ created: 1.5 })).toThrow(/created/);
    expect(() => signed({ secretKey: new Uint8Array(31) })).toThrow(/secretKey/);
    expect(() => signed({ url: 'not a url' })).toThrow(/absolute URI/);
  });

  it('never puts key material into error messages', () => {
    let message = '';
    try {
      signed({ url: 'relative/path' });
    } catch (error) {
      message = String(error);
    }
    expect(message).toMatch(/absolute URI/);
    expect(message).not.toContain(toBase64(alice.secretKey));
  });
});

describe('verifyRequest round trip', () => {
  it('accepts what signRequest produced', () => {
    expect(verify(signed())).toEqual({ ok: true, keyId: 'alice', created: NOW, nonce: 'n-1', label: 'malus' });
  });

  it('accepts an empty body and a custom label when it is the only signature', () => {
    const headers = signed({ body: new Uint8Array(0), label: 'other' });
    expect(verify(headers, { body: new Uint8Array(0) })).toMatchObject({ ok: true, label: 'other' });
  });

  it('picks the malus signature among several', () => {
    const mine = signed();
    const foreign = signed({ label: 'foreign', secretKey: mallory.secretKey });
    const headers = {
      'content-digest': mine['content-digest'],
      'signature-input': `${foreign['signature-input']}, ${mine['signature-input']}`,
      'signature': [foreign.signature, mine.signature],
    };
    expect(verify(headers)).toMatchObject({ ok: true, label: 'malus' });
  });

  it('refuses to guess between several non-malus signatures', () => {
    const a = signed({ label: 'a' });
    const b = signed({ label: 'b' });
    const headers = {
      'content-digest': a['content-digest'],
      'signature-input': `${a['signature-input']}, ${b['signature-input']}`,
      'signature': `${a.signature}, ${b.signature}`,
    };
    expect(verify(headers)).toMatchObject({ ok: false, reason: 'malformed-signature' });
  });

  it('accepts created exactly at the age and skew limits', () => {
    expect(verify(signed(), { now: NOW + 300 })).toMatchObject({ ok: true });
    expect(verify(signed(), { now: NOW - 30 })).toMatchObject({ ok: true });
  });

  it('honours custom required components and time windows', () => {
    expect(verify(signed(), { requiredComponents: ['@method'] })).toMatchObject({ ok: true });
    expect(verify(signed(), { now: NOW + 1000, maxAgeSeconds: 1000 })).toMatchObject({ ok: true });
    expect(verify(signed(), { now: NOW - 100, maxSkewSeconds: 100 })).toMatchObject({ ok: true });
  });
});

describe('verifyRequest failures', () => {
  const reason = (result: ReturnType<typeof verify>) => (result.ok ? 'ok' : result.reason);

  it('missing-signature without signature headers', () => {
    expect(reason(verify({}))).toBe('missing-signature');
    const good = signed();
    const withoutSignature = { 'content-digest': good['content-digest'], 'signature-input': good['signature-input'] };
    expect(reason(verify(withoutSignature))).toBe('missing-signature');
    expect(reason(verify({ ...signed(), 'signature-input': '' }))).toBe('missing-signature');
  });

  it('malformed-signature for garbage Signature-Input', () => {
    expect(reason(verify({ ...signed(), 'signature-input': 'malus=("@method" created=' }))).toBe('malformed-signature');
    expect(reason(verify({ ...signed(), 'signature-input': '\u0000\u00ff garbage' }))).toBe('malformed-signature');
    expect(reason(verify({ ...signed(), 'signature-input': 'malus=?1' }))).toBe('malformed-signature');
    expect(reason(verify({ ...signed(), 'signature-input': 'malus=(@method);created=1;keyid="alice"' }))).toBe(
      'malformed-signature',
    );
  });

  it('malformed-signature for a Signature that is not one 64-byte byte sequence', () => {
    expect(reason(verify({ ...signed(), signature: 'malus=:AAAA:' }))).toBe('malformed-signature');
    expect(reason(verify({ ...signed(), signature: 'malus="text"' }))).toBe('malformed-signature');
    expect(reason(verify({ ...signed(), signature: 'other=:AAAA:' }))).toBe('malformed-signature');
  });

  it('bad-signature for a flipped byte in the signature', () => {
    const headers = signed();
    const bytes = Buffer.from(headers.signature.slice('malus=:'.length, -1), 'base64');
    bytes[10] = (bytes[10] ?? 0) ^ 0x01;
    expect(reason(verify({ ...headers, signature: `malus=:${bytes.toString('base64')}:` }))).toBe('bad-signature');
  });

  it('bad-signature for the wrong key', () => {
    expect(reason(verify(signed({ secretKey: mallory.secretKey })))).toBe('bad-signature');
    expect(reason(verify(signed(), { resolveKey: () => mallory.publicKey }))).toBe('bad-signature');
  });

  it('digest-mismatch when the body changed after signing', () => {
    const changed = new TextEncoder().encode('{"sql":"select * from t"}');
    expect(reason(verify(signed(), { body: changed }))).toBe('digest-mismatch');
  });

  it('bad-signature when the Content-Digest header was swapped for the new body', () => {
    const changed = new TextEncoder().encode('{"sql":"select * from t"}');
    const headers = { ...signed(), 'content-digest': contentDigest(changed) };
    expect(reason(verify(headers, { body: changed }))).toBe('bad-signature');
  });

  it('bad-signature when the method changed', () => {
    expect(reason(verify(signed(), { method: 'PUT' }))).toBe('bad-signature');
  });

  it('bad-signature when the URL changed', () => {
    expect(reason(verify(signed(), { url: URL_.replace('dry=1', 'dry=0') }))).toBe('bad-signature');
    expect(reason(verify(signed(), { url: URL_.replace('malus.example', 'evil.example') }))).toBe('bad-signature');
  });

  it('expired when created is 301 s in the past', () => {
    expect(reason(verify(signed({ created: NOW - 301 }), { now: NOW }))).toBe('expired');
  });

  it('expired when expires has passed', () => {
    const params = new Map<string, string | number>([
      ['created', NOW],
      ['expires', NOW + 10],
      ['nonce', 'n'],
      ['keyid', 'alice'],
    ]);
    const headers = customSignature(['@method', '@target-uri', 'content-digest'], params);
    expect(verify(headers, { now: NOW + 5 })).toMatchObject({ ok: true });
    expect(reason(verify(headers, { now: NOW + 11 }))).toBe('expired');
  });

  it('future when created is 10 minutes ahead', () => {
    expect(reason(verify(signed({ created: NOW + 600 }), { now: NOW }))).toBe('future');
  });

  it('missing-nonce without a nonce', () => {
    const params = new Map<string, string | number>([['created', NOW], ['keyid', 'alice'], ['alg', 'ed25519']]);
    expect(reason(verify(customSignature(['@method', '@target-uri', 'content-digest'], params)))).toBe('missing-nonce');
  });

  it('missing-component when content-digest is not covered', () => {
    const params = new Map<string, string | number>([['created', NOW], ['nonce', 'n'], ['keyid', 'alice']]);
    expect(reason(verify(customSignature(['@method', '@target-uri'], params)))).toBe('missing-component');
  });

  it('missing-component when a covered field is absent from the request', () => {
    const params = new Map<string, string | number>([['created', NOW], ['nonce', 'n'], ['keyid', 'alice']]);
    const message = { method: 'POST', url: URL_, headers: { 'content-digest': contentDigest(BODY), 'x-extra': '1' } };
    const components = ['@method', '@target-uri', 'content-digest', 'x-extra'];
    const signature = signEd25519(alice.secretKey, encodeSignatureBase(signatureBase(message, components, params)));
    const headers = {
      'content-digest': contentDigest(BODY),
      'signature-input': `malus=${serializeSignatureParams(components, params)}`,
      'signature': `malus=:${toBase64(signature)}:`,
    };
    expect(verify({ ...headers, 'x-extra': '1' })).toMatchObject({ ok: true });
    expect(reason(verify(headers))).toBe('missing-component');
  });

  it('unsupported-algorithm for alg="rsa-pss-sha512"', () => {
    const params = new Map<string, string | number>([
      ['created', NOW],
      ['nonce', 'n'],
      ['keyid', 'alice'],
      ['alg', 'rsa-pss-sha512'],
    ]);
    expect(reason(verify(customSignature(['@method', '@target-uri', 'content-digest'], params)))).toBe(
      'unsupported-algorithm',
    );
  });

  it('unknown-key for an unknown keyid', () => {
    const result = verify(signed({ keyId: 'nobody' }));
    expect(result).toMatchObject({ ok: false, reason: 'unknown-key' });
  });

  it('malformed-signature without created or keyid, or with badly typed parameters', () => {
    const components = ['@method', '@target-uri', 'content-digest'];
    const cases: Array<[string, string | number][]> = [
      [['nonce', 'n'], ['keyid', 'alice']],
      [['created', NOW], ['nonce', 'n']],
      [['created', String(NOW)], ['nonce', 'n'], ['keyid', 'alice']],
      [['created', NOW], ['nonce', 'n'], ['keyid', 'alice'], ['expires', 'never']],
    ];
    for (const entries of cases) {
      expect(reason(verify(customSignature(components, new Map(entries))))).toBe('malformed-signature');
    }
  });

  it('malformed-signature for duplicate or unsupported covered components', () => {
    const params = new Map<string, string | number>([['created', NOW], ['nonce', 'n'], ['keyid', 'alice']]);
    const base = signed();
    const input = (list: string) => `malus=(${list});${serializeSignatureParams([], params).slice(3)}`;
    const dup = input('"@method" "@method" "@target-uri" "content-digest"');
    expect(reason(verify({ ...base, 'signature-input': dup }))).toBe('malformed-signature');
    const proto = input('"@method" "@target-uri" "content-digest" "constructor"');
    expect(reason(verify({ ...base, 'signature-input': proto }))).toBe('missing-component');
    const withParams = input('"@method" "@target-uri" "content-digest";sf');
    expect(reason(verify({ ...base, 'signature-input': withParams }))).toBe('malformed-signature');
  });
});

describe('verifyRequest on hostile input', () => {
  it('never throws, whatever the headers hold', () => {
    const good = signed();
    const hostile: VerifyRequestParams['headers'][] = [
      { 'signature-input': 'x'.repeat(1_000_000), 'signature': good.signature },
      { ...good, 'signature': `malus=:${'A'.repeat(1_000_000)}:` },
      { ...good, 'content-digest': 'sha-256=' + ' '.repeat(100_000) + 'x' },
      { ...good, 'signature-input': good['signature-input'] + ' '.repeat(100_000) + 'x' },
      { ...good, 'content-digest': ['a'.repeat(10), '\r\n'] },
      { 'signature-input': 42 as unknown as string, 'signature': good.signature },
      { 'signature-input': [good['signature-input'], 7 as unknown as string], 'signature': good.signature },
      Object.create({ 'signature-input': good['signature-input'], 'signature': good.signature }) as Record<string, string>,
    ];
    for (const headers of hostile) {
      const result = verify(headers);
      expect(result.ok).toBe(false);
    }
  });

  it('survives random mutations of a valid signature', () => {
    const good = signed();
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let round = 0; round < 500; round++) {
      const field = next() % 2 === 0 ? 'signature-input' : 'signature';
      const text = good[field];
      const at = next() % text.length;
      const mutated = text.slice(0, at) + String.fromCharCode(next() % 256) + text.slice(at + 1);
      const result = verify({ ...good, [field]: mutated });
      expect(typeof result.ok).toBe('boolean');
    }
  });

  it('keeps key material out of details', () => {
    const headers = signed({ secretKey: mallory.secretKey });
    const result = verify(headers);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      for (const secret of [alice.secretKey, alice.publicKey, mallory.secretKey, mallory.publicKey]) {
        expect(result.detail).not.toContain(toBase64(secret));
      }
    }
  });

  it('passes exceptions from resolveKey through and rejects a NaN clock', () => {
    const broken = () => {
      throw new Error('key store down');
    };
    expect(() => verify(signed(), { resolveKey: broken })).toThrow('key store down');
    expect(() => verify(signed(), { now: Number.NaN })).toThrow(/finite/);
  });
});

describe('verifyRequest with the body deferred', () => {
  it('verifies from the headers and hands back the signed Content-Digest, which the body must then match', () => {
    const result = verify(signed(), { body: DEFERRED_BODY });
    expect(result.ok).toBe(true);
    const digest = result.ok ? result.pendingDigest : undefined;
    expect(digest).toBe(contentDigest(BODY));
    expect(checkContentDigest(digest, BODY)).toBeUndefined();
    expect(checkContentDigest(digest, new TextEncoder().encode('{"sql":"select 1"}'))).toBe('Content-Digest sha-256 does not match the body');
  });

  it('still refuses a bad signature, and a signature without its Content-Digest field', () => {
    expect(verify(signed({ secretKey: mallory.secretKey }), { body: DEFERRED_BODY })).toMatchObject({ ok: false, reason: 'bad-signature' });
    const withoutDigest: Record<string, string> = { ...signed() };
    delete withoutDigest['content-digest'];
    expect(verify(withoutDigest, { body: DEFERRED_BODY })).toMatchObject({ ok: false });
  });
});
