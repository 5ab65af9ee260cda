import { readFileSync } from 'node:fs';
import type { Agreement, SecaggComputation } from '../agreement/index.js';
import { finishRun, getRun, startRun, type MalusClient, type RunView } from '../client/index.js';
import { equalBytes, signEd25519, verifyEd25519 } from '../crypto/index.js';
import { MalusError, isMalusError, type ErrorCode } from '../errors/index.js';
import { decodeSigningKey, type PartyKeys } from '../identity/index.js';
import {
  checkRun,
  createParty,
  createServer,
  decodeMessage,
  dequantize,
  partyAdvertise,
  partyRespond,
  serverAccept,
  serverClose,
  type PartyState,
  type SecAggAllowed,
  type SecAggParams,
  type SecAggResult,
  type ServerState,
} from '../secagg/index.js';
import { activeTerms, checkRunTerms } from './agreement.js';
import { receiveMessages, sendMessage, type RunChannel } from './channel.js';

// Secure aggregation (src/secagg, docs/secagg.md) between real parties over the relay. The receiver
// that starts the run is the aggregator (the protocol's server): every party sends its round-r
// message to it at logical step r, and it answers each party at step r once it closes the round.
// After round 4 it sends the signed result to the other receivers at step 5. The Malus server
// carries opaque bytes only; it never sees an input or the sum.

/** The logical step at which the aggregator sends the result to the other receivers. */
export const RESULT_STEP = 5;
const DEFAULT_JOIN_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_ROUND_TIMEOUT_MS = 30_000;
/** A party waits longer than the aggregator's default join window: it may join first. */
const DEFAULT_PARTY_TIMEOUT_MS = 15 * 60_000;
/** While waiting, a party looks this often whether the run has ended without it. */
const STATUS_EVERY_MS = 2_000;
/** Posts in flight at once when the aggregator answers many parties. */
const SEND_CONCURRENCY = 8;

/** What happened, for a progress display or a test that drops a party at a chosen point. */
export type SecAggProgress =
  /** A party sent its message of this round to the aggregator, or received the aggregator's answer. */
  | { readonly event: 'sent' | 'received'; readonly round: number; readonly bytes: number }
  /** The aggregator accepted a party's message of this round. */
  | { readonly event: 'accepted'; readonly round: number; readonly party: string }
  /** The aggregator refused a party's message: that party is out of the run from this round on. */
  | { readonly event: 'refused'; readonly round: number; readonly party: string; readonly error: MalusError }
  /** The aggregator closed the round with this many of the expected messages. */
  | { readonly event: 'closed'; readonly round: number; readonly messages: number; readonly expected: number }
  /** The aggregator sent its answers for the round. */
  | { readonly event: 'relayed'; readonly round: number; readonly messages: number; readonly bytes: number }
  /** The aggregator has the sum (and has sent it to the other receivers), or a receiver got it. */
  | { readonly event: 'result'; readonly round: typeof RESULT_STEP; readonly contributors: number; readonly dropped: number };

export interface StartSecAggOptions {
  /** Signs as the aggregator: a receiver of the computation. */
  readonly client: MalusClient;
  readonly collaborationId: string;
  /** The name of a `secureAggregation[]` entry of the active agreement. */
  readonly computation: string;
  /** The aggregator's keys; the signing secret signs its own party's messages and the result. */
  readonly keys: PartyKeys;
  /** The aggregator's own vector, when it is also one of the computation's parties. */
  readonly input?: ArrayLike<number>;
  /** How long to wait for the messages of rounds 1 to 4 (default 30 s). */
  readonly roundTimeoutMs?: number;
  /** How long round 0 waits for parties to join (default 10 min). */
  readonly joinTimeoutMs?: number;
  readonly intervalMs?: number;
  /** Stops the run: it is finished as failed. */
  readonly signal?: AbortSignal;
  /** Called once the run exists, before anything is sent: the parties need its id. */
  readonly onStarted?: (run: RunView) => void;
  readonly onProgress?: (progress: SecAggProgress) => void;
}

export interface JoinSecAggOptions {
  readonly client: MalusClient;
  readonly collaborationId: string;
  readonly runId: string;
  readonly keys: PartyKeys;
  /** The party's vector; required of the computation's parties, refused from a receiver that is none. */
  readonly input?: ArrayLike<number>;
  /** Leaving: the party stops where it is, and the others go on without it (a dropout). */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: SecAggProgress) => void;
  /** How long to wait for each message from the aggregator, and for the run to end (default 15 min). */
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

