// Server-side failures: the client gets a problem with a code and nothing of the cause (no message
// of the underlying error, no stack, no path); the server log gets the whole story.

import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { MalusError } from '../../src/errors/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import type { Store } from '../../src/store/index.js';
import { expectProblem, leaksInternals, send, startTestServer, type TestServer } from './helpers.js';

const alice = generatePartyKeys('Alice');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

function memoryLogger(): { logger: pino.Logger; text: () => string } {
  const chunks: string[] = [];
  const logger = pino({ level: 'info' }, { write: (chunk: string) => void chunks.push(chunk) });
  return { logger, text: () => chunks.join('') };
}

/** A store whose listCollaborationIds fails with `error`. */
function failingList(error: () => Error): (store: Store) => Store {
  return (store) => ({
    ...store,
    collaborations: {
      ...store.collaborations,
      listCollaborationIds: () => Promise.reject(error()),
    },
  });
}

describe('unexpected errors', () => {
  it('answers 500 internal for an error that is not a MalusError, and logs it with its stack', async () => {
    const log = memoryLogger();
    server = await startTestServer({
      loggerInstance: log.logger,
      store: failingList(() => new TypeError('cannot read /srv/malus/secret.db: boom')),
    });
    const response = await send(server, { method: 'GET', path: '/v1/collaborations', as: alice });
    const problem = expectProblem(response, 500, 'internal', 'internal error');
    expect(problem.detail).toBe('internal error');
    expect(response.body).not.toContain('boom');
    expect(response.body).not.toContain('TypeError');
    expect(log.text()).toContain('cannot read /srv/malus/secret.db: boom');
    expect(log.text()).toMatch(/"stack":"TypeError: cannot read[^"]*\\n\s+at /);
  });

  it('answers 500 store-failure without the driver message', async () => {
    const log = memoryLogger();
    server = await startTestServer({
      loggerInstance: log.logger,
      store: failingList(() => new MalusError('store-failure', 'The store could not list collaborations: unable to open /var/lib/malus/malus.db')),
    });
    const response = await send(server, { method: 'GET', path: '/v1/collaborations', as: alice });
    const problem = expectProblem(response, 500, 'store-failure', 'the store failed');
    expect(problem.detail).toBe('the store failed');
    expect(response.body).not.toContain('malus.db');
    expect(log.text()).toContain('unable to open /var/lib/malus/malus.db');
  });

  it('answers 500 store-failure once the store is closed', async () => {
    server = await startTestServer();
    await server.store.close();
    const response = await send(server, { method: 'GET', path: '/v1/collaborations', as: alice });
    expectProblem(response, 500, 'store-failure');
    // Public routes do not touch the store.
    expect((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('leaksInternals', () => {
  // The check every problem in these tests goes through must itself catch what it looks for.
  it('recognizes stack frames and file paths', () => {
    expect(leaksInternals(new Error('x').stack ?? '')).toBeDefined();
    expect(leaksInternals('failed at Object.run (file:///work/main/src/server/app.ts:12:3)')).toBeDefined();
    expect(leaksInternals('see /tmp/malus-server-test-1/malus.db')).toBeDefined();
    expect(leaksInternals('collaboration campaign-measurement not found')).toBeUndefined();
    expect(leaksInternals('request signature refused (expired): created is older than the allowed age')).toBeUndefined();
  });
});
