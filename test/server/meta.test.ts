// The public routes (health, OpenAPI) and requests that match no route.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePartyKeys } from '../../src/identity/index.js';
import { API_VERSION } from '../../src/server/index.js';
import { HOST, expectProblem, send, startTestServer, type TestServer } from './helpers.js';

let server: TestServer;
const alice = generatePartyKeys('Alice');

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
});

describe('GET /healthz', () => {
  it('answers without a signature', async () => {
    const response = await server.app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({ status: 'ok', version: API_VERSION });
  });

  it('answers a signed request too, and HEAD', async () => {
    expect((await send(server, { method: 'GET', path: '/healthz', as: alice })).json()).toEqual({ status: 'ok', version: API_VERSION });
    expect((await server.app.inject({ method: 'HEAD', url: '/healthz', headers: { host: HOST } })).statusCode).toBe(200);
  });
});

describe('GET /openapi.json', () => {
  const ROUTES: Record<string, string[]> = {
    '/healthz': ['get'],
    '/v1/collaborations': ['get', 'post'],
    '/v1/collaborations/{id}': ['get'],
    '/v1/collaborations/{id}/signatures': ['post'],
    '/v1/collaborations/{id}/agreement': ['get'],
    '/v1/collaborations/{id}/budget': ['get'],
    '/v1/collaborations/{id}/runs': ['get', 'post'],
    '/v1/collaborations/{id}/runs/{run}': ['get'],
    '/v1/collaborations/{id}/runs/{run}/messages': ['get', 'post'],
    '/v1/collaborations/{id}/runs/{run}/finish': ['post'],
    '/v1/log/checkpoint': ['get'],
    '/v1/log/checkpoints': ['get'],
    '/v1/log/key': ['get'],
    '/v1/log/tile/{*}': ['get'],
    '/v1/log/proof/inclusion': ['get'],
    '/v1/log/proof/consistency': ['get'],
    '/v1/log/entries': ['get'],
    '/v1/log/receipt': ['get'],
    '/v1/log/cosignatures': ['post'],
  };
  let spec: any;

  beforeAll(async () => {
    const response = await server.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    spec = response.json();
  });

  it('is OpenAPI 3.1 and lists every route with its methods', () => {
    expect(spec.openapi).toBe('3.1.0');
    expect(spec.info).toMatchObject({ title: 'Malus API', version: API_VERSION });
    expect(Object.keys(spec.paths).sort()).toEqual(Object.keys(ROUTES).sort());
    for (const [path, methods] of Object.entries(ROUTES)) {
      const operations = Object.keys(spec.paths[path]).filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key));
      expect(operations.sort(), path).toEqual(methods);
    }
  });

  // Public: liveness and what a log monitor needs (checkpoints, the key, tiles, proofs).
  const PUBLIC = new Set([
    '/healthz',
    '/v1/log/checkpoint',
    '/v1/log/checkpoints',
    '/v1/log/key',
    '/v1/log/tile/{*}',
    '/v1/log/proof/inclusion',
    '/v1/log/proof/consistency',
  ]);

  it('describes the request signature and requires it on every route but the public ones', () => {
    expect(spec.components.securitySchemes.httpMessageSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'Signature' });
    for (const [path, methods] of Object.entries(ROUTES)) {
      for (const method of methods) {
        const security = spec.paths[path][method].security;
        if (PUBLIC.has(path)) expect(security, path).toBeUndefined();
        else expect(security, `${method} ${path}`).toEqual([{ httpMessageSignature: [] }]);
      }
    }
  });

  it('has the request body schemas of the two POST routes', () => {
    const propose = spec.paths['/v1/collaborations'].post.requestBody;
    expect(propose.required).toBe(true);
    const proposeSchema = propose.content['application/json'].schema;
    expect(proposeSchema).toMatchObject({ type: 'object', required: ['agreement', 'signature'], additionalProperties: false });
    expect(proposeSchema.properties.agreement.properties.format).toEqual({ type: 'string', enum: ['malus.agreement/v1'] });
    expect(Object.keys(proposeSchema.properties.agreement.properties)).toEqual(
      expect.arrayContaining(['format', 'id', 'version', 'previous', 'parties', 'tables', 'receivers', 'enclave']),
    );
    expect(Object.keys(proposeSchema.properties.signature.properties).sort()).toEqual(
      ['collaboration', 'format', 'hash', 'signature', 'signedAt', 'signer', 'version'].sort(),
    );

    const signature = spec.paths['/v1/collaborations/{id}/signatures'].post.requestBody;
    expect(signature.required).toBe(true);
    expect(signature.content['application/json'].schema).toMatchObject({
      type: 'object',
      additionalProperties: false,
      properties: { hash: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' } },
    });
  });

  it('has the path and query parameters', () => {
    for (const path of Object.keys(ROUTES).filter((p) => p.includes('{id}'))) {
      const method = ROUTES[path]![0]!;
      const id = (spec.paths[path][method].parameters as any[]).find((p) => p.name === 'id');
      expect(id, path).toMatchObject({ in: 'path', required: true, schema: { type: 'string' } });
    }
    const version = (spec.paths['/v1/collaborations/{id}/agreement'].get.parameters as any[]).find((p) => p.name === 'version');
    expect(version).toMatchObject({ in: 'query', required: false });
  });

  it('lists the answers of each route, problems included', () => {
    const codes = (path: string, method: string): string[] => Object.keys(spec.paths[path][method].responses).sort();
    expect(codes('/v1/collaborations', 'post')).toEqual(['201', '400', '401', '403', '404', '409', '413', '422']);
    expect(codes('/v1/collaborations/{id}/signatures', 'post')).toEqual(['200', '201', '400', '401', '403', '404', '413', '422']);
    expect(codes('/v1/collaborations/{id}', 'get')).toEqual(['200', '400', '401', '404', '413']);
    const view = spec.paths['/v1/collaborations/{id}'].get.responses['200'].content['application/json'].schema;
    expect(Object.keys(view.properties).sort()).toEqual(['activeHash', 'id', 'latestHash', 'state', 'title', 'versions']);
  });
});

describe('requests that match no route', () => {
  it('answers 404 not-found as a problem, with or without a signature', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/v1'],
      ['GET', '/v1/collaborations/some-id/members'],
      ['DELETE', '/v1/collaborations'],
      ['PUT', '/v1/collaborations/some-id'],
      ['POST', '/healthz'],
    ] as const) {
      const unsigned = await send(server, { method, path });
      const problem = expectProblem(unsigned, 404, 'not-found', 'no such route');
      expect(problem.instance).toBe(path);
      const signed = await send(server, { method, path, as: alice });
      expect(signed.body).toBe(unsigned.body);
    }
  });

  it('drops the query string from instance', async () => {
    const problem = expectProblem(await send(server, { method: 'GET', path: '/nope?token=abc' }), 404, 'not-found');
    expect(problem.instance).toBe('/nope');
  });
});