export interface SecAggRunOutcome {
  readonly run: RunView;
  readonly result: SecAggResult;
}

export interface JoinSecAggOutcome {
  /** As the party last saw it: ended for a party that only contributes. */
  readonly run: RunView;
  /** The sum, for a receiver. */
  readonly result?: SecAggResult;
}

interface Terms {
  readonly agreement: Agreement;
  readonly hash: string;
  readonly computation: SecaggComputation;
}

/** The whole of one run, as both sides derive it from the agreement. */
interface Session {
  readonly client: MalusClient;
  readonly collaborationId: string;
  readonly terms: Terms;
  readonly run: RunView;
  readonly me: string;
  readonly keys: PartyKeys;
  readonly params: SecAggParams;
  readonly allowed: SecAggAllowed;
  readonly digest: Uint8Array;
  readonly channel: RunChannel;
  readonly progress: (progress: SecAggProgress) => void;
}

// ---- Inputs ----

/**
 * Checks a party's vector: exactly vectorLength entries, each a finite number (clipping to the
 * agreement's range happens in the protocol). Returns a copy.
 */
export function checkSecAggInput(input: ArrayLike<number>, vectorLength: number, what = 'the input'): Float64Array {
  if (input.length !== vectorLength) {
    throw new MalusError('invalid-input', `${what} has ${input.length} entries; the computation takes ${vectorLength}`);
  }
  const out = new Float64Array(vectorLength);
  for (let i = 0; i < vectorLength; i++) {
    const x: unknown = input[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      const message = `entry ${i} of ${what} is not a finite number`;
      throw new MalusError('invalid-input', message, { issues: [{ path: `[${i}]`, message: `expected a finite number, got ${describeValue(x)}` }] });
    }
    out[i] = x;
  }
  return out;
}

function describeValue(x: unknown): string {
  if (typeof x === 'number') return String(x);
  if (typeof x === 'string') return `the string ${JSON.stringify(x.slice(0, 40))}`;
  return x === null ? 'null' : typeof x;
}

/** Reads a vector file: a JSON array of numbers, or {"vector": [...]}. */
export function readVectorFile(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot read vector file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new MalusError('invalid-input', `vector file ${path} is not JSON: ${error instanceof Error ? error.message : 'parse error'}`);
  }
  const shape = `vector file ${path}: expected a JSON array of numbers or {"vector": [numbers]}`;
  let list: unknown = parsed;
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const keys = Object.keys(parsed);
    // Strict: a misspelt key must not pass for an empty or a different vector.
    if (keys.length !== 1 || keys[0] !== 'vector') throw new MalusError('invalid-input', `${shape}, not an object with the keys ${keys.join(', ') || '(none)'}`);
    list = (parsed as { vector: unknown }).vector;
  }
  if (!Array.isArray(list)) throw new MalusError('invalid-input', shape);
  const entries = list as unknown[];
  entries.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new MalusError('invalid-input', `vector file ${path}: entry ${i} is not a finite number (got ${describeValue(x)})`, {
        issues: [{ path: `[${i}]`, message: 'expected a finite number' }],
      });
    }
  });
  return entries as number[];
}

// ---- The agreement and the run ----

function callerOf(client: MalusClient, keys: PartyKeys): string {
  const signer = client.keys?.identity.id;
  if (signer !== keys.identity.id) {
    throw new MalusError('invalid-input', `the client signs as ${signer ?? 'nobody'}, but the keys given are those of ${keys.identity.id}`);
  }
  return signer;
}

/** The computation in the active agreement, recomputed from its signatures: the server's word is not taken. */
async function secaggTerms(client: MalusClient, collaborationId: string, name: string): Promise<Terms> {
  const active = await activeTerms(client, collaborationId);
  const computation = active.agreement.secureAggregation?.find((c) => c.name === name);
  if (computation === undefined) {
    throw new MalusError('computation-not-allowed', `the active agreement of ${collaborationId} has no secure aggregation named ${name}`);
  }
  return { agreement: active.agreement, hash: active.hash, computation };
}

