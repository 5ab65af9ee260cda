// Request bodies: JSON only, at most 1 MiB, no prototype keys, and validated with every issue
// reported under its path in the request.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Agreement } from '../../src/agreement/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import { DEFAULT_BODY_LIMIT } from '../../src/server/index.js';
import {
  NOW,
  agreementFor,
  establish,
  expectProblem,
  makeParties,
  send,
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

const PROPOSE = { method: 'POST', path: '/v1/collaborations' } as const;

function proposeRaw(raw: string | Buffer, options: Partial<SendOptions> = {}): Promise<InjectResponse> {
  return send(server, { ...PROPOSE, raw, as: alice, ...options });
}

describe('body size', () => {
  it(`refuses a signed body over ${DEFAULT_BODY_LIMIT} bytes with 413 payload-too-large, and an unsigned one before reading it (401)`, async () => {
    const big = JSON.stringify({ padding: 'x'.repeat(DEFAULT_BODY_LIMIT) });
    expect(Buffer.byteLength(big)).toBeGreaterThan(DEFAULT_BODY_LIMIT);
    expectProblem(await proposeRaw(big), 413, 'payload-too-large', 'request body is larger than the server accepts');
    expectProblem(await send(server, { method: 'POST', path: '/v1/collaborations/some-id/signatures', raw: big, as: alice }), 413, 'payload-too-large');
    // The signature is checked from the headers, before the body: a stranger's bytes are never buffered.
    expectProblem(await send(server, { ...PROPOSE, raw: big }), 401, 'unauthenticated', 'request signature refused (missing-signature)');
    expectProblem(await send(server, { ...PROPOSE, raw: 'not json' }), 401, 'unauthenticated');
  });

  it('reads a body just under the limit (and then validates it)', async () => {
    const padding = 'x'.repeat(DEFAULT_BODY_LIMIT - 100);
    const response = await proposeRaw(JSON.stringify({ padding }));
    const problem = expectProblem(response, 400, 'invalid-input');
    expect(problem.issues).toContainEqual({ path: 'body.padding', message: 'unknown field' });
  });
});

describe('media types and JSON', () => {
  it('refuses a body that is not JSON although it says application/json', async () => {
    for (const raw of ['{"agreement": ', 'not json at all', '{"a":1}{"b":2}', "{'single': 'quotes'}", '']) {
      expectProblem(await proposeRaw(raw), 400, 'malformed-body', 'request body must be a JSON document (application/json)');
    }
  });

  it('refuses text/plain and other media types, even when the text is JSON', async () => {
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
      expectProblem(await proposeRaw('{"agreement": {}}', { contentType }), 400, 'malformed-body', 'request body must be a JSON document');
    }
  });

  it('refuses a body sent without a content type', async () => {
    const response = await send(server, { ...PROPOSE, raw: '{}', as: alice, headers: { 'content-type': '' } });
    expectProblem(response, 400, 'malformed-body');
  });

  it('accepts application/json with charset=utf-8, and refuses another charset', async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('charset'));
    const json = { agreement, signature: sign(agreement, parties.advertiser) };
    const response = await send(server, { ...PROPOSE, json, as: parties.advertiser, contentType: 'application/json; charset=utf-8' });
    expect(response.statusCode, response.body).toBe(201);
    const other = agreementFor(parties, uniqueId('charset'));
    expectProblem(
      await send(server, {
        ...PROPOSE,
        json: { agreement: other, signature: sign(other, parties.advertiser) },
        as: parties.advertiser,
        contentType: 'application/json; charset=iso-8859-1',
      }),
      400,
      'malformed-body',
      'UTF-8',
    );
  });

  it('refuses the keys __proto__, constructor and prototype anywhere in the body', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const top = `{"${key}": {"polluted": true}}`;
      expectProblem(await proposeRaw(top), 400, 'malformed-body', `request body may not contain the key "${key}"`);
      const nested = `{"agreement": {"tables": [{"${key}": {}}]}, "signature": {}}`;
      expectProblem(await proposeRaw(nested), 400, 'malformed-body', `"${key}"`);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('validation of the proposal body', () => {
  function proposal(mutate: (agreement: any) => void): { agreement: Agreement; json: unknown; parties: ReturnType<typeof makeParties> } {
    const parties = makeParties();
    const agreement = structuredClone(agreementFor(parties, uniqueId('invalid')));
    mutate(agreement);
    return { agreement, parties, json: { agreement, signature: sign(agreement, parties.advertiser) } };
  }

  async function propose(json: unknown, as: SendOptions['as']): Promise<InjectResponse> {
    return send(server, { ...PROPOSE, json, as });
  }

  it('reports an unknown field in the agreement under body.agreement', async () => {
    const { json, parties } = proposal((a) => {
      a.colour = 'blue';
      a.tables[0].columns[1].nullable = true;
    });
    const problem = expectProblem(await propose(json, parties.advertiser), 400, 'invalid-input', 'request body is invalid');
    expect(problem.instance).toBe('/v1/collaborations');
    expect(problem.issues).toEqual([
      { path: 'body.agreement.tables[0].columns[1].nullable', message: 'unknown field' },
      { path: 'body.agreement.colour', message: 'unknown field' },
    ]);
  });

  it('reports every schema issue with its path and message', async () => {
    const { json, parties } = proposal((a) => {
      a.version = 0;
      a.tables[0].owner = 'Advertiser';
      a.enclave.platforms = ['sim', 'quantum'];
      delete a.receivers;
    });
    const problem = expectProblem(await propose(json, parties.advertiser), 400, 'invalid-input');
    expect(problem.issues).toEqual([
      { path: 'body.agreement.version', message: 'expected at least 1' },
      { path: 'body.agreement.tables[0].owner', message: 'expected a party id (20 lower-case hex characters)' },
      { path: 'body.agreement.receivers', message: 'required (expected array)' },
      { path: 'body.agreement.enclave.platforms[1]', message: 'expected one of sim, nitro, sev-snp, tdx' },
      // The proposer signed version 0 too: every issue of the body is reported, not the first.
      { path: 'body.signature.version', message: 'expected at least 1' },
    ]);
  });

  it('reports a duplicate party id with the cross-check paths under body.agreement', async () => {
    const { json, parties } = proposal((a) => {
      a.parties = [...a.parties, structuredClone(a.parties[0])];
    });
    const id = parties.advertiser.identity.id;
    const problem = expectProblem(await propose(json, parties.advertiser), 400, 'agreement-invalid', 'agreement has 2 errors');
    expect(problem.issues).toEqual([
      { path: 'body.agreement.parties[3].id', message: `duplicate party id ${id}` },
      { path: 'body.agreement.parties[3].signingKey', message: 'duplicate signing key' },
    ]);
  });

  it('reports a table owner without the provider role', async () => {
    const { json, parties } = proposal((a) => {
      a.tables[1].owner = a.parties[2].id;
    });
    const operator = parties.operator.identity.id;
    const problem = expectProblem(await propose(json, parties.advertiser), 400, 'agreement-invalid', 'agreement has 1 error');
    expect(problem.issues).toEqual([
      { path: 'body.agreement.tables[1].owner', message: `party ${operator} (Operator) must have the provider role` },
    ]);
  });

  it('reports several cross-check issues at once, including ones about the whole agreement', async () => {
    const { json, parties } = proposal((a) => {
      for (const party of a.parties as Agreement['parties']) party.roles = party.roles.filter((r) => r !== 'signer');
      a.validUntil = a.validFrom;
      a.receivers = [a.parties[1].id];
    });
    const publisher = parties.publisher.identity.id;
    const problem = expectProblem(await propose(json, parties.advertiser), 400, 'agreement-invalid', 'agreement has 3 errors');
    expect(problem.issues).toEqual([
      { path: 'body.agreement.parties', message: 'at least one party must have the signer role' },
      { path: 'body.agreement.receivers[0]', message: `party ${publisher} (Publisher) must have the receiver role` },
      { path: 'body.agreement.validUntil', message: 'must be after validFrom' },
    ]);
  });

  it('reports a missing or malformed signature under body.signature', async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('nosig'));
    const missing = expectProblem(await propose({ agreement }, parties.advertiser), 400, 'invalid-input');
    expect(missing.issues).toEqual([{ path: 'body.signature', message: 'required (expected object)' }]);

    const signature = { ...sign(agreement, parties.advertiser), signature: 'short', extra: 1 };
    const malformed = expectProblem(await propose({ agreement, signature }, parties.advertiser), 400, 'invalid-input');
    expect(malformed.issues).toEqual([
      { path: 'body.signature.signature', message: 'expected 64 bytes of base64url' },
      { path: 'body.signature.extra', message: 'unknown field' },
    ]);
  });

  it('reports a body that is not an object, or is missing', async () => {
    const array = expectProblem(await proposeRaw('[]'), 400, 'invalid-input');
    expect(array.issues).toEqual([{ path: 'body', message: 'expected object, received array' }]);
    const none = expectProblem(await send(server, { ...PROPOSE, as: alice }), 400, 'invalid-input');
    expect(none.issues).toEqual([{ path: 'body', message: 'expected object, received null' }]);
  });
});

