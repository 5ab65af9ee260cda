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

export interface RequestParameters<T extends z.ZodType> {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  readonly response: T;
  /** Skip the signature (public routes). */
  readonly anonymous?: boolean;
}

/** Sends one request; returns the answer's status and bytes, or throws the server's problem. */
async function send(
  client: MalusClient,
  parameters: { method: 'GET' | 'POST'; path: string; body?: unknown; anonymous?: boolean; accept: string },
): Promise<Uint8Array> {
  const url = `${client.baseUrl}${parameters.path}`;
  const body = parameters.body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(parameters.body));
  const headers: Record<string, string> = { accept: `${parameters.accept}, application/problem+json` };
  if (body !== undefined) headers['content-type'] = 'application/json';
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
  let response: Response;
  let bytes: Uint8Array;
  try {
    response = await fetch(url, {
      method: parameters.method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(client.timeoutMs),
    });
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : 'connection failed';
    throw new MalusError('server-unreachable', `cannot reach the Malus server at ${client.baseUrl} (${reason})`);
  }
  if (!response.ok) {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new MalusError('server-error', `server answered ${response.status} with a body that is not JSON`);
    }
    throw problemToError(response.status, json);
  }
  return bytes;
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
  const { code, detail, issues, reasons } = problem.data;
  // Keep the server's code so that callers can branch on it (not-found, unauthenticated, …).
  return new MalusError(isErrorCode(code) ? code : 'server-error', detail, {
    ...(issues === undefined ? {} : { issues }),
    ...(reasons === undefined ? {} : { reasons }),
  });
}