/** The run must be open, of this computation, under exactly the active agreement and its terms. */
function checkSecAggRun(run: RunView, terms: Terms): void {
  const c = terms.computation;
  if (run.kind !== 'secagg' || run.computation !== c.name) {
    throw new MalusError('invalid-input', `run ${run.id} is a ${run.kind} run of ${run.computation}, not a secure aggregation of ${c.name}`);
  }
  checkRunTerms(run, terms);
  const p = run.parameters as Record<string, unknown>;
  const receivers = Array.isArray(p.receivers) ? (p.receivers as unknown[]) : [];
  const same =
    p.threshold === c.threshold &&
    p.vectorLength === c.vectorLength &&
    p.clip === c.clip &&
    p.fractionBits === c.fractionBits &&
    receivers.length === c.receivers.length &&
    receivers.every((r, i) => r === c.receivers[i]);
  if (!same) {
    throw new MalusError('agreement-mismatch', `run ${run.id} records other terms than ${c.name} of the active agreement`);
  }
}

/** SecAggParams and the allowed set, from the agreement: the parties' keys are the ones they signed it with. */
function protocolTerms(terms: Terms, collaborationId: string, runId: string): { params: SecAggParams; allowed: SecAggAllowed; digest: Uint8Array } {
  const c = terms.computation;
  const parties = c.parties.map((id) => {
    const party = terms.agreement.parties.find((p) => p.id === id);
    const key = party === undefined ? undefined : decodeSigningKey(party.signingKey);
    if (key === undefined || 'problem' in key) throw new MalusError('agreement-invalid', `party ${id} of ${c.name} has no usable signing key in the agreement`);
    return { id, signingKey: key.key };
  });
  const scale = 2 ** c.fractionBits;
  const params: SecAggParams = { collaboration: collaborationId, roundId: runId, parties, threshold: c.threshold, vectorLength: c.vectorLength, clip: c.clip, scale };
  const exactly = (v: number): { min: number; max: number } => ({ min: v, max: v });
  const allowed: SecAggAllowed = { vectorLength: exactly(c.vectorLength), threshold: exactly(c.threshold), clip: exactly(c.clip), scale: exactly(scale) };
  return { params, allowed, digest: checkRun(params, allowed).digest };
}

function inputFor(me: string, computation: SecaggComputation, input: ArrayLike<number> | undefined): Float64Array | undefined {
  if (computation.parties.includes(me)) {
    if (input === undefined) throw new MalusError('invalid-input', `${me} is a party of ${computation.name}: it must bring an input vector`);
    return checkSecAggInput(input, computation.vectorLength);
  }
  if (input !== undefined) throw new MalusError('invalid-input', `${me} is a receiver of ${computation.name} but not one of its parties: it brings no input`);
  return undefined;
}

function sessionOf(
  base: { client: MalusClient; collaborationId: string; keys: PartyKeys; intervalMs?: number; signal?: AbortSignal; onProgress?: (p: SecAggProgress) => void },
  terms: Terms,
  run: RunView,
  me: string,
): Session {
  return {
    client: base.client,
    collaborationId: base.collaborationId,
    terms,
    run,
    me,
    keys: base.keys,
    ...protocolTerms(terms, base.collaborationId, run.id),
    channel: {
      client: base.client,
      collaborationId: base.collaborationId,
      runId: run.id,
      ...(base.intervalMs === undefined ? {} : { intervalMs: base.intervalMs }),
      ...(base.signal === undefined ? {} : { signal: base.signal }),
    },
    progress: base.onProgress ?? (() => undefined),
  };
}

// ---- The result message (step 5) ----

/** What a result is bound to: the run's parameters and their digest. */
export interface ResultContext {
  readonly params: SecAggParams;
  readonly digest: Uint8Array;
}

// Binary and exact: a label, the collaboration, the run and the parameter digest it belongs to, the
// contributors and the dropped (sorted ids), the quantized sum as big-endian u32 words, and the
// aggregator's Ed25519 signature over every byte before it. The relay cannot alter it unseen.
const RESULT_LABEL = 'malus.secagg/v1 result';
const SIGNATURE_BYTES = 64;

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array[] {
  return [u32(bytes.byteLength), bytes];
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

export function encodeSecAggResult(session: ResultContext, result: SecAggResult, signingSecret: Uint8Array): Uint8Array {
  const text = (s: string): Uint8Array[] => lengthPrefixed(new TextEncoder().encode(s));
  const ids = (list: readonly string[]): Uint8Array[] => [u32(list.length), ...list.flatMap(text)];
  const words = new Uint8Array(4 * result.quantizedSum.length);
  const view = new DataView(words.buffer);
  result.quantizedSum.forEach((w, i) => {
    view.setUint32(4 * i, w);
  });
  const body = concat([
    ...text(RESULT_LABEL),
    ...text(session.params.collaboration),
    ...text(session.params.roundId),
    ...lengthPrefixed(session.digest),
    ...ids(result.contributors),
    ...ids(result.dropped),
    u32(result.quantizedSum.length),
    words,
  ]);
  return concat([body, signEd25519(signingSecret, body)]);
}

class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get position(): number {
    return this.offset;
  }

  take(length: number): Uint8Array {
    if (length > this.bytes.byteLength - this.offset) throw badResult('it ends early');
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  u32(): number {
    const at = this.offset;
    this.take(4);
    return this.view.getUint32(at);
  }

  text(max: number): string {
    const length = this.u32();
    if (length > max) throw badResult('a text field is too long');
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(length));
    } catch (error) {
      if (isMalusError(error)) throw error;
      throw badResult('a text field is not UTF-8');
    }
  }
}

