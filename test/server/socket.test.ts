// The server on a real loopback socket, driven by the client SDK: the signatures cover the URI the
// client really used, errors come back as MalusErrors, and closing lets in-flight requests finish.

import { statSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import {
  createClient,
  getAgreement,
  getCollaboration,
  getHealth,
  getOpenApi,
  listCollaborations,
  proposeCollaboration,
  signCollaboration,
  type MalusClient,
} from '../../src/client/index.js';
import { isMalusError, type MalusError } from '../../src/errors/index.js';
import { signRequest } from '../../src/httpsig/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { API_VERSION, startServer, type RunningServer } from '../../src/server/index.js';
import { makeParties, removeDir, tempDir, type Parties } from './helpers.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<MalusError> {
  const outcome = await promise.then(
    (value: unknown) => ({ resolved: value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.resolved)}`);
  expect(isMalusError(outcome.error), String(outcome.error)).toBe(true);
  return outcome.error as MalusError;
}

function agreementNow(parties: Parties, id: string): Agreement {
  return exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - DAY_MS) },
  );
}

function signNow(agreement: Agreement, party: PartyKeys) {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
}

describe('through a real socket with the client SDK', () => {
  let dataDir: string;
  let running: RunningServer;
  let parties: Parties;
  let clients: Record<'advertiser' | 'publisher' | 'operator' | 'stranger', MalusClient>;

  beforeAll(async () => {
    dataDir = join(tempDir(), 'data');
    running = await startServer({ dataDir, host: '127.0.0.1', port: 0 });
    parties = makeParties();
    const client = (keys: PartyKeys): MalusClient => createClient({ server: running.url, keys, timeoutMs: 10_000 });
    clients = {
      advertiser: client(parties.advertiser),
      publisher: client(parties.publisher),
      operator: client(parties.operator),
      stranger: client(generatePartyKeys('Stranger')),
    };
  });

  afterAll(async () => {
    await running.close();
    removeDir(join(dataDir, '..'));
  });

  it('listens on the loopback port it reports, with an owner-only data directory', async () => {
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(running.url).port)).toBeGreaterThan(0);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'malus.db')).isFile()).toBe(true);
    expect(await getHealth(clients.stranger)).toEqual({ status: 'ok', version: API_VERSION });
    const spec = await getOpenApi(clients.stranger);
    expect(spec.openapi).toBe('3.1.0');
  });

  it('proposes, signs, shows and lists a collaboration', async () => {
    const agreement = agreementNow(parties, 'socket-round-trip');
    const hash = agreementHash(agreement);

    const proposed = await proposeCollaboration(clients.advertiser, { agreement, signature: signNow(agreement, parties.advertiser) });
    expect(proposed).toMatchObject({ id: agreement.id, state: 'proposed', activeHash: null, latestHash: hash });
    expect(proposed.versions[0]).toMatchObject({ signed: [parties.advertiser.identity.id], missing: [parties.publisher.identity.id] });

    const signed = await signCollaboration(clients.publisher, agreement.id, signNow(agreement, parties.publisher));
    expect(signed).toMatchObject({ state: 'active', activeHash: hash });
    // Signing again is accepted (200) and changes nothing.
    expect(await signCollaboration(clients.publisher, agreement.id, signNow(agreement, parties.publisher))).toEqual(signed);

    expect(await getCollaboration(clients.operator, agreement.id)).toEqual(signed);
    expect(await listCollaborations(clients.publisher)).toEqual([signed]);
    expect(await listCollaborations(clients.stranger)).toEqual([]);

    const served = await getAgreement(clients.advertiser, agreement.id);
    expect(served.hash).toBe(hash);
    expect(served.agreement).toEqual(agreement);
    expect(served.signatures.map((s) => s.signer).sort()).toEqual([parties.advertiser.identity.id, parties.publisher.identity.id].sort());
    expect(await getAgreement(clients.publisher, agreement.id, { version: 1 })).toEqual(served);
  });

  it("rejects a stranger's read with MalusError not-found, and other refusals with their codes", async () => {
    const agreement = agreementNow(parties, 'socket-refusals');
    await proposeCollaboration(clients.advertiser, { agreement, signature: signNow(agreement, parties.advertiser) });

    const notFound = await rejection(getCollaboration(clients.stranger, agreement.id));
    expect(notFound.code).toBe('not-found');
    expect(notFound.message).toBe(`collaboration ${agreement.id} not found`);
    expect((await rejection(getAgreement(clients.stranger, agreement.id))).code).toBe('not-found');

    const forbidden = await rejection(signCollaboration(clients.advertiser, agreement.id, signNow(agreement, parties.publisher)));
    expect(forbidden.code).toBe('forbidden');
    const conflict = await rejection(proposeCollaboration(clients.advertiser, { agreement, signature: signNow(agreement, parties.advertiser) }));
    expect(conflict.code).toBe('conflict');

    const invalid = await rejection(getAgreement(clients.advertiser, agreement.id, { version: 7 }));
    expect(invalid.code).toBe('not-found');
  });

  it('refuses a request whose signature covers another URI than the one the client used', async () => {
    // Signed for localhost, sent to 127.0.0.1: the target URIs differ.
    const url = `${running.url}/v1/collaborations`;
    const headers = signRequest({
      method: 'GET',
      url: url.replace('127.0.0.1', 'localhost'),
      keyId: parties.advertiser.identity.signingKey,
      secretKey: parties.advertiser.signingSecret,
    });
    const response = await fetch(url, { headers });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await response.json()) as { detail: string }).detail).toContain('bad-signature');
  });
});

describe('client failures', () => {
  const keys = generatePartyKeys('Client');
  const servers: Server[] = [];
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => { resolve(); }))));
  });

  function listen(server: Server): Promise<number> {
    servers.push(server);
    return new Promise((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
  }

  it('reports server-unreachable for a closed port', async () => {
    // A port that was just free: listen, note it, close.
    const probe = createServer();
    const port = await listen(probe);
    await new Promise<void>((resolve) => probe.close(() => { resolve(); }));
    servers.splice(servers.indexOf(probe), 1);

    const client = createClient({ server: `http://127.0.0.1:${port}`, keys });
    const error = await rejection(getCollaboration(client, 'anything'));
    expect(error.code).toBe('server-unreachable');
    expect(error.message).toBe(`cannot reach the Malus server at http://127.0.0.1:${port} (connection failed)`);
    expect((await rejection(getHealth(client))).code).toBe('server-unreachable');
  });

  it('reports server-unreachable (timed out) for a server that never answers', async () => {
    const silent = createServer((socket) => void sockets.push(socket));
    const port = await listen(silent);
    const client = createClient({ server: `http://127.0.0.1:${port}`, keys, timeoutMs: 200 });
    const error = await rejection(listCollaborations(client));
    expect(error.code).toBe('server-unreachable');
    expect(error.message).toContain('(timed out)');
  });

  it('reports server-error for an answer that is not JSON', async () => {
    const garbage = createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.end('HTTP/1.1 500 Oops\r\ncontent-type: text/html\r\ncontent-length: 5\r\nconnection: close\r\n\r\n<h1>!'));
    });
    const port = await listen(garbage);
    const error = await rejection(getCollaboration(createClient({ server: `http://127.0.0.1:${port}`, keys }), 'anything'));
    expect(error.code).toBe('server-error');
  });
});

