import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Agreement } from '../agreement/index.js';
import type { RunView } from '../client/index.js';
import { fromBase64Url, toBase64Url } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import type { PartyKeys } from '../identity/index.js';
import type { ReceiverLink, SenderLink } from './psi.js';
import { agreedSigningKey, signPsiMessage, verifiesPsiMessage } from './signed.js';

// PSI messages sent straight between the two parties, not through the relay (docs/psi.md): the run
// is still started at the server and logged there, so its id, its domain separation tag and its
// log entries are the same; only the bytes take another path. The sender listens; the receiver
// POSTs each step's message and reads the answer from the response. Each body is signed as over
// the relay (signed.ts), the signature in a header: nobody but the agreed parties can ask or answer.

const SIGNATURE_HEADER = 'malus-psi-signature';
/** The largest body either side accepts: 10 million elements of 32 bytes, and room for headers of the encoding. */
const MAX_BODY_BYTES = 10_000_000 * 32 + 1024 * 1024;

const headerSignature = (header: string | string[] | undefined): Uint8Array | undefined => (typeof header === 'string' ? fromBase64Url(header) : undefined);

function readBody(message: IncomingMessage): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    message.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        message.destroy();
        reject(new MalusError('payload-too-large', `a direct PSI message holds at most ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    message.on('end', () => { resolve(new Uint8Array(Buffer.concat(chunks))); });
    message.on('error', reject);
  });
}

interface Waiting {
  readonly resolve: (body: Uint8Array) => void;
  readonly reject: (error: unknown) => void;
}

interface ListeningRun {
  readonly runId: string;
  readonly receiverKey: Uint8Array;
  /** The request of each step, once it arrived and verified. */
  readonly requests: Map<number, Uint8Array>;
  /** Responses held open until the protocol answers them. */
  readonly responses: Map<number, ServerResponse>;
  readonly waiting: Map<number, Waiting>;
}

export interface DirectListener {
  /** Where the receiver connects: http://host:port. */
  readonly url: string;
  /** The sender's link for one run: answers requests of that run only, from its receiver only. */
  linkFor(run: RunView, agreement: Agreement, keys: PartyKeys, receiver: string): SenderLink;
  close(): Promise<void>;
}

/** Listens for the receiver's direct requests (the sender's side); `port` 0 picks a free one. */
export async function listenForPsi(host: string, port: number): Promise<DirectListener> {
  let current: ListeningRun | undefined;

  const refuse = (response: ServerResponse, status: number, code: string, detail: string): void => {
    response.writeHead(status, { 'content-type': 'application/problem+json' });
    response.end(JSON.stringify({ type: 'about:blank', title: code, status, code, detail }));
  };

  const handle = async (message: IncomingMessage, response: ServerResponse): Promise<void> => {
    const match = /^\/psi\/(run-[0-9a-f]{32})\/(\d{1,3})$/.exec(message.url ?? '');
    if (message.method !== 'POST' || match === null) { refuse(response, 404, 'not-found', 'POST /psi/{run}/{step}'); return; }
    const [, runId = '', stepText = ''] = match;
    const step = Number(stepText);
    // Before the sender has found the run at the server: the receiver retries.
    if (current?.runId !== runId) { refuse(response, 503, 'conflict', `not answering run ${runId} (yet)`); return; }
    const body = await readBody(message);
    if (!verifiesPsiMessage(current.receiverKey, headerSignature(message.headers[SIGNATURE_HEADER]), runId, step, 'request', body)) {
      refuse(response, 401, 'signature-invalid', 'the request is not signed by the run’s receiver'); return;
    }
    if (current.requests.has(step)) { refuse(response, 409, 'conflict', `step ${step} of run ${runId} was sent already`); return; }
    current.requests.set(step, body);
    current.responses.set(step, response);
    current.waiting.get(step)?.resolve(body);
  };

  const server: Server = createServer((message, response) => {
    handle(message, response).catch((error: unknown) => {
      if (!response.headersSent) refuse(response, 400, 'invalid-input', error instanceof MalusError ? error.message : 'unreadable request');
    });
  });
  // Computing an answer for a large set takes a while; the request stays open meanwhile.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => { reject(new MalusError('usage', `cannot listen on ${host}:${port}: ${error.code ?? 'error'}`)); });
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  return {
    url,
    linkFor(run, agreement, keys, receiver) {
      const state: ListeningRun = { runId: run.id, receiverKey: agreedSigningKey(agreement, receiver), requests: new Map(), responses: new Map(), waiting: new Map() };
      current = state;
      return {
        next(step, deadline) {
          const ready = state.requests.get(step);
          if (ready !== undefined) return Promise.resolve(ready);
          return new Promise<Uint8Array>((resolve, reject) => {
            const timer = setTimeout(() => { reject(new MalusError('request-timeout', `run ${run.id}: the receiver sent nothing for step ${step} in time`)); }, Math.max(0, deadline - Date.now()));
            state.waiting.set(step, {
              resolve: (body) => {
                clearTimeout(timer);
                resolve(body);
              },
              reject,
            });
          });
        },
        answer(step, data) {
          const response = state.responses.get(step);
          if (response === undefined) return Promise.reject(new MalusError('conflict', `run ${run.id}: no request of step ${step} to answer`));
          state.responses.delete(step);
          return new Promise<void>((resolve, reject) => {
            response.writeHead(200, { 'content-type': 'application/octet-stream', [SIGNATURE_HEADER]: toBase64Url(signPsiMessage(keys, run.id, step, 'answer', data)) });
            response.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength), () => { resolve(); });
            response.once('error', reject);
          });
        },
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}

function post(url: URL, body: Uint8Array, signature: string, deadline: number): Promise<{ status: number; headers: IncomingMessage['headers']; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': body.byteLength, [SIGNATURE_HEADER]: signature } }, (response) => {
      readBody(response).then((data) => { resolve({ status: response.statusCode ?? 0, headers: response.headers, body: data }); }, reject);
    });
    const timer = setTimeout(() => req.destroy(new MalusError('request-timeout', `${url.host} did not answer in time`)), Math.max(0, deadline - Date.now()));
    req.on('close', () => { clearTimeout(timer); });
    req.on('error', (error: NodeJS.ErrnoException) => { reject(error instanceof MalusError ? error : new MalusError('server-unreachable', `cannot reach the sender at ${url.host}: ${error.code ?? 'error'}`)); });
    req.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });
}

/** The receiver's link to a sender listening at `url`: each step one signed POST, its answer checked against the sender's key. */
export function connectForPsi(url: string, run: RunView, agreement: Agreement, keys: PartyKeys, sender: string, retryMs = 200): ReceiverLink {
  const senderKey = agreedSigningKey(agreement, sender);
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new MalusError('usage', `--connect takes the sender's URL, such as http://10.0.0.2:7700 (not ${url})`);
  }
  if (base.protocol !== 'http:') throw new MalusError('usage', 'the direct PSI link speaks http:// (the messages are signed and blinded)');
  return {
    async exchange(step, data, deadline) {
      const target = new URL(`/psi/${run.id}/${step}`, base);
      const signature = toBase64Url(signPsiMessage(keys, run.id, step, 'request', data));
      for (;;) {
        let answer;
        try {
          answer = await post(target, data, signature, deadline);
        } catch (error) {
          // The sender may not be listening yet: retry until the deadline.
          if (!(error instanceof MalusError && error.code === 'server-unreachable') || Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, retryMs));
          continue;
        }
        if (answer.status === 503 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, retryMs));
          continue;
        }
        if (answer.status !== 200) throw new MalusError('server-error', `the sender refused step ${step} with status ${answer.status}`);
        if (!verifiesPsiMessage(senderKey, headerSignature(answer.headers[SIGNATURE_HEADER]), run.id, step, 'answer', answer.body)) {
          throw new MalusError('signature-invalid', `the answer to step ${step} is not signed by the run's sender`);
        }
        return answer.body;
      }
    },
  };
}