function badResult(why: string): MalusError {
  return new MalusError('invalid-input', `the result the aggregator sent is malformed: ${why}`);
}

function readIds(reader: Reader, parties: ReadonlySet<string>, what: string): string[] {
  const count = reader.u32();
  if (count > parties.size) throw badResult(`it lists ${count} ${what}, more than the run has parties`);
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = reader.text(128);
    if (!parties.has(id)) throw badResult(`${id} is not a party of the run`);
    const last = ids.at(-1);
    if (last !== undefined && !(last < id)) throw badResult(`the ${what} are not sorted and free of repeats`);
    ids.push(id);
  }
  return ids;
}

export function decodeSecAggResult(session: ResultContext, aggregatorKey: Uint8Array, bytes: Uint8Array): SecAggResult {
  const { params } = session;
  if (bytes.byteLength < SIGNATURE_BYTES) throw badResult('it is too short');
  const body = bytes.subarray(0, bytes.byteLength - SIGNATURE_BYTES);
  // The signature first: nothing unsigned is parsed further.
  if (!verifyEd25519(aggregatorKey, body, bytes.subarray(body.byteLength))) {
    throw new MalusError('signature-invalid', 'the result does not carry the aggregator\'s valid signature');
  }
  const reader = new Reader(body);
  if (reader.text(64) !== RESULT_LABEL) throw badResult('not a secure-aggregation result');
  if (reader.text(128) !== params.collaboration || reader.text(128) !== params.roundId) throw badResult('it belongs to another run');
  const digestLength = reader.u32();
  const digest = reader.take(digestLength);
  if (!equalBytes(digest, session.digest)) throw badResult('it was computed with other parameters');
  const parties = new Set(params.parties.map((p) => p.id));
  const contributors = readIds(reader, parties, 'contributors');
  const dropped = readIds(reader, parties, 'dropped parties');
  if (contributors.length < params.threshold) throw badResult(`${contributors.length} contributors, fewer than the threshold ${params.threshold}`);
  if (dropped.some((id) => contributors.includes(id))) throw badResult('a party is both a contributor and dropped');
  if (reader.u32() !== params.vectorLength) throw badResult(`the sum does not have ${params.vectorLength} entries`);
  const words = reader.take(4 * params.vectorLength);
  if (reader.position !== body.byteLength) throw badResult('bytes follow the sum');
  const view = new DataView(words.buffer, words.byteOffset, words.byteLength);
  const quantizedSum = new Uint32Array(params.vectorLength);
  for (let i = 0; i < quantizedSum.length; i++) quantizedSum[i] = view.getUint32(4 * i);
  return { sum: dequantize(quantizedSum, params.scale), quantizedSum, contributors, dropped };
}

function signingKeyOf(session: Session, id: string): Uint8Array {
  const party = session.terms.agreement.parties.find((p) => p.id === id);
  const key = party === undefined ? undefined : decodeSigningKey(party.signingKey);
  if (key === undefined || 'problem' in key) throw new MalusError('agreement-invalid', `party ${id} has no usable signing key in the agreement`);
  return key.key;
}

// ---- The aggregator ----

async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A relayed message, accepted only if the party the relay authenticated is the one that signed it. */
function acceptFrom(server: ServerState, sender: string, data: Uint8Array): ServerState {
  const m = decodeMessage(data);
  if ('sender' in m && m.sender !== sender) throw new MalusError('forbidden', `${sender} relayed a message signed by ${m.sender}: refused`);
  return serverAccept(server, data);
}

