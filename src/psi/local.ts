// Both roles in one process, every message through its binary form: for tests, benchmarks and
// demos. A real run sends the same bytes between two parties (the transport is not here).
import { decodeExpected, encodeMessage, type PsiMode, type SetEncoding } from './messages.js';
import type { PsiContext } from './context.js';
import type { KernelExecutor } from './kernel.js';
import {
  receiverRequest,
  receiverResult,
  receiverSumRequest,
  receiverSumResult,
  senderReply,
  senderSumReply,
  type CardinalityResult,
  type IntersectionResult,
  type PsiItem,
  type SumResult,
} from './protocol.js';

export interface LocalPsiOptions {
  readonly context: PsiContext;
  readonly mode: PsiMode;
  readonly setEncoding?: SetEncoding;
  readonly falsePositiveBits?: number;
  readonly sumBits?: number;
  /** sum: the sender's values, one per sender item. */
  readonly values?: readonly (number | bigint)[];
  readonly executor?: KernelExecutor;
}

export async function runPsiLocally(
  receiverItems: readonly PsiItem[],
  senderItems: readonly PsiItem[],
  options: LocalPsiOptions,
): Promise<CardinalityResult | IntersectionResult | SumResult> {
  const { context, mode, executor } = options;
  const started = await receiverRequest(receiverItems, {
    context,
    mode,
    ...(options.setEncoding === undefined ? {} : { setEncoding: options.setEncoding }),
    ...(options.falsePositiveBits === undefined ? {} : { falsePositiveBits: options.falsePositiveBits }),
    ...(options.sumBits === undefined ? {} : { sumBits: options.sumBits }),
    ...(executor === undefined ? {} : { executor }),
  });
  const request = decodeExpected(encodeMessage(started.request), 'request');
  const answered = await senderReply(request, senderItems, {
    context,
    modes: [mode],
    ...(options.values === undefined ? {} : { values: options.values }),
    ...(executor === undefined ? {} : { executor }),
  });
  const reply = decodeExpected(encodeMessage(answered.reply), 'reply');
  const step = executor === undefined ? {} : { executor };
  if (mode !== 'sum') return receiverResult(started.state, reply, step);
  const summing = await receiverSumRequest(started.state, reply, step);
  const share = await senderSumReply(answered.state, decodeExpected(encodeMessage(summing.request), 'sum-request'));
  return receiverSumResult(summing.state, decodeExpected(encodeMessage(share), 'sum-reply'), step);
}
