import type { PsiComputation } from '../agreement/index.js';
import { finishRun, getRun, listRuns, startRun, type MalusClient, type RunView } from '../client/index.js';
import { MalusError, isMalusError, type ErrorCode } from '../errors/index.js';
import {
  decodeExpected,
  encodeMessage,
  receiverRequest,
  receiverResult,
  receiverSumRequest,
  receiverSumResult,
  senderReply,
  senderSumReply,
  type CardinalityResult,
  type IntersectionResult,
  type KernelExecutor,
  type PsiContext,
  type PsiMode,
  type SetEncoding,
  type SumResult,
} from '../psi/index.js';
import type { PartyKeys } from '../identity/index.js';
import { activeTerms, checkRunTerms, type ActiveTerms } from './agreement.js';
import { agreedSigningKey, openPsiMessage, sealPsiMessage } from './signed.js';
import { receiveMessages, sendMessage, type RunChannel } from './channel.js';

// A PSI run between two parties through the relay (docs/psi.md, docs/relay.md). The receiver starts
// the run and sends its blinded set (step 0); the sender answers with the doubly blinded set and its
// own (step 0); in the sum mode the receiver sends the re-randomized ciphertext sum (step 1) and the
// sender its decryption share (step 1). Every message is signed end to end (signed.ts). The
// receiver ends the run with the set sizes only.

export type PsiOutcome = CardinalityResult | IntersectionResult | SumResult;

/** How the receiver's messages reach the sender and back: through the relay, or directly (direct.ts). */
export interface ReceiverLink {
  /** Sends the message of a step and waits for the sender's answer to it. */
  exchange(step: number, data: Uint8Array, deadline: number): Promise<Uint8Array>;
}

export interface SenderLink {
  /** Waits for the receiver's message of a step. */
  next(step: number, deadline: number): Promise<Uint8Array>;
  /** Answers the message of that step. */
  answer(step: number, data: Uint8Array): Promise<void>;
}

/** The receiver's link through the relay: each message signed by the receiver, each answer checked against the sender's agreed key. */
export function relayReceiverLink(channel: RunChannel, keys: PartyKeys, sender: string, senderKey: Uint8Array): ReceiverLink {
  return {
    async exchange(step, data, deadline) {
      await sendMessage(channel, sender, step, sealPsiMessage(keys, channel.runId, step, 'request', data));
      const [answer] = await receiveMessages(channel, step, { from: [sender], deadline });
      if (answer === undefined) throw new MalusError('request-timeout', `run ${channel.runId}: the sender did not answer step ${step}`);
      return openPsiMessage(senderKey, channel.runId, step, 'answer', answer.data);
    },
  };
}

/** The sender's link through the relay, signed and checked the other way round. */
export function relaySenderLink(channel: RunChannel, keys: PartyKeys, receiver: string, receiverKey: Uint8Array): SenderLink {
  return {
    async next(step, deadline) {
      const [incoming] = await receiveMessages(channel, step, { from: [receiver], deadline });
      if (incoming === undefined) throw new MalusError('request-timeout', `run ${channel.runId}: the receiver sent nothing for step ${step}`);
      return openPsiMessage(receiverKey, channel.runId, step, 'request', incoming.data);
    },
    answer: (step, data) => sendMessage(channel, receiver, step, sealPsiMessage(keys, channel.runId, step, 'answer', data)),
  };
}

export interface PsiProgress {
  readonly phase: 'started' | 'blinded' | 'sent' | 'received' | 'answered' | 'finished';
  readonly step: number;
  /** Bytes of the message just sent or received. */
  readonly bytes?: number;
}

interface PsiRunCommon {
  readonly client: MalusClient;
  readonly collaborationId: string;
  /** Which PSI of the agreement; needed only when the caller has several in its role. */
  readonly computation?: string;
  /** How long to wait for the other party at each step; default 10 minutes. */
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  readonly executor?: KernelExecutor;
  readonly onProgress?: (progress: PsiProgress) => void;
}

export interface PsiReceiverParameters extends PsiRunCommon {
  readonly mode: PsiMode;
  readonly items: readonly string[];
  readonly setEncoding?: SetEncoding;
  readonly falsePositiveBits?: number;
  readonly sumBits?: number;
  /** Called once the run exists, before anything is sent: the sender needs its id (or finds it). */
  readonly onStarted?: (run: RunView) => void;
  /** Where the messages go; default through the relay. */
  readonly link?: (run: RunView, computation: PsiComputation) => ReceiverLink;
}

export interface PsiSenderParameters extends PsiRunCommon {
  readonly items: readonly string[];
  /** The sum mode: one non-negative integer per item. */
  readonly values?: readonly bigint[];
  /** The run to answer; by default the newest open run of a PSI the caller sends in, waited for. */
  readonly runId?: string;
  /** Where the messages come from; default through the relay. */
  readonly link?: (run: RunView, computation: PsiComputation) => SenderLink;
}