async function aggregate(
  session: Session,
  input: Float64Array | undefined,
  timeouts: { join: number; round: number },
): Promise<SecAggResult> {
  const { params, allowed, me, channel } = session;
  let server = createServer({ params, allowed });
  // An aggregator that contributes runs its own party here: the relay takes no post to oneself.
  let own: PartyState | undefined;
  let ownMessage: Uint8Array | undefined;
  if (input !== undefined) {
    const step = partyAdvertise(createParty({ params, allowed, id: me, identitySecretKey: session.keys.signingSecret, input }));
    own = step.state;
    ownMessage = step.message;
  }
  let expected: readonly string[] = params.parties.map((p) => p.id);
  for (let round = 0; round <= 4; round++) {
    channel.signal?.throwIfAborted();
    let accepted = 0;
    if (ownMessage !== undefined) {
      server = serverAccept(server, ownMessage);
      accepted++;
      session.progress({ event: 'accepted', round, party: me });
    }
    const others = expected.filter((id) => id !== me);
    const wait = round === 0 ? timeouts.join : timeouts.round;
    const arrived = others.length === 0 ? [] : await receiveMessages(channel, round, { from: others, deadline: Date.now() + wait, partial: true });
    for (const m of arrived) {
      try {
        server = acceptFrom(server, m.sender, m.data);
        accepted++;
        session.progress({ event: 'accepted', round, party: m.sender });
      } catch (error) {
        // A refused message is that party leaving the run, which the protocol tolerates (up to n - t).
        if (!isMalusError(error)) throw error;
        session.progress({ event: 'refused', round, party: m.sender, error });
      }
    }
    session.progress({ event: 'closed', round, messages: accepted, expected: expected.length });
    const closed = serverClose(server);
    server = closed.state;
    if (closed.result !== undefined) return closed.result;

    ownMessage = undefined;
    const outgoing = closed.outbox.filter((o) => o.to !== me);
    const toMe = closed.outbox.find((o) => o.to === me);
    if (toMe !== undefined && own !== undefined) {
      const step = partyRespond(own, toMe.message);
      own = step.state;
      ownMessage = step.message;
    }
    await eachLimited(outgoing, SEND_CONCURRENCY, (o) => sendMessage(channel, o.to, round, o.message));
    session.progress({ event: 'relayed', round, messages: outgoing.length, bytes: outgoing.reduce((n, o) => n + o.message.byteLength, 0) });
    expected = closed.outbox.map((o) => o.to);
  }
  throw new MalusError('internal', 'round 4 closed without a result');
}

function failureCode(error: unknown): ErrorCode {
  return isMalusError(error) ? error.code : 'internal';
}

/**
 * Starts a run of the computation as its aggregator and runs it to the end: the parties join with
 * joinSecAggRun and the run id onStarted gives. Returns the finished run and the sum; on any
 * failure the run is finished as failed (with the error's code) and the error is rethrown.
 */
export async function startSecAggRun(options: StartSecAggOptions): Promise<SecAggRunOutcome> {
  const { client, collaborationId } = options;
  const me = callerOf(client, options.keys);
  const terms = await secaggTerms(client, collaborationId, options.computation);
  if (!terms.computation.receivers.includes(me)) {
    throw new MalusError('forbidden', `only a receiver of ${terms.computation.name} aggregates it; ${me} is none`);
  }
  // Checked before the run exists: a bad vector must not leave a failed run in the log.
  const input = inputFor(me, terms.computation, options.input);
  const started = await startRun(client, collaborationId, { kind: 'secagg', computation: terms.computation.name });
  try {
    checkSecAggRun(started, terms);
    const session = sessionOf(options, terms, started, me);
    options.onStarted?.(started);
    const result = await aggregate(session, input, {
      join: options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS,
      round: options.roundTimeoutMs ?? DEFAULT_ROUND_TIMEOUT_MS,
    });
    const message = encodeSecAggResult(session, result, options.keys.signingSecret);
    const receivers = terms.computation.receivers.filter((id) => id !== me);
    await eachLimited(receivers, SEND_CONCURRENCY, (to) => sendMessage(session.channel, to, RESULT_STEP, message));
    session.progress({ event: 'result', round: RESULT_STEP, contributors: result.contributors.length, dropped: result.dropped.length });
    const run = await finishRun(client, collaborationId, started.id, {
      outcome: 'succeeded',
      summary: { kind: 'secagg', contributors: result.contributors.length, dropouts: result.dropped.length },
    });
    return { run, result };
  } catch (error) {
    // Best effort: the original error is what the caller needs, even if the run cannot be ended.
    await finishRun(client, collaborationId, started.id, { outcome: 'failed', summary: { kind: 'secagg', code: failureCode(error) } }).catch(() => undefined);
    throw error;
  }
}

