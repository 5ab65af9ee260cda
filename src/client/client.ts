import type { z } from 'zod';
import { problemSchema } from '../api/index.js';
import { MalusError, isErrorCode, issuesFromZod } from '../errors/index.js';
import { signRequest } from '../httpsig/index.js';
import type { PartyKeys } from '../identity/index.js';

// A client is plain data: where the server is and whose keys sign. Actions are functions over it
// (`getCollaboration(client, id)`), each request signed with RFC 9421 and each answer checked
// against the same schema the server serializes with.

export interface MalusClient {
  readonly baseUrl: string;
  /** The party that signs requests; public routes need none. */
  readonly keys?: PartyKeys;
  readonly timeoutMs: number;
}

export interface CreateClientParameters {
  readonly server: string;
  readonly keys?: PartyKeys;
  readonly timeoutMs?: number;
}

export function createClient(parameters: CreateClientParameters): MalusClient {
  let url: URL;
  try {
    url = new URL(parameters.server);
  } catch {
    throw new MalusError('usage', `--server must be a URL such as http://127.0.0.1:8787, not ${JSON.stringify(parameters.server)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MalusError('usage', `--server must be an http or https URL`);
  }
  return {
    baseUrl: url.origin + url.pathname.replace(/\/$/, ''),
    ...(parameters.keys === undefined ? {} : { keys: parameters.keys }),
    timeoutMs: parameters.timeoutMs ?? 30_000,
  };
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestParameters<T extends z.ZodType> {
  readonly method: HttpMethod;
  readonly path: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as these bytes with this media type, instead of a JSON body. */
  readonly raw?: { readonly bytes: Uint8Array; readonly contentType: string };
  /** Extra request headers (covered by the Content-Digest only through the body, as always). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly response: T;
  /** Skip the signature (public routes). */
  readonly anonymous?: boolean;
  /** This request's timeout, instead of the client's. */
  readonly timeoutMs?: number;
}

interface SendParameters {
  readonly method: HttpMethod;
  readonly path: string;
  readonly body?: unknown;
  readonly raw?: { readonly bytes: Uint8Array; readonly contentType: string };
  readonly headers?: Readonly<Record<string, string>>;
  readonly anonymous?: boolean;
  readonly accept: string;
  readonly timeoutMs?: number;
}

function unreachable(client: MalusClient, error: unknown): MalusError {
  const reason = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : 'connection failed';
  return new MalusError('server-unreachable', `cannot reach the Malus server at ${client.baseUrl} (${reason})`);
}

/** Signs and sends one request; resolves with the response once its status and headers are in. */
async function signedFetch(client: MalusClient, parameters: SendParameters, signal: AbortSignal): Promise<Response> {
  const url = `${client.baseUrl}${parameters.path}`;
  const body =
    parameters.raw !== undefined
      ? parameters.raw.bytes
      : parameters.body === undefined
        ? undefined
        : new TextEncoder().encode(JSON.stringify(parameters.body));
  const headers: Record<string, string> = { ...parameters.headers, accept: `${parameters.accept}, application/problem+json` };
  if (body !== undefined) headers['content-type'] = parameters.raw?.contentType ?? 'application/json';
  if (parameters.anonymous !== true) {
    if (client.keys === undefined) throw new MalusError('usage', `${parameters.path} needs a signed request: pass --key KEYFILE`);
    Object.assign(
      headers,
      signRequest({
        method: parameters.method,
        url,
        ...(body === undefined ? {} : { body }),
        keyId: client.keys.identity.signingKey,
        secretKey: client.keys.signingSecret,
      }),
    );
  }
  try {
    return await fetch(url, { method: parameters.method, headers, ...(body === undefined ? {} : { body }), signal });
  } catch (error) {
    throw unreachable(client, error);
  }
}

async function refusal(client: MalusClient, response: Response): Promise<MalusError> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    return unreachable(client, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return new MalusError('server-error', `server answered ${response.status} with a body that is not JSON`);
  }
  return problemToError(response.status, json);
}

/** Sends one request; returns the answer's bytes, or throws the server's problem. */
async function send(client: MalusClient, parameters: SendParameters): Promise<Uint8Array> {
  const response = await signedFetch(client, parameters, AbortSignal.timeout(parameters.timeoutMs ?? client.timeoutMs));
  if (!response.ok) throw await refusal(client, response);
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw unreachable(client, error);
  }
}

/**
 * A signed GET whose answer is streamed, not buffered: the pieces arrive as the server sends them.
 * The client's timeout counts from the last piece, so a long download is not cut off while it moves.
 */
export async function requestStream(client: MalusClient, path: string): Promise<AsyncIterable<Uint8Array>> {
  const controller = new AbortController();
  const idle = (): void => {
    controller.abort(new DOMException('no data for too long', 'TimeoutError'));
  };
  let timer = setTimeout(idle, client.timeoutMs);
  const touch = (): void => {
    clearTimeout(timer);
    timer = setTimeout(idle, client.timeoutMs);
  };
  let response: Response;
  try {
    response = await signedFetch(client, { method: 'GET', path, accept: 'application/octet-stream' }, controller.signal);
    if (!response.ok) throw await refusal(client, response);
  } catch (error) {
    clearTimeout(timer);
    if (error instanceof MalusError) throw error;
    throw unreachable(client, error);
  }
  const body = response.body;
  if (body === null) {
    clearTimeout(timer);
    return (async function* empty() {})();
  }
  return (async function* pieces() {
    const reader = body.getReader();
    try {
      for (;;) {
        const next = await reader.read().catch((error: unknown) => {
          throw unreachable(client, error);
        });
        if (next.done) return;
        touch();
        yield next.value;
      }
    } finally {
      clearTimeout(timer);
      // A consumer that stops early cancels the rest of the download.
      await reader.cancel().catch(() => undefined);
    }
  })();
}

/** Sends one request and returns the checked JSON response, or throws the server's problem as a MalusError. */
export async function request<T extends z.ZodType>(client: MalusClient, parameters: RequestParameters<T>): Promise<z.infer<T>> {
  const bytes = await send(client, { ...parameters, accept: 'application/json' });
  const text = new TextDecoder().decode(bytes);
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new MalusError('server-error', 'server answered with a body that is not JSON');
  }
  const parsed = parameters.response.safeParse(json);
  if (!parsed.success) {
    throw new MalusError('server-error', 'server answer does not match the API schema', { issues: issuesFromZod(parsed.error, json) });
  }
  return parsed.data;
}

/** A public GET whose answer is not JSON (a checkpoint note, a tile). */
export function requestBytes(client: MalusClient, path: string): Promise<Uint8Array> {
  return send(client, { method: 'GET', path, anonymous: true, accept: 'text/plain, application/octet-stream' });
}

function problemToError(status: number, json: unknown): MalusError {
  const problem = problemSchema.safeParse(json);
  if (!problem.success) return new MalusError('server-error', `server answered ${status}`);
  const { code, detail, issues, reasons, violations } = problem.data;
  // Keep the server's code so that callers can branch on it (not-found, unauthenticated, …).
  return new MalusError(isErrorCode(code) ? code : 'server-error', detail, {
    ...(issues === undefined ? {} : { issues }),
    ...(reasons === undefined ? {} : { reasons }),
    ...(violations === undefined ? {} : { violations }),
  });
}
