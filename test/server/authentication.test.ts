// Request signatures (RFC 9421): every way a request can fail authentication answers 401
// unauthenticated with the reason in the detail, and nothing is done on its behalf.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agreementHash } from '../../src/agreement/index.js';
import { generateSigningKeyPair, signEd25519, toBase64, toBase64Url } from '../../src/crypto/index.js';
import { contentDigest, encodeSignatureBase, serializeSignatureParams, signatureBase } from '../../src/httpsig/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import { MAX_CLOCK_SKEW_SECONDS, MAX_SIGNATURE_AGE_SECONDS } from '../../src/server/index.js';
import {
  BASE_URL,
  HOST,
  NOW,
  NOW_SECONDS,
  agreementFor,
  expectProblem,
  inject,
  makeParties,
  prepare,
  send,
  show,
  sign,
  startTestServer,
  uniqueId,
  type InjectResponse,
  type SendOptions,
  type TestServer,
} from './helpers.js';

let server: TestServer;
const alice = generatePartyKeys('Alice');

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  server.clock.now = NOW;
});

const LIST: SendOptions = { method: 'GET', path: '/v1/collaborations', as: alice };

function expectUnauthenticated(response: InjectResponse, reason: string): string {
  const problem = expectProblem(response, 401, 'unauthenticated', `request signature refused (${reason})`);
  expect(problem.instance).toBeDefined();
  return problem.detail;
}

describe('signed requests are accepted', () => {
  it('accepts a well-signed GET and POST', async () => {
    expect((await send(server, LIST)).statusCode).toBe(200);
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('auth'));
    const response = await send(server, {
      method: 'POST',
      path: '/v1/collaborations',
      json: { agreement, signature: sign(agreement, parties.advertiser) },
      as: parties.advertiser,
    });
    expect(response.statusCode, response.body).toBe(201);
  });

  it(`accepts created up to ${MAX_SIGNATURE_AGE_SECONDS}s old and ${MAX_CLOCK_SKEW_SECONDS}s ahead`, async () => {
    expect((await send(server, { ...LIST, created: NOW_SECONDS - MAX_SIGNATURE_AGE_SECONDS })).statusCode).toBe(200);
    expect((await send(server, { ...LIST, created: NOW_SECONDS + MAX_CLOCK_SKEW_SECONDS })).statusCode).toBe(200);
  });

  it('reconstructs the target URI from the Host header, query string included', async () => {
    const parties = makeParties();
    const id = uniqueId('query');
    const agreement = agreementFor(parties, id);
    const proposed = await send(server, {
      method: 'POST',
      path: '/v1/collaborations',
      json: { agreement, signature: sign(agreement, parties.advertiser) },
      as: parties.advertiser,
    });
    expect(proposed.statusCode).toBe(201);
    const path = `/v1/collaborations/${id}/agreement?version=1`;
    const ok = await send(server, { method: 'GET', path, as: parties.advertiser });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().hash).toBe(agreementHash(agreement));

    // Signed for another host, or without the query: the signature is over another URI.
    expectUnauthenticated(
      await send(server, { method: 'GET', path, as: parties.advertiser, signedUrl: `http://other.example${path}` }),
      'bad-signature',
    );
    expectUnauthenticated(
      await send(server, { method: 'GET', path, as: parties.advertiser, signedUrl: `${BASE_URL}/v1/collaborations/${id}/agreement` }),
      'bad-signature',
    );
  });
});

describe('behind a proxy (publicBaseUrl)', () => {
  let proxied: TestServer;

  beforeAll(async () => {
    proxied = await startTestServer({ publicBaseUrl: 'https://malus.example.com/' });
  });

  afterAll(async () => {
    await proxied.close();
  });

  it('checks signatures against the public URL, whatever the Host header says', async () => {
    const path = '/v1/collaborations';
    const publicUrl = `https://malus.example.com${path}`;
    expect((await send(proxied, { method: 'GET', path, as: alice, signedUrl: publicUrl })).statusCode).toBe(200);
    expect((await send(proxied, { method: 'GET', path, as: alice, signedUrl: publicUrl, headers: { host: '10.0.0.7:8787' } })).statusCode).toBe(200);
    // The URL the proxy forwarded to is not the one clients sign.
    expectUnauthenticated(await send(proxied, { method: 'GET', path, as: alice }), 'bad-signature');
    expectUnauthenticated(await send(proxied, { method: 'GET', path, as: alice, signedUrl: `http://malus.example.com${path}` }), 'bad-signature');
  });
});