// ---- A party ----

/** Waits for the aggregator's message of a step, giving up early if the run ends without it. */
async function fromAggregator(session: Session, step: number, timeoutMs: number): Promise<Uint8Array> {
  const aggregator = session.run.startedBy;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const slice = Math.min(deadline, Date.now() + STATUS_EVERY_MS);
    const [got] = await receiveMessages(session.channel, step, { from: [aggregator], deadline: slice, partial: true });
    if (got !== undefined) return got.data;
    const run = await getRun(session.client, session.collaborationId, session.run.id);
    if (run.state !== 'open') throw endedEarly(run, `before the aggregator's step ${step} message arrived`);
    if (Date.now() > deadline) {
      throw new MalusError('request-timeout', `run ${run.id}: no step ${step} message from the aggregator ${aggregator} in ${Math.round(timeoutMs / 1000)} s`);
    }
  }
}

function endedEarly(run: RunView, when: string): MalusError {
  const code = run.summary?.code;
  return new MalusError('conflict', `run ${run.id} ended ${run.state}${code === undefined ? '' : ` (${code})`} ${when}`);
}

async function waitForEnd(session: Session, timeoutMs: number): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  const every = Math.max(session.channel.intervalMs ?? 100, 250);
  for (;;) {
    const run = await getRun(session.client, session.collaborationId, session.run.id);
    if (run.state === 'finished') return run;
    if (run.state === 'failed') throw endedEarly(run, 'after this party sent its last message: no sum');
    if (Date.now() > deadline) throw new MalusError('request-timeout', `run ${run.id} did not end in ${Math.round(timeoutMs / 1000)} s`);
    session.channel.signal?.throwIfAborted();
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

/**
 * Takes part in a run the aggregator started: a party of the computation sends its rounds, a
 * receiver gets the sum. Nothing is sent unless the run is open under the active agreement and was
 * started by one of the computation's receivers.
 */
export async function joinSecAggRun(options: JoinSecAggOptions): Promise<JoinSecAggOutcome> {
  const { client, collaborationId } = options;
  const me = callerOf(client, options.keys);
  const found = await getRun(client, collaborationId, options.runId);
  if (found.kind !== 'secagg') throw new MalusError('invalid-input', `run ${found.id} is a ${found.kind} run, not a secure aggregation`);
  const terms = await secaggTerms(client, collaborationId, found.computation);
  const c = terms.computation;
  // Who may take part first: an outsider hears "forbidden" whatever state the run is in.
  if (!c.parties.includes(me) && !c.receivers.includes(me)) throw new MalusError('forbidden', `${me} is neither a party nor a receiver of ${c.name}`);
  checkSecAggRun(found, terms);
  if (!c.receivers.includes(found.startedBy)) {
    throw new MalusError('forbidden', `run ${found.id} was started by ${found.startedBy}, who is not a receiver of ${c.name}: nothing is sent to it`);
  }
  if (found.startedBy === me) throw new MalusError('conflict', `${me} started run ${found.id}: it aggregates the run and does not join it`);
  const input = inputFor(me, c, options.input);
  const session = sessionOf(options, terms, found, me);
  const timeoutMs = options.timeoutMs ?? DEFAULT_PARTY_TIMEOUT_MS;
  const aggregator = found.startedBy;

  if (input !== undefined) {
    let step = partyAdvertise(createParty({ params: session.params, allowed: session.allowed, id: me, identitySecretKey: options.keys.signingSecret, input }));
    for (let round = 0; ; round++) {
      session.channel.signal?.throwIfAborted();
      await sendMessage(session.channel, aggregator, round, step.message);
      session.progress({ event: 'sent', round, bytes: step.message.byteLength });
      if (round === 4) break;
      const answer = await fromAggregator(session, round, timeoutMs);
      session.progress({ event: 'received', round, bytes: answer.byteLength });
      step = partyRespond(step.state, answer);
    }
  }
  if (c.receivers.includes(me)) {
    const bytes = await fromAggregator(session, RESULT_STEP, timeoutMs);
    const result = decodeSecAggResult(session, signingKeyOf(session, aggregator), bytes);
    session.progress({ event: 'result', round: RESULT_STEP, contributors: result.contributors.length, dropped: result.dropped.length });
    return { run: await getRun(client, collaborationId, found.id), result };
  }
  return { run: await waitForEnd(session, timeoutMs) };
}
