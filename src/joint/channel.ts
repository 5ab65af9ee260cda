import { MAX_RUN_MESSAGE_BYTES, getRunMessages, postRunMessage, type MalusClient } from '../client/index.js';
import { MalusError } from '../errors/index.js';

// A run's messages through the relay, one protocol message per logical step. A message larger than
// the relay takes in one post is split into parts: logical step s uses relay steps s·1000 to
// s·1000 + 999, and the first part starts with the number of parts (u32, big-endian). The relay
// keeps each part once, so a retried post is harmless and a different one is refused.

/** Relay steps per logical step: a protocol message may take up to 1000 parts (48 GB). */
export const PARTS_PER_STEP = 1000;
/** The highest logical step (the relay numbers steps up to 1,000,000). */
export const MAX_LOGICAL_STEP = 999;

export interface RunChannel {
  readonly client: MalusClient;
  readonly collaborationId: string;
  readonly runId: string;
  /** Between polls while waiting; default 100 ms. */
  readonly intervalMs?: number;
  /** Stops sending and waiting (the party leaves the run). */
  readonly signal?: AbortSignal;
  /** Bytes per part; default (and at most) what one relay message holds. */
  readonly partBytes?: number;
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0 || step > MAX_LOGICAL_STEP) {
    throw new MalusError('invalid-input', `a logical step is an integer from 0 to ${MAX_LOGICAL_STEP}, not ${step}`);
  }
}

function partSize(channel: RunChannel): number {
  return Math.min(channel.partBytes ?? Infinity, MAX_RUN_MESSAGE_BYTES - 4);
}

/** Sends one protocol message to a party of the run (or '*'), in as many parts as it needs. */
export async function sendMessage(channel: RunChannel, to: string, step: number, data: Uint8Array): Promise<void> {
  checkStep(step);
  const size = partSize(channel);
  const parts = Math.max(1, Math.ceil(data.byteLength / size));
  if (parts > PARTS_PER_STEP) throw new MalusError('payload-too-large', `a run message holds at most ${PARTS_PER_STEP} parts of ${size} bytes`);
  for (let part = 0; part < parts; part++) {
    channel.signal?.throwIfAborted();
    const slice = data.subarray(part * size, Math.min(data.byteLength, (part + 1) * size));
    let body = slice;
    if (part === 0) {
      body = new Uint8Array(4 + slice.byteLength);
      new DataView(body.buffer).setUint32(0, parts);
      body.set(slice, 4);
    }
    await postRunMessage(channel.client, channel.collaborationId, channel.runId, { to, step: step * PARTS_PER_STEP + part, data: body });
  }
}

export interface ReceivedMessage {
  readonly sender: string;
  readonly step: number;
  readonly data: Uint8Array;
}

export interface ReceiveOptions {
  /** The parties whose message of this step to wait for. */
  readonly from: readonly string[];
  /** Give up at this time (ms since the epoch); default 30 s from now. */
  readonly deadline?: number;
  /** At the deadline, return what arrived instead of failing (a protocol that tolerates dropouts). */
  readonly partial?: boolean;
}

function assemble(runId: string, sender: string, step: number, parts: readonly Uint8Array[]): Uint8Array | undefined {
  const first = parts[0];
  if (first === undefined) return undefined;
  if (first.byteLength < 4) throw new MalusError('invalid-input', `run ${runId}: the message of ${sender} for step ${step} has no part count`);
  const count = new DataView(first.buffer, first.byteOffset, 4).getUint32(0);
  if (count < 1 || count > PARTS_PER_STEP) throw new MalusError('invalid-input', `run ${runId}: the message of ${sender} for step ${step} claims ${count} parts`);
  for (let i = 0; i < count; i++) if (parts[i] === undefined) return undefined;
  if (parts.length > count) throw new MalusError('invalid-input', `run ${runId}: the message of ${sender} for step ${step} has more parts than it claims`);
  return new Uint8Array(Buffer.concat(parts.slice(0, count).map((p, i) => (i === 0 ? p.subarray(4) : p))));
}

/**
 * Waits for the message of one logical step from each of the given parties and returns them in
 * the order of `from` (those that arrived, with `partial`). Messages of other steps or senders are
 * left for later calls.
 */
export async function receiveMessages(channel: RunChannel, step: number, options: ReceiveOptions): Promise<ReceivedMessage[]> {
  checkStep(step);
  const deadline = options.deadline ?? Date.now() + 30_000;
  const base = step * PARTS_PER_STEP;
  const wanted = new Set(options.from);
  const parts = new Map<string, Uint8Array[]>();
  const done = new Map<string, Uint8Array>();
  /** The last seq read at each relay step, reading that step from its start. */
  const lastSeq = new Map<number, number>();
  // A sender posts its parts in order, so it can still add a message only at the relay step of its
  // next part. The cursor never passes the lowest such step: nothing a slow sender posts is skipped.
  const safeCursor = (): { after: number; afterSeq?: number } => {
    let low = Infinity;
    for (const id of wanted) {
      if (done.has(id)) continue;
      const got = parts.get(id) ?? [];
      let next = 0;
      while (got[next] !== undefined) next++;
      low = Math.min(low, base + next);
    }
    if (low === Infinity) low = base;
    const seq = lastSeq.get(low);
    return seq === undefined ? { after: low - 1 } : { after: low, afterSeq: seq };
  };
  for (;;) {
    channel.signal?.throwIfAborted();
    const answer = await getRunMessages(channel.client, channel.collaborationId, channel.runId, safeCursor());
    let beyond = false;
    for (const m of answer.messages) {
      if (m.step >= base + PARTS_PER_STEP) {
        beyond = true;
        break;
      }
      lastSeq.set(m.step, m.seq);
      if (!wanted.has(m.sender) || done.has(m.sender)) continue;
      const list = parts.get(m.sender) ?? [];
      list[m.step - base] = m.data;
      parts.set(m.sender, list);
      const whole = assemble(channel.runId, m.sender, step, list);
      if (whole !== undefined) done.set(m.sender, whole);
    }
    if (done.size === wanted.size) break;
    if (answer.more && !beyond) continue;
    if (Date.now() > deadline) {
      if (options.partial === true) break;
      const missing = options.from.filter((id) => !done.has(id));
      throw new MalusError('request-timeout', `run ${channel.runId}: no message for step ${step} from ${missing.join(', ')} in time`);
    }
    await sleep(channel.intervalMs ?? 100, channel.signal);
  }
  return options.from.flatMap((sender) => {
    const data = done.get(sender);
    return data === undefined ? [] : [{ sender, step, data }];
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
