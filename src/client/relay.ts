import {
  MAX_RUN_MESSAGE_BYTES,
  runList,
  runMessageReceipt,
  runMessagesView,
  runView,
  type FinishRunBody,
  type RunMessageReceipt,
  type RunView,
  type StartRunBody,
} from '../api/index.js';
import { fromBase64Url, sha256, toBase64Url, toHex } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { request, type MalusClient } from './client.js';

// The relay of PSI and secure-aggregation runs (docs/relay.md): a party starts a run the active
// agreement allows, exchanges opaque messages with the run's other parties through the server, and
// ends it with a summary of sizes and parameters. Every request is signed like any other.

/** A relayed message as a party reads it: its bytes, checked against the hash the server recorded. */
export interface RunMessage {
  readonly seq: number;
  readonly sender: string;
  /** The caller's party id, or '*' for a message to every party of the run. */
  readonly to: string;
  readonly step: number;
  readonly data: Uint8Array;
  readonly sha256: string;
  readonly createdAt: string;
}

export interface RunMessagesCursor {
  /** Messages of steps after this one (default -1: every step). */
  readonly after?: number;
  /** With `after`: also the messages of step `after` with a seq above this one. */
  readonly afterSeq?: number;
}

export interface RunMessages {
  readonly messages: RunMessage[];
  /** More messages follow: ask again from the last one (`after` its step, `afterSeq` its seq). */
  readonly more: boolean;
}

export interface WaitForRunMessagesOptions {
  /** Messages of steps after this one (default -1: every step). */
  readonly after?: number;
  /** How many messages to wait for (default 1). */
  readonly count?: number;
  /** Default 30 s; then MalusError('request-timeout'). */
  readonly timeoutMs?: number;
  /** Between polls; default 100 ms. */
  readonly intervalMs?: number;
}

export interface RunMessageParameters {
  /** A party of the run other than the caller, or '*' for all of them. */
  readonly to: string;
  readonly step: number;
  readonly data: Uint8Array;
}

const runPath = (collaborationId: string, runId?: string): string =>
  `/v1/collaborations/${encodeURIComponent(collaborationId)}/runs${runId === undefined ? '' : `/${encodeURIComponent(runId)}`}`;

/** Starts a run of a computation of the active agreement, as one of its parties; PSI names an allowed mode. */
export function startRun(client: MalusClient, collaborationId: string, body: StartRunBody): Promise<RunView> {
  return request(client, { method: 'POST', path: runPath(collaborationId), body, response: runView });
}

export function getRun(client: MalusClient, collaborationId: string, runId: string): Promise<RunView> {
  return request(client, { method: 'GET', path: runPath(collaborationId, runId), response: runView });
}

/** The collaboration's runs, newest first. */
export async function listRuns(client: MalusClient, collaborationId: string): Promise<RunView[]> {
  return (await request(client, { method: 'GET', path: runPath(collaborationId), response: runList })).runs;
}

/**
 * Relays one message to another party of the run (or to all). Sending the same bytes for the same
 * step and recipient again is harmless (`added: false`); other bytes are a 409 conflict.
 */
export async function postRunMessage(client: MalusClient, collaborationId: string, runId: string, message: RunMessageParameters): Promise<RunMessageReceipt> {
  if (message.data.byteLength > MAX_RUN_MESSAGE_BYTES) {
    throw new MalusError('payload-too-large', `a run message holds at most ${MAX_RUN_MESSAGE_BYTES} bytes; split this one over several steps`);
  }
  return request(client, {
    method: 'POST',
    path: `${runPath(collaborationId, runId)}/messages`,
    body: { to: message.to, step: message.step, data: toBase64Url(message.data) },
    response: runMessageReceipt,
  });
}

/** One answer's worth of the messages for the caller after a cursor, in (step, seq) order. */
export async function getRunMessages(client: MalusClient, collaborationId: string, runId: string, cursor: RunMessagesCursor = {}): Promise<RunMessages> {
  const query = new URLSearchParams();
  if (cursor.after !== undefined) query.set('after', String(cursor.after));
  if (cursor.afterSeq !== undefined) query.set('afterSeq', String(cursor.afterSeq));
  const text = query.toString();
  const answer = await request(client, {
    method: 'GET',
    path: `${runPath(collaborationId, runId)}/messages${text === '' ? '' : `?${text}`}`,
    response: runMessagesView,
  });
  return {
    messages: answer.messages.map((m) => {
      const data = fromBase64Url(m.data);
      if (data === undefined || `sha256:${toHex(sha256(data))}` !== m.sha256) {
        throw new MalusError('server-error', `message ${m.seq} of run ${runId} does not match the hash the server recorded`);
      }
      return { seq: m.seq, sender: m.sender, to: m.to, step: m.step, data, sha256: m.sha256, createdAt: m.createdAt };
    }),
    more: answer.more,
  };
}

/**
 * Polls until at least `count` messages for the caller of steps after `after` have arrived, and
 * returns all that arrived (in (step, seq) order), following partial answers; MalusError
 * ('request-timeout') when they do not arrive in time.
 */
export async function waitForRunMessages(
  client: MalusClient,
  collaborationId: string,
  runId: string,
  options: WaitForRunMessagesOptions = {},
): Promise<RunMessage[]> {
  const count = options.count ?? 1;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const received: RunMessage[] = [];
  let cursor: RunMessagesCursor = { after: options.after ?? -1 };
  for (;;) {
    const answer = await getRunMessages(client, collaborationId, runId, cursor);
    received.push(...answer.messages);
    const last = answer.messages.at(-1);
    if (last !== undefined) cursor = { after: last.step, afterSeq: last.seq };
    if (answer.more) continue;
    if (received.length >= count) return received;
    if (Date.now() > deadline) {
      throw new MalusError('request-timeout', `run ${runId}: ${received.length} of ${count} messages arrived in time`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/** Ends the run with its outcome and a summary (sizes and parameters only), which the log records as run.finished. */
export function finishRun(client: MalusClient, collaborationId: string, runId: string, body: FinishRunBody): Promise<RunView> {
  return request(client, { method: 'POST', path: `${runPath(collaborationId, runId)}/finish`, body, response: runView });
}
