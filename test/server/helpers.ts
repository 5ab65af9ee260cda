// Helpers for the HTTP API tests: a fastify app over a real SQLite store in a temporary file, a
// settable clock, parties, example agreements, and requests signed the way the client signs them.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import {
  agreementHash,
  exampleAgreement,
  signAgreement,
  type Agreement,
  type AgreementSignature,
} from '../../src/agreement/index.js';
import { ERROR_CODES, type ErrorCode } from '../../src/errors/index.js';
import { signRequest } from '../../src/httpsig/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { buildApp, loadOrCreateLogKey, openTransparencyLog, type TransparencyLog } from '../../src/server/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';

/** The Host header every injected request carries; the server rebuilds the target URI from it. */
export const HOST = 'malus.test';
export const BASE_URL = `http://${HOST}`;
/** The server's clock in these tests (whole seconds, so `created` equals it exactly). */
export const NOW = new Date('2026-03-01T12:00:00.000Z');
export const NOW_SECONDS = Math.floor(NOW.getTime() / 1000);
const DAY_MS = 24 * 60 * 60 * 1000;

/** The response of app.inject(), as far as these tests read it. */
export interface InjectResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | number | undefined>;
  readonly body: string;
  json(): any;
}

export interface Clock {
  now: Date;
}

/** The machine's clock, for signing requests to a server started with real time (startServer). */
export const wallClock: Readonly<Clock> = {
  get now(): Date {
    return new Date();
  },
};

export interface TestServer {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly log: TransparencyLog;
  readonly clock: Clock;
  readonly dir: string;
  close(): Promise<void>;
}

/** A fresh temporary directory; the caller removes it with removeDir. */
export function tempDir(prefix = 'malus-server-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Builds the app over a SQLite store in a new temporary file, with a clock the test can move. */
export async function startTestServer(
  options: { loggerInstance?: FastifyBaseLogger; store?: (store: Store) => Store; publicBaseUrl?: string } = {},
): Promise<TestServer> {
  const dir = tempDir();
  const realStore = openSqliteStore({ path: join(dir, 'malus.db') });
  const store = options.store === undefined ? realStore : options.store(realStore);
  const clock: Clock = { now: NOW };
  const log = await openTransparencyLog({ store, key: loadOrCreateLogKey(dir, 'test.malus/log', NOW), now: () => clock.now });
  const app = await buildApp({
    context: {
      store,
      log,
      now: () => clock.now,
      ...(options.publicBaseUrl === undefined ? {} : { publicBaseUrl: options.publicBaseUrl }),
    },
    ...(options.loggerInstance === undefined ? {} : { loggerInstance: options.loggerInstance }),
  });
  return {
    app,
    store,
    log,
    clock,
    dir,
    close: async () => {
      await app.close();
      await realStore.close();
      removeDir(dir);
    },
  };
}

// --- parties and agreements ------------------------------------------------------------------

export interface Parties {
  readonly advertiser: PartyKeys;
  readonly publisher: PartyKeys;
  readonly operator: PartyKeys;
}

export function makeParties(prefix = ''): Parties {
  return {
    advertiser: generatePartyKeys(`${prefix}Advertiser`),
    publisher: generatePartyKeys(`${prefix}Publisher`),
    operator: generatePartyKeys(`${prefix}Operator`),
  };
}

let collaborationCounter = 0;

/** A collaboration id not used before in this process, so that tests can share one store. */
export function uniqueId(stem = 'collab'): string {
  collaborationCounter += 1;
  return `${stem}-${collaborationCounter}`;
}

/** The example agreement between the parties, valid from a day before NOW for 90 days. */
export function agreementFor(parties: Parties, id: string, validFrom = new Date(NOW.getTime() - DAY_MS)): Agreement {
  return exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom },
  );
}

export function sign(agreement: Agreement, party: PartyKeys, now = NOW): AgreementSignature {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, now);
}

/** Version n+1 of an agreement, amending `previous` (its hash), with a new title. */
export function amendment(previous: Agreement, changes: Partial<Agreement> = {}): Agreement {
  return {
    ...structuredClone(previous),
    version: previous.version + 1,
    previous: agreementHash(previous),
    title: `${previous.title} (amended)`,
    ...changes,
  };
}

// --- signed requests -------------------------------------------------------------------------

export interface SendOptions {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query, as sent on the request line. */
  readonly path: string;
  /** Serialized as JSON. */
  readonly json?: unknown;
  /** Sent as it is (takes precedence over json). */
  readonly raw?: string | Buffer;
  readonly contentType?: string;
  /** The signer; omitted: the request is not signed. */
  readonly as?: PartyKeys;
  /** Unix seconds for `created`; defaults to the server clock. */
  readonly created?: number;
  readonly nonce?: string;
  /** Overrides of the signing parameters, to forge broken signatures. */
  readonly keyId?: string;
  readonly secretKey?: Uint8Array;
  /** The URL that is signed; defaults to BASE_URL + path. */
  readonly signedUrl?: string;
  /** The body that is signed; defaults to the body sent. */
  readonly signedBody?: string | Buffer;
  /** Extra headers, applied last (they can replace the signature headers). */
  readonly headers?: Record<string, string>;
}

export interface PreparedRequest {
  readonly method: SendOptions['method'];
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: Buffer;
}