describe('validation of the other routes', () => {
  it('reports an invalid collaboration id in the path', async () => {
    for (const path of ['/v1/collaborations/UPPER', '/v1/collaborations/ab', '/v1/collaborations/-leading-dash']) {
      const problem = expectProblem(await send(server, { method: 'GET', path, as: alice }), 400, 'invalid-input', 'request params is invalid');
      expect(problem.issues).toEqual([{ path: 'params.id', message: 'expected a collaboration id' }]);
    }
  });

  it('reports an invalid signature body', async () => {
    const parties = makeParties();
    const { id, agreement } = await establish(server, parties);
    const signature = sign(agreement, parties.publisher);
    const withoutSigner: Partial<typeof signature> = { ...signature };
    delete withoutSigner.signer;
    const response = await send(server, {
      method: 'POST',
      path: `/v1/collaborations/${id}/signatures`,
      json: { ...withoutSigner, format: 'malus.signature/v0', hash: 'sha256:00' },
      as: parties.publisher,
    });
    const problem = expectProblem(response, 400, 'invalid-input', 'request body is invalid');
    expect(problem.issues).toEqual([
      { path: 'body.format', message: 'expected malus.signature/v1' },
      { path: 'body.hash', message: 'expected sha256:<64 lower-case hex>' },
      { path: 'body.signer', message: 'required (expected string)' },
    ]);
  });
});