describe('startServer and close', () => {
  it('refuses a port that is in use with a usage error', async () => {
    const dir = tempDir();
    const first = await startServer({ dataDir: join(dir, 'a'), host: '127.0.0.1', port: 0 });
    try {
      const port = Number(new URL(first.url).port);
      const error = await rejection(startServer({ dataDir: join(dir, 'b'), host: '127.0.0.1', port }));
      expect(error.code).toBe('usage');
      expect(error.message).toContain('EADDRINUSE');
    } finally {
      await first.close();
      removeDir(dir);
    }
  });

  it('lets an in-flight request finish when closing, then refuses new connections and closes the store', async () => {
    const dir = tempDir();
    const running = await startServer({ dataDir: join(dir, 'data'), host: '127.0.0.1', port: 0, worker: false }); // only the test's request arrives
    try {
      const parties = makeParties();
      const agreement = agreementNow(parties, 'graceful-close');
      const body = Buffer.from(JSON.stringify({ agreement, signature: signNow(agreement, parties.advertiser) }));
      const url = `${running.url}/v1/collaborations`;
      const headers = {
        'content-type': 'application/json',
        'content-length': String(body.length),
        ...signRequest({ method: 'POST', url, body, keyId: parties.advertiser.identity.signingKey, secretKey: parties.advertiser.signingSecret }),
      };

      // Send the headers and half the body; wait until the server has the request.
      const arrived = new Promise<void>((resolve) => running.app.server.once('request', () => { resolve(); }));
      const response = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        const req = httpRequest(url, { method: 'POST', headers }, (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.write(body.subarray(0, body.length / 2));
        void arrived.then(() => {
          // Close while the request is still in flight, then finish sending it.
          closed = running.close();
          setTimeout(() => req.end(body.subarray(body.length / 2)), 100);
        });
      });
      let closed: Promise<void> | undefined;

      const answer = await response;
      expect(answer.status, answer.body).toBe(201);
      expect(JSON.parse(answer.body)).toMatchObject({ id: 'graceful-close', state: 'proposed' });
      // The answer asks the client to drop the connection, so close() need not wait out keep-alive.
      expect(answer.connection).toBe('close');
      expect(closed).toBeDefined();
      const started = Date.now();
      await closed;
      expect(Date.now() - started).toBeLessThan(2000);

      // The listener is gone and the store is closed.
      const client = createClient({ server: running.url, keys: parties.advertiser });
      expect((await rejection(getHealth(client))).code).toBe('server-unreachable');
      expect((await rejection(running.store.collaborations.listVersions('graceful-close'))).code).toBe('store-failure');
      // Closing twice is harmless.
      await running.close();
    } finally {
      await running.close();
      removeDir(dir);
    }
  });
});