export interface PsiSenderOutcome {
  readonly run: RunView;
  readonly mode: PsiMode;
  /** The receiver's distinct items, as its request showed. */
  readonly receiverCount: number;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** The agreement's PSI for this party in this role: the one named, or the only one. */
export function psiComputationFor(terms: ActiveTerms, partyId: string, role: 'sender' | 'receiver', name?: string): PsiComputation {
  const mine = (terms.agreement.psi ?? []).filter((c) => c[role] === partyId && (name === undefined || c.name === name));
  const only = mine[0];
  if (only === undefined) {
    throw new MalusError('computation-not-allowed', `the active agreement has no PSI${name === undefined ? '' : ` named ${name}`} with this party as ${role}`);
  }
  if (mine.length > 1) {
    throw new MalusError('usage', `this party is the ${role} of several PSIs (${mine.map((c) => c.name).join(', ')}): name one with --computation`);
  }
  return only;
}

function checkSetSize(items: readonly string[], computation: PsiComputation, who: string): void {
  const distinct = new Set(items).size;
  if (distinct > computation.maxSetSize) {
    throw new MalusError('computation-not-allowed', `${who} ${distinct} distinct elements; ${computation.name} allows at most ${computation.maxSetSize}`);
  }
}

const relayChannel = (parameters: PsiRunCommon, run: RunView): RunChannel => ({
  client: parameters.client,
  collaborationId: parameters.collaborationId,
  runId: run.id,
  ...(parameters.intervalMs === undefined ? {} : { intervalMs: parameters.intervalMs }),
});

function keysOf(client: MalusClient): PartyKeys {
  if (client.keys === undefined) throw new MalusError('usage', 'a PSI run needs a client with the party’s keys');
  return client.keys;
}

const failureCode = (error: unknown): ErrorCode => (isMalusError(error) ? error.code : 'server-error');

/** Ends the run as failed with the error's code, keeping the original error if that fails too. */
async function failRun(client: MalusClient, collaborationId: string, runId: string, error: unknown): Promise<never> {
  try {
    await finishRun(client, collaborationId, runId, { outcome: 'failed', summary: { kind: 'psi', code: failureCode(error) } });
  } catch {
    // The run may already be closed by the other party; the first error is the one to report.
  }
  throw error;
}

/** The receiver: starts the run, learns what the mode gives, and ends the run with the set sizes. */
export async function receivePsi(parameters: PsiReceiverParameters): Promise<{ run: RunView; result: PsiOutcome }> {
  const { client, collaborationId, mode } = parameters;
  const keys = keysOf(client);
  const partyId = keys.identity.id;
  const terms = await activeTerms(client, collaborationId);
  const computation = psiComputationFor(terms, partyId, 'receiver', parameters.computation);
  if (!computation.modes.includes(mode)) {
    throw new MalusError('computation-not-allowed', `${computation.name} allows the modes ${computation.modes.join(', ')}, not ${mode}`);
  }
  checkSetSize(parameters.items, computation, 'the input has');
  const run = await startRun(client, collaborationId, {
    kind: 'psi',
    computation: computation.name,
    mode,
    parameters: {
      ...(parameters.setEncoding === undefined ? {} : { setEncoding: parameters.setEncoding }),
      ...(parameters.falsePositiveBits === undefined ? {} : { falsePositiveBits: parameters.falsePositiveBits }),
      ...(parameters.sumBits === undefined ? {} : { sumBits: parameters.sumBits }),
    },
  });
  parameters.onStarted?.(run);
  parameters.onProgress?.({ phase: 'started', step: 0 });
  try {
    checkRunTerms(run, terms);
    const context: PsiContext = { collaborationId, runId: run.id };
    const link = parameters.link?.(run, computation) ?? relayReceiverLink(relayChannel(parameters, run), keys, computation.sender, agreedSigningKey(terms.agreement, computation.sender));
    const step = parameters.executor === undefined ? {} : { executor: parameters.executor };
    const timeout = parameters.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const started = await receiverRequest(parameters.items, {
      context,
      mode,
      ...step,
      ...(parameters.setEncoding === undefined ? {} : { setEncoding: parameters.setEncoding }),
      ...(parameters.falsePositiveBits === undefined ? {} : { falsePositiveBits: parameters.falsePositiveBits }),
      ...(parameters.sumBits === undefined ? {} : { sumBits: parameters.sumBits }),
    });
    parameters.onProgress?.({ phase: 'blinded', step: 0 });
    const request = encodeMessage(started.request);
    parameters.onProgress?.({ phase: 'sent', step: 0, bytes: request.byteLength });
    const replyBytes = await link.exchange(0, request, Date.now() + timeout);
    parameters.onProgress?.({ phase: 'received', step: 0, bytes: replyBytes.byteLength });
    const reply = decodeExpected(replyBytes, 'reply');
    let result: PsiOutcome;
    if (mode === 'sum') {
      const summing = await receiverSumRequest(started.state, reply, step);
      const sumRequest = encodeMessage(summing.request);
      parameters.onProgress?.({ phase: 'sent', step: 1, bytes: sumRequest.byteLength });
      const share = await link.exchange(1, sumRequest, Date.now() + timeout);
      parameters.onProgress?.({ phase: 'received', step: 1, bytes: share.byteLength });
      result = await receiverSumResult(summing.state, decodeExpected(share, 'sum-reply'), step);
    } else {
      result = await receiverResult(started.state, reply, step);
    }
    if (result.senderCount > computation.maxSetSize) {
      throw new MalusError('computation-not-allowed', `the sender brought ${result.senderCount} elements; ${computation.name} allows at most ${computation.maxSetSize}`);
    }
    const finished = await finishRun(client, collaborationId, run.id, {
      outcome: 'succeeded',
      summary: {
        kind: 'psi',
        setSizes: { sender: result.senderCount, receiver: result.receiverCount },
        setEncoding: result.setEncoding,
        falsePositiveRate: result.falsePositiveRate,
      },
    });
    parameters.onProgress?.({ phase: 'finished', step: mode === 'sum' ? 1 : 0 });
    return { run: finished, result };
  } catch (error) {
    return failRun(client, collaborationId, run.id, error);
  }
}

/** The newest open PSI run this party sends in, polled for until one appears. */
async function findRun(parameters: PsiSenderParameters, partyId: string, terms: ActiveTerms, deadline: number): Promise<RunView> {
  const { client, collaborationId } = parameters;
  if (parameters.runId !== undefined) return getRun(client, collaborationId, parameters.runId);
  const computation = psiComputationFor(terms, partyId, 'sender', parameters.computation);
  for (;;) {
    const runs = await listRuns(client, collaborationId);
    const open = runs.find((r) => r.kind === 'psi' && r.state === 'open' && r.computation === computation.name && r.agreement === terms.hash);
    if (open !== undefined) return open;
    if (Date.now() > deadline) throw new MalusError('request-timeout', `no open run of ${computation.name} appeared in time: the receiver starts it`);
    await new Promise((resolve) => setTimeout(resolve, parameters.intervalMs ?? 250));
  }
}

/** The sender: answers one run of a PSI it sends in, learning only the receiver's set size. */
export async function sendPsi(parameters: PsiSenderParameters): Promise<PsiSenderOutcome> {
  const { client, collaborationId } = parameters;
  const keys = keysOf(client);
  const partyId = keys.identity.id;
  const terms = await activeTerms(client, collaborationId);
  const timeout = parameters.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const run = await findRun(parameters, partyId, terms, Date.now() + timeout);
  checkRunTerms(run, terms);
  if (run.kind !== 'psi' || run.mode === null) throw new MalusError('conflict', `run ${run.id} is not a PSI`);
  const mode = run.mode;
  const computation = psiComputationFor(terms, partyId, 'sender', run.computation);
  parameters.onProgress?.({ phase: 'started', step: 0 });
  try {
    if (!computation.modes.includes(mode)) throw new MalusError('computation-not-allowed', `${computation.name} does not allow the mode ${mode}`);
    if (mode === 'sum' && parameters.values === undefined) throw new MalusError('usage', 'the sum mode needs the values to add (--value-column)');
    checkSetSize(parameters.items, computation, 'the input has');
    const context: PsiContext = { collaborationId, runId: run.id };
    const link = parameters.link?.(run, computation) ?? relaySenderLink(relayChannel(parameters, run), keys, computation.receiver, agreedSigningKey(terms.agreement, computation.receiver));
    const incoming = await link.next(0, Date.now() + timeout);
    parameters.onProgress?.({ phase: 'received', step: 0, bytes: incoming.byteLength });
    const request = decodeExpected(incoming, 'request');
    // The log records the options the run started with: the request must use those.
    const chosen = run.parameters as { setEncoding?: SetEncoding; falsePositiveBits?: number; sumBits?: number };
    if (request.setEncoding !== (chosen.setEncoding ?? 'raw')) {
      throw new MalusError('conflict', `run ${run.id} started with the set encoding ${chosen.setEncoding ?? 'raw'}, but the request asks for ${request.setEncoding}`);
    }
    const answered = await senderReply(request, parameters.items, {
      context,
      // Only the mode the run declared: a request for another one is refused, not answered.
      modes: [mode],
      maxRequestCount: computation.maxSetSize,
      ...(parameters.values === undefined ? {} : { values: parameters.values }),
      ...(parameters.executor === undefined ? {} : { executor: parameters.executor }),
    });
    const reply = encodeMessage(answered.reply);
    await link.answer(0, reply);
    parameters.onProgress?.({ phase: 'answered', step: 0, bytes: reply.byteLength });
    if (mode === 'sum') {
      const sumRequest = await link.next(1, Date.now() + timeout);
      const share = encodeMessage(await senderSumReply(answered.state, decodeExpected(sumRequest, 'sum-request')));
      await link.answer(1, share);
      parameters.onProgress?.({ phase: 'answered', step: 1, bytes: share.byteLength });
    }
    parameters.onProgress?.({ phase: 'finished', step: mode === 'sum' ? 1 : 0 });
    return { run, mode, receiverCount: request.count };
  } catch (error) {
    return failRun(client, collaborationId, run.id, error);
  }
}