describe('refused signatures (401 unauthenticated)', () => {
  it('refuses a request without signature headers', async () => {
    const detail = expectUnauthenticated(await send(server, { method: 'GET', path: '/v1/collaborations' }), 'missing-signature');
    expect(detail).toContain('signature-input header is missing');
    // Signature-Input without Signature.
    const prepared = prepare(server, LIST);
    const headers = { ...prepared.headers };
    delete headers.signature;
    expectUnauthenticated(await inject(server, { ...prepared, headers }), 'missing-signature');
  });

  it('refuses a garbage Signature-Input or Signature', async () => {
    expectUnauthenticated(await send(server, { ...LIST, headers: { 'signature-input': 'this is ((( not a dictionary' } }), 'malformed-signature');
    expectUnauthenticated(await send(server, { ...LIST, headers: { 'signature-input': 'malus=:AAAA:' } }), 'malformed-signature');
    expectUnauthenticated(await send(server, { ...LIST, headers: { signature: 'malus=:c2hvcnQ=:' } }), 'malformed-signature');
    expectUnauthenticated(await send(server, { ...LIST, headers: { signature: 'malus="not bytes"' } }), 'malformed-signature');
    expectUnauthenticated(await send(server, { ...LIST, headers: { 'signature-input': 'x'.repeat(9000) } }), 'malformed-signature');
  });

  it('refuses a stale request (created 6 minutes before the server clock)', async () => {
    const detail = expectUnauthenticated(await send(server, { ...LIST, created: NOW_SECONDS - 360 }), 'expired');
    expect(detail).toContain('older than the allowed age');
    expectUnauthenticated(await send(server, { ...LIST, created: NOW_SECONDS - MAX_SIGNATURE_AGE_SECONDS - 1 }), 'expired');
  });

  it('refuses a request from the future (created 10 minutes ahead)', async () => {
    const detail = expectUnauthenticated(await send(server, { ...LIST, created: NOW_SECONDS + 600 }), 'future');
    expect(detail).toContain('future');
    expectUnauthenticated(await send(server, { ...LIST, created: NOW_SECONDS + MAX_CLOCK_SKEW_SECONDS + 1 }), 'future');
  });

  it('judges age by the server clock, not the wall clock', async () => {
    const prepared = prepare(server, LIST);
    server.clock.now = new Date(NOW.getTime() + 6 * 60 * 1000);
    expectUnauthenticated(await inject(server, prepared), 'expired');
  });

  it('does not spend a nonce on a request whose signature fails', async () => {
    // Someone who saw a nonce cannot burn it with a forged request...
    const nonce = `nonce-${uniqueId()}`;
    const mallory = generatePartyKeys('Mallory');
    expectUnauthenticated(await send(server, { ...LIST, nonce, secretKey: mallory.signingSecret }), 'bad-signature');
    expectUnauthenticated(await send(server, { ...LIST, nonce, created: NOW_SECONDS - 1000 }), 'expired');
    // ...so the key's own request with that nonce still goes through.
    expect((await send(server, { ...LIST, nonce })).statusCode).toBe(200);
  });

  it('refuses a replayed request', async () => {
    const prepared = prepare(server, LIST);
    expect((await inject(server, prepared)).statusCode).toBe(200);
    const detail = expectUnauthenticated(await inject(server, prepared), 'replayed-nonce');
    expect(detail).toMatch(/replayed-nonce\): this nonce was already used/);
    // Later in the window it is still a replay.
    server.clock.now = new Date(NOW.getTime() + 200 * 1000);
    expectUnauthenticated(await inject(server, prepared), 'replayed-nonce');
  });

  it('refuses a replayed proposal without storing anything twice', async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('replayed'));
    const prepared = prepare(server, {
      method: 'POST',
      path: '/v1/collaborations',
      json: { agreement, signature: sign(agreement, parties.advertiser) },
      as: parties.advertiser,
    });
    expect((await inject(server, prepared)).statusCode).toBe(201);
    expectUnauthenticated(await inject(server, prepared), 'replayed-nonce');
    expect((await show(server, parties.advertiser, agreement.id)).json().versions).toHaveLength(1);
  });

  it('treats a nonce as single-use per key, not per request', async () => {
    const nonce = `nonce-${uniqueId()}`;
    expect((await send(server, { ...LIST, nonce })).statusCode).toBe(200);
    // A different request (another URL) signed with the same nonce by the same key is refused...
    expectUnauthenticated(await send(server, { method: 'GET', path: '/v1/collaborations/some-id', as: alice, nonce }), 'replayed-nonce');
    // ...while another key may use the same nonce.
    expect((await send(server, { ...LIST, as: generatePartyKeys('Bob'), nonce })).statusCode).toBe(200);
  });

  it('refuses a signature made with another secret than the keyid names', async () => {
    const mallory = generatePartyKeys('Mallory');
    const detail = expectUnauthenticated(await send(server, { ...LIST, secretKey: mallory.signingSecret }), 'bad-signature');
    expect(detail).toContain('does not verify');
  });

  it('refuses a body altered after signing', async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('altered'));
    const body = JSON.stringify({ agreement, signature: sign(agreement, parties.advertiser) });
    const options: SendOptions = { method: 'POST', path: '/v1/collaborations', raw: body, as: parties.advertiser };

    // The signed Content-Digest no longer matches the bytes that arrive.
    const altered = body.replace(agreement.title, 'Campaign reach and conversions, altered');
    const detail = expectUnauthenticated(await send(server, { ...options, raw: altered, signedBody: body }), 'digest-mismatch');
    expect(detail).toContain('does not match the body');
    // A Content-Digest recomputed for the new body is not the one the signature covers.
    expectUnauthenticated(
      await send(server, { ...options, raw: altered, signedBody: body, headers: { 'content-digest': contentDigest(Buffer.from(altered)) } }),
      'bad-signature',
    );
    // Neither request created anything.
    expect((await show(server, parties.advertiser, agreement.id)).statusCode).toBe(404);
  });

  it('refuses a URL or method altered after signing', async () => {
    const detail = expectUnauthenticated(
      await send(server, { method: 'GET', path: '/v1/collaborations/other-id', as: alice, signedUrl: `${BASE_URL}/v1/collaborations` }),
      'bad-signature',
    );
    expect(detail).toContain('does not verify over the signature base');
    // Signed as a POST without a body, sent as a GET.
    const prepared = prepare(server, { method: 'POST', path: '/v1/collaborations', as: alice });
    expectUnauthenticated(await inject(server, { ...prepared, method: 'GET' }), 'bad-signature');
    // The Host header is part of the target URI.
    expectUnauthenticated(await send(server, { ...LIST, headers: { host: 'evil.example' } }), 'bad-signature');
  });

  it('refuses a keyid that is not an Ed25519 public key', async () => {
    // The identity point (y = 1) has small order: 32 bytes that decode, but no usable key.
    const identityPoint = new Uint8Array(32);
    identityPoint[0] = 1;
    const secretKey = generateSigningKeyPair().secretKey;
    for (const keyId of [toBase64Url(identityPoint), 'not-a-key', toBase64Url(new Uint8Array(31).fill(7)), `${alice.identity.signingKey}=`]) {
      const detail = expectUnauthenticated(await send(server, { ...LIST, keyId, secretKey }), 'unknown-key');
      expect(detail).toContain('no key for keyid');
    }
  });

  describe('hand-made signatures that break the profile', () => {
    /** Signs GET /v1/collaborations with the given components and parameters. */
    function forged(components: string[], params: [string, string | number][], label = 'malus'): Record<string, string> {
      const url = `${BASE_URL}/v1/collaborations`;
      const digest = contentDigest(new Uint8Array(0));
      const parameters = new Map<string, string | number>(params);
      const base = signatureBase({ method: 'GET', url, headers: { 'content-digest': digest } }, components, parameters);
      const signature = signEd25519(alice.signingSecret, encodeSignatureBase(base));
      return {
        host: HOST,
        'content-digest': digest,
        'signature-input': `${label}=${serializeSignatureParams(components, parameters)}`,
        signature: `${label}=:${toBase64(signature)}:`,
      };
    }
    const get = (headers: Record<string, string>): Promise<InjectResponse> =>
      inject(server, { method: 'GET', url: '/v1/collaborations', headers });
    const all = ['@method', '@target-uri', 'content-digest'];
    const keyid: [string, string] = ['keyid', alice.identity.signingKey];
    const created = (): [string, number] => ['created', NOW_SECONDS];
    const nonce = (): [string, string] => ['nonce', `n-${uniqueId()}`];

    it('is accepted when it follows the profile, under any single label', async () => {
      expect((await get(forged(all, [created(), nonce(), keyid, ['alg', 'ed25519']]))).statusCode).toBe(200);
      expect((await get(forged(all, [created(), nonce(), keyid], 'other'))).statusCode).toBe(200);
    });

    it('refuses a signature that does not cover content-digest or @target-uri', async () => {
      const detail = expectUnauthenticated(await get(forged(['@method', '@target-uri'], [created(), nonce(), keyid])), 'missing-component');
      expect(detail).toContain('content-digest');
      expectUnauthenticated(await get(forged(['@method', 'content-digest'], [created(), nonce(), keyid])), 'missing-component');
    });

    it('refuses a signature without nonce or created', async () => {
      expectUnauthenticated(await get(forged(all, [created(), keyid])), 'missing-nonce');
      expectUnauthenticated(await get(forged(all, [nonce(), keyid])), 'malformed-signature');
    });

    it('refuses another algorithm', async () => {
      expectUnauthenticated(await get(forged(all, [created(), nonce(), keyid, ['alg', 'hmac-sha256']])), 'unsupported-algorithm');
    });
  });

  it('does not authenticate a signed request as anyone but the keyid: proposals check the caller', async () => {
    // Alice signs a request carrying the advertiser's proposal: she is not a party to it.
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('impostor'));
    const response = await send(server, {
      method: 'POST',
      path: '/v1/collaborations',
      json: { agreement, signature: sign(agreement, parties.advertiser) },
      as: alice,
    });
    expectProblem(response, 403, 'forbidden');
  });

  it('checks the signature before the body: an unsigned invalid body is 401, not 400', async () => {
    const response = await send(server, { method: 'POST', path: '/v1/collaborations', json: { agreement: { nonsense: true } } });
    expectUnauthenticated(response, 'missing-signature');
    expect(response.json().issues).toBeUndefined();
  });
});
