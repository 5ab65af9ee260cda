// The server's logs: pino JSON lines about requests, without headers, signatures or keys.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { toBase64, toBase64Url, toHex } from '../../src/crypto/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import {
  agreementFor,
  inject,
  makeParties,
  prepare,
  send,
  sign,
  startTestServer,
  submitSignature,
  uniqueId,
  type PreparedRequest,
  type TestServer,
} from './helpers.js';

const chunks: string[] = [];
const logText = (): string => chunks.join('');
let server: TestServer;
const parties = makeParties();
const sent: PreparedRequest[] = [];

beforeAll(async () => {
  const logger = pino({ level: 'info' }, { write: (chunk: string) => void chunks.push(chunk) });
  server = await startTestServer({ loggerInstance: logger });

  // A whole collaboration, and a few refused requests, all recorded.
  const record = async (request: PreparedRequest): Promise<number> => {
    sent.push(request);
    return (await inject(server, request)).statusCode;
  };
  const agreement = agreementFor(parties, uniqueId('logged'));
  const proposal = { agreement, signature: sign(agreement, parties.advertiser) };
  expect(await record(prepare(server, { method: 'POST', path: '/v1/collaborations', json: proposal, as: parties.advertiser }))).toBe(201);
  const signature = sign(agreement, parties.publisher);
  const signing = prepare(server, { method: 'POST', path: `/v1/collaborations/${agreement.id}/signatures`, json: signature, as: parties.publisher });
  expect(await record(signing)).toBe(201);
  expect(await record(signing)).toBe(401); // replayed
  expect(await record(prepare(server, { method: 'GET', path: '/v1/collaborations', as: parties.operator }))).toBe(200);
  expect(await record(prepare(server, { method: 'GET', path: `/v1/collaborations/${agreement.id}/agreement`, as: parties.advertiser }))).toBe(200);
  expect(
    await record(prepare(server, { method: 'GET', path: '/v1/collaborations', as: parties.advertiser, secretKey: parties.publisher.signingSecret })),
  ).toBe(401);
  expect(await record(prepare(server, { method: 'POST', path: '/v1/collaborations', raw: '{"__proto__":{}}', as: parties.advertiser }))).toBe(400);
  expect((await submitSignature(server, parties.advertiser, agreement.id, signature)).statusCode).toBe(403);
  expect((await send(server, { method: 'GET', path: '/nope', as: parties.operator })).statusCode).toBe(404);
});

afterAll(async () => {
  await server.close();
});

function secretForms(keys: PartyKeys): string[] {
  return [keys.signingSecret, keys.encryptionSecret].flatMap((secret) => [toBase64Url(secret), toBase64(secret), toHex(secret)]);
}

describe('logs', () => {
  it('are written, one JSON object a line, about each request', () => {
    const lines = logText().trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(sent.length * 2);
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.filter((e) => e.msg === 'incoming request').length).toBeGreaterThanOrEqual(sent.length);
    expect(entries.filter((e) => e.msg === 'request completed').length).toBeGreaterThanOrEqual(sent.length);
    // Refused signatures are logged with their reason.
    const refusals = entries.filter((e) => e.msg === 'request signature refused').map((e) => e.reason);
    expect(refusals).toEqual(expect.arrayContaining(['bad-signature']));
  });

  it('contain no secret key, in any encoding', () => {
    const text = logText();
    for (const party of Object.values(parties)) {
      for (const secret of secretForms(party)) expect(text).not.toContain(secret);
    }
  });

  it('contain no signature header, signature input or digest', () => {
    const text = logText();
    for (const request of sent) {
      const signature = request.headers.signature!;
      expect(text).not.toContain(signature);
      // The bare base64 signature, without the `malus=:…:` wrapping.
      expect(text).not.toContain(signature.slice('malus=:'.length, -1));
      expect(text).not.toContain(request.headers['signature-input']!);
      expect(text).not.toContain(request.headers['content-digest']!.slice('sha-256=:'.length, -1));
    }
    expect(text.toLowerCase()).not.toContain('signature-input');
  });
});