function bytes(text: string | Buffer): Buffer {
  return typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
}

/** The request fastify's inject() is given: headers, body and (when `as` is set) an RFC 9421 signature. */
export function prepare(server: { clock: Clock }, options: SendOptions): PreparedRequest {
  const payload =
    options.raw !== undefined ? bytes(options.raw) : options.json === undefined ? undefined : bytes(JSON.stringify(options.json));
  const headers: Record<string, string> = { host: HOST };
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  if (options.as !== undefined) {
    const signedBody = options.signedBody === undefined ? payload : bytes(options.signedBody);
    Object.assign(
      headers,
      signRequest({
        method: options.method,
        url: options.signedUrl ?? `${BASE_URL}${options.path}`,
        ...(signedBody === undefined ? {} : { body: signedBody }),
        keyId: options.keyId ?? options.as.identity.signingKey,
        secretKey: options.secretKey ?? options.as.signingSecret,
        created: options.created ?? Math.floor(server.clock.now.getTime() / 1000),
        ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
      }),
    );
  }
  Object.assign(headers, options.headers ?? {});
  return { method: options.method, url: options.path, headers, ...(payload === undefined ? {} : { payload }) };
}

export function inject(server: { app: FastifyInstance }, request: PreparedRequest): Promise<InjectResponse> {
  return server.app.inject(request);
}

export async function send(server: TestServer, options: SendOptions): Promise<InjectResponse> {
  return inject(server, prepare(server, options));
}

// --- the API's calls -------------------------------------------------------------------------

export function propose(server: TestServer, as: PartyKeys, agreement: Agreement, signature = sign(agreement, as)): Promise<InjectResponse> {
  return send(server, { method: 'POST', path: '/v1/collaborations', json: { agreement, signature }, as });
}

export function submitSignature(
  server: TestServer,
  as: PartyKeys,
  id: string,
  signature: AgreementSignature,
): Promise<InjectResponse> {
  return send(server, { method: 'POST', path: `/v1/collaborations/${id}/signatures`, json: signature, as });
}

export function show(server: TestServer, as: PartyKeys, id: string): Promise<InjectResponse> {
  return send(server, { method: 'GET', path: `/v1/collaborations/${id}`, as });
}

export function list(server: TestServer, as: PartyKeys): Promise<InjectResponse> {
  return send(server, { method: 'GET', path: '/v1/collaborations', as });
}

export function fetchAgreement(server: TestServer, as: PartyKeys, id: string, query = ''): Promise<InjectResponse> {
  return send(server, { method: 'GET', path: `/v1/collaborations/${id}/agreement${query}`, as });
}

/** Proposes the example agreement as the advertiser; `signed: true` also adds the publisher's signature. */
export async function establish(
  server: TestServer,
  parties: Parties,
  options: { id?: string; signed?: boolean } = {},
): Promise<{ id: string; agreement: Agreement; hash: string }> {
  const id = options.id ?? uniqueId();
  const agreement = agreementFor(parties, id);
  const proposed = await propose(server, parties.advertiser, agreement);
  expect(proposed.statusCode, proposed.body).toBe(201);
  if (options.signed === true) {
    const signed = await submitSignature(server, parties.publisher, id, sign(agreement, parties.publisher));
    expect(signed.statusCode, signed.body).toBe(201);
  }
  return { id, agreement, hash: agreementHash(agreement) };
}

// --- problem documents -----------------------------------------------------------------------

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  issues?: { path: string; message: string }[];
  reasons?: { code: string; message: string }[];
}

/** Stack frames (`    at f (file:…)`), source locations and absolute paths of this machine. */
export function leaksInternals(text: string): string | undefined {
  const patterns: RegExp[] = [
    /\bat [\w$.<>]+ \(/, // "at fn ("
    /\n\s+at /,
    /\.[cm]?[jt]s:\d+/, // file.ts:12
    /file:\/\//,
    /node_modules/,
    /\/(?:work|home|tmp|var|usr)\//,
    /\bsrc\/(?:server|store|api|agreement)\b/,
  ];
  return patterns.find((p) => p.test(text))?.source;
}

/**
 * Checks that a response is an RFC 9457 problem with the given status and code, and nothing that
 * looks like a stack trace or a file path. Returns the parsed body for further checks.
 */
export function expectProblem(response: InjectResponse, status: number, code: ErrorCode, detail?: string | RegExp): ProblemBody {
  expect(response.statusCode, response.body).toBe(status);
  expect(String(response.headers['content-type'])).toMatch(/^application\/problem\+json(?:;|$)/);
  const body = response.json() as ProblemBody;
  expect(Object.keys(body).every((key) => ['type', 'title', 'status', 'detail', 'code', 'instance', 'issues', 'reasons'].includes(key))).toBe(true);
  expect(body.type).toBe(`urn:malus:error:${code}`);
  expect(body.code).toBe(code);
  expect(body.status).toBe(status);
  expect(body.title).toBe(ERROR_CODES[code].title);
  expect(ERROR_CODES[code].status).toBe(status);
  expect(typeof body.detail).toBe('string');
  if (typeof detail === 'string') expect(body.detail).toContain(detail);
  else if (detail !== undefined) expect(body.detail).toMatch(detail);
  expect(leaksInternals(response.body), response.body).toBeUndefined();
  return body;
}
