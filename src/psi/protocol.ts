// Semi-honest two-party ECDH-PSI over ristretto255 (docs/psi.md), as pure message-passing steps:
//
//   receiver  receiverRequest(X)          -> request  { a H(x) }
//   sender    senderReply(request, Y)     -> reply    { b a H(x) (shuffled unless intersection), b H(y) [, Enc(v)] }
//   receiver  receiverResult(reply)       -> result   (cardinality, intersection)
//   receiver  receiverSumRequest(reply)   -> sum-request { C1 of the re-randomized sum of matched Enc(v) }   (sum)
//   sender    senderSumReply(sum-request) -> sum-reply   { x C1 }
//   receiver  receiverSumResult(sum-reply) -> result { |X ∩ Y|, Σ v }
//
// The receiver unblinds with a^-1 to get b H(x) and looks it up among the b H(y), so the sender's
// set can be sent compressed. Each side's set is a set: duplicates are dropped first (in the sum
// mode the values of a repeated sender item are added). States hold secrets: keep them in memory.
import { equalBytes } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { checkValues } from './amounts.js';
import { bloomBuild, bloomFalsePositiveRate, bloomHas, bloomShape, type Bloom } from './bloom.js';
import { psiDst, type PsiContext } from './context.js';
import { boundedDlog } from './dlog.js';
import { CIPHERTEXT_BYTES, addCiphertexts, decryptionShare, elgamalKey, encryptOwn, rerandomize } from './elgamal.js';
import { gcsBuild, gcsFalsePositiveRate, gcsHas, MAX_RICE_BITS } from './gcs.js';
import { invalidElement, psiGroup, type PsiGroup } from './group.js';
import { inThread, runBatch, runChunked, type KernelExecutor } from './kernel.js';
import {
  checkShape,
  encodedLength,
  MAX_FALSE_POSITIVE_BITS,
  MIN_FALSE_POSITIVE_BITS,
  PSI_PROTOCOL_VERSION,
  type PsiMessage,
  type PsiMode,
  type PsiReply,
  type PsiRequest,
  type PsiSumReply,
  type PsiSumRequest,
  type SenderSet,
  type SetEncoding,
} from './messages.js';
import { permuteRows, randomPermutation } from './shuffle.js';

/** An element of a set: text (hashed as UTF-8) or bytes. Normalize both sides the same way first. */
export type PsiItem = string | Uint8Array;

export const DEFAULT_FALSE_POSITIVE_BITS = 30;
export const DEFAULT_SUM_BITS = 32;

export interface PsiStepOptions {
  /** Where the scalar multiplications run: a PsiPool (createPsiPool) or, by default, this thread. */
  readonly executor?: KernelExecutor;
}

export interface ReceiverOptions extends PsiStepOptions {
  readonly context: PsiContext;
  readonly mode: PsiMode;
  /** How the sender sends its set: raw (exact; the default), gcs or bloom (smaller, with false positives). */
  readonly setEncoding?: SetEncoding;
  /** gcs and bloom: a false positive anywhere in the result has probability at most 2^-bits (default 30). */
  readonly falsePositiveBits?: number;
  /** sum: the sum is below 2^sumBits (default 32, at most 40; docs/psi.md gives the cost). */
  readonly sumBits?: number;
}

export interface SenderOptions extends PsiStepOptions {
  readonly context: PsiContext;
  /** The modes the agreement allows; a request for another fails. */
  readonly modes: readonly PsiMode[];
  /** sum: one non-negative integer per item (scale decimals with parseAmount). */
  readonly values?: readonly (number | bigint)[];
  /** Refuse a request with more elements (the agreement's maxSetSize). */
  readonly maxRequestCount?: number;
}

export interface ReceiverState {
  readonly role: 'receiver';
  readonly mode: PsiMode;
  readonly context: Uint8Array;
  readonly setEncoding: SetEncoding;
  readonly falsePositiveBits: number;
  readonly sumBits: number;
  /** The blinding scalar a (secret). */
  readonly blind: Uint8Array;
  /** The distinct items, in the order of the request. */
  readonly items: readonly PsiItem[];
  /** Where each distinct item first appears in the caller's list. */
  readonly indices: readonly number[];
  readonly requestBytes: number;
}

export interface SenderState {
  readonly role: 'sender';
  readonly mode: PsiMode;
  readonly context: Uint8Array;
  /** sum: the ElGamal secret, zeroed once the decryption share is sent. */
  readonly secret: Uint8Array | undefined;
}

export interface ReceiverSumState {
  readonly role: 'receiver-sum';
  readonly context: Uint8Array;
  readonly sumBits: number;
  /** C2 of the re-randomized sum. */
  readonly c2: Uint8Array;
  readonly size: number;
  readonly receiverCount: number;
  readonly senderCount: number;
  readonly bytes: { readonly request: number; readonly reply: number; readonly sumRequest: number };
}

export interface PsiBytes {
  readonly request: number;
  readonly reply: number;
  readonly sumRequest?: number;
  readonly sumReply?: number;
  readonly total: number;
}

interface ResultBase {
  /** The receiver's distinct items. */
  readonly receiverCount: number;
  /** The sender's distinct items. */
  readonly senderCount: number;
  readonly setEncoding: SetEncoding;
  /** The chance that the result counts an item that is not shared (0 for raw; the bound used for gcs and bloom). */
  readonly falsePositiveRate: number;
  readonly bytes: PsiBytes;
}

export interface CardinalityResult extends ResultBase {
  readonly mode: 'cardinality';
  /** |X ∩ Y|. */
  readonly size: number;
}

export interface IntersectionResult extends ResultBase {
  readonly mode: 'intersection';
  readonly size: number;
  /** The shared items, each as the receiver gave it, in its order. */
  readonly items: readonly PsiItem[];
  /** Their first positions in the receiver's list. */
  readonly indices: readonly number[];
}

export interface SumResult extends ResultBase {
  readonly mode: 'sum';
  readonly size: number;
  /** The sum of the sender's values over X ∩ Y. */
  readonly sum: bigint;
  readonly sumBits: number;
}

const encoder = new TextEncoder();
const CONTEXT_LABEL = encoder.encode('MALUS-PSI-V1-context:');
const GCS_LABEL = encoder.encode('MALUS-PSI-V1-gcs:');

function refuse(path: string, detail: string): MalusError {
  return new MalusError('invalid-input', `PSI ${path}: ${detail}`, { issues: [{ path, message: detail }] });
}

function contextTag(group: PsiGroup, dst: Uint8Array): Uint8Array {
  const input = new Uint8Array(CONTEXT_LABEL.length + dst.length);
  input.set(CONTEXT_LABEL);
  input.set(dst, CONTEXT_LABEL.length);
  return group.sha512(input).slice(0, 32);
}

const keyOf = (bytes: Uint8Array, at = 0, width = bytes.length): string => Buffer.from(bytes.buffer, bytes.byteOffset + at, width).toString('latin1');
const row = (rows: Uint8Array, i: number, width = 32): Uint8Array => rows.subarray(i * width, (i + 1) * width);
function itemBytes(item: PsiItem, path: string): Uint8Array {
  if (typeof item === 'string') return encoder.encode(item);
  // The types say so, but the items may come from untyped data.
  if ((item as unknown) instanceof Uint8Array) return item;
  throw refuse(path, 'an item must be a string or a Uint8Array');
}

/** The Rice parameter / hash count for a whole-result rate of 2^-bits over `queries` lookups. */
function perLookupBits(falsePositiveBits: number, queries: number): number {
  const bits = falsePositiveBits + Math.ceil(Math.log2(Math.max(queries, 1)));
  if (bits > MAX_RICE_BITS) throw refuse('request.falsePositiveBits', `2^-${falsePositiveBits} over ${queries} elements needs ${bits} bits per lookup, over ${MAX_RICE_BITS}; ask for fewer`);
  return bits;
}

/** 128 bits of SHA-512 over an element: what the Golomb-coded set holds. */
function digest128(group: PsiGroup, element: Uint8Array): bigint {
  const input = new Uint8Array(GCS_LABEL.length + element.length);
  input.set(GCS_LABEL);
  input.set(element, GCS_LABEL.length);
  const d = group.sha512(input);
  const view = new DataView(d.buffer, d.byteOffset, 16);
  return (view.getBigUint64(0) << 64n) | view.getBigUint64(8);
}

function wholeResultRate(perLookup: number, queries: number): number {
  return -Math.expm1(queries * Math.log1p(-perLookup));
}

async function hashAndMultiply(group: PsiGroup, executor: KernelExecutor, dst: Uint8Array, items: readonly Uint8Array[], scalar: Uint8Array): Promise<Uint8Array> {
  const uniform = group.uniformer(dst);
  const result = await runChunked(executor, 'hash-mul', scalar, items.length, (start, n) => {
    const input = new Uint8Array(n * 64);
    for (let i = 0; i < n; i++) input.set(uniform(items[start + i] ?? new Uint8Array(0)), i * 64);
    return input;
  });
  // The map reaches the identity only from one 64-byte value in 2^252.
  if ('failedAt' in result) throw new MalusError('internal', `item ${result.failedAt} hashed to the identity`);
  return result.output;
}

function checkHeader(message: PsiMessage, type: PsiMessage['type'], mode: PsiMode, context: Uint8Array): void {
  // The types say so, but a transport may hand over anything decodeMessage returned.
  if (message.type !== type) throw refuse('message.type', `expected a ${type}, got a ${message.type}`);
  checkShape(message);
  if (message.mode !== mode) throw refuse(`${message.type}.mode`, `the run is in the ${mode} mode, the message in the ${message.mode} mode`);
  if (!equalBytes(message.context, context)) throw refuse(`${message.type}.context`, 'the message belongs to another collaboration or run');
}

// ---- receiver ----------------------------------------------------------------------------------

/** Step 1 (receiver): blind the receiver's items. */
export async function receiverRequest(items: readonly PsiItem[], options: ReceiverOptions): Promise<{ state: ReceiverState; request: PsiRequest }> {
  const group = await psiGroup();
  const dst = psiDst(options.context);
  const setEncoding = options.setEncoding ?? 'raw';
  const falsePositiveBits = setEncoding === 'raw' ? 0 : (options.falsePositiveBits ?? DEFAULT_FALSE_POSITIVE_BITS);
  const sumBits = options.mode === 'sum' ? (options.sumBits ?? DEFAULT_SUM_BITS) : 0;
  if (setEncoding !== 'raw' && (!Number.isInteger(falsePositiveBits) || falsePositiveBits < MIN_FALSE_POSITIVE_BITS || falsePositiveBits > MAX_FALSE_POSITIVE_BITS)) {
    throw refuse('options.falsePositiveBits', `must be ${MIN_FALSE_POSITIVE_BITS} to ${MAX_FALSE_POSITIVE_BITS}`);
  }

  const seen = new Set<string>();
  const unique: PsiItem[] = [];
  const bytes: Uint8Array[] = [];
  const indices: number[] = [];
  for (const [i, item] of items.entries()) {
    const b = itemBytes(item, `items[${i}]`);
    const k = keyOf(b);
    if (seen.has(k)) continue;
    seen.add(k);
    unique.push(item);
    bytes.push(b);
    indices.push(i);
  }

  // Fail here, not at the sender, when the rate cannot be met over this many lookups.
  if (setEncoding !== 'raw') perLookupBits(falsePositiveBits, bytes.length);
  const blind = group.randomScalar();
  const context = contextTag(group, dst);
  const blinded = await hashAndMultiply(group, options.executor ?? inThread(group.sodium), dst, bytes, blind);
  const request: PsiRequest = { type: 'request', version: PSI_PROTOCOL_VERSION, mode: options.mode, context, setEncoding, falsePositiveBits, sumBits, count: bytes.length, blinded };
  checkShape(request);
  const state: ReceiverState = { role: 'receiver', mode: options.mode, context, setEncoding, falsePositiveBits, sumBits, blind, items: unique, indices, requestBytes: encodedLength(request) };
  return { state, request };
}

interface Matched {
  readonly group: PsiGroup;
  readonly executor: KernelExecutor;
  /** Per reply row: whether its unblinded element is in the sender's set. */
  readonly matches: readonly boolean[];
  /** Per reply row (raw only): the sender row it matched, or -1. */
  readonly senderRows: readonly number[];
  readonly falsePositiveRate: number;
}

async function unblindAndMatch(state: ReceiverState, reply: PsiReply, options: PsiStepOptions): Promise<Matched> {
  const group = await psiGroup();
  const executor = options.executor ?? inThread(group.sodium);
  checkHeader(reply, 'reply', state.mode, state.context);
  if (reply.count !== state.items.length) throw refuse('reply.count', `the reply has ${reply.count} elements for a request of ${state.items.length}`);
  const set: SenderSet = reply.senderSet;
  if (set.encoding !== state.setEncoding) throw refuse('reply.senderSet.encoding', `the receiver asked for ${state.setEncoding}, the sender sent ${set.encoding}`);

  const unblinding = runBatch(executor, 'mul', group.invertScalar(state.blind), reply.evaluated);
  // With a pool, the sender's elements are checked here while the workers unblind.
  const index = new Map<string, number>();
  let invalidSender: MalusError | undefined;
  if (set.encoding === 'raw') {
    for (let j = 0; j < set.count && invalidSender === undefined; j++) {
      const element = row(set.elements, j);
      if (group.isElement(element)) index.set(keyOf(element), j);
      else invalidSender = invalidElement(`reply.senderSet.elements[${j}]`);
    }
  }
  const unblinded = await unblinding;
  if ('failedAt' in unblinded) throw invalidElement(`reply.evaluated[${unblinded.failedAt}]`);
  if (invalidSender !== undefined) throw invalidSender;
  const points = unblinded.output;
  const n = reply.count;
  const senderRows = new Array<number>(n).fill(-1);
  let matches: boolean[];
  let falsePositiveRate = 0;

  if (set.encoding === 'raw') {
    matches = Array.from({ length: n }, (_, i) => {
      const j = index.get(keyOf(points, i * 32, 32));
      if (j === undefined) return false;
      senderRows[i] = j;
      return true;
    });
  } else {
    const k = perLookupBits(state.falsePositiveBits, n);
    if (set.encoding === 'gcs') {
      if (set.riceBits !== k) throw refuse('reply.senderSet.riceBits', `expected ${k} for 2^-${state.falsePositiveBits} over ${n} lookups, got ${set.riceBits}`);
      matches = gcsHas(set, Array.from({ length: n }, (_, i) => digest128(group, row(points, i))));
      falsePositiveRate = wholeResultRate(gcsFalsePositiveRate(set.count, k), n);
    } else {
      const shape = bloomShape(set.count, k);
      if (set.hashes !== shape.hashes || set.bits.length * 8 !== shape.bitCount) {
        throw refuse('reply.senderSet', `expected a ${shape.bitCount}-bit filter with ${shape.hashes} hashes, got ${set.bits.length * 8} bits and ${set.hashes}`);
      }
      const bloom: Bloom = set;
      matches = Array.from({ length: n }, (_, i) => bloomHas(group.sha512, bloom, row(points, i)));
      falsePositiveRate = wholeResultRate(bloomFalsePositiveRate(bloom), n);
    }
  }
  return { group, executor, matches, senderRows, falsePositiveRate };
}

/** Step 3 (receiver, cardinality and intersection): the result. */
export async function receiverResult(state: ReceiverState, reply: PsiReply, options: PsiStepOptions = {}): Promise<CardinalityResult | IntersectionResult> {
  if (state.mode === 'sum') throw refuse('mode', 'the sum mode continues with receiverSumRequest');
  const { matches, falsePositiveRate } = await unblindAndMatch(state, reply, options);
  const replyBytes = encodedLength(reply);
  const base = {
    receiverCount: state.items.length,
    senderCount: reply.senderSet.count,
    setEncoding: state.setEncoding,
    falsePositiveRate,
    bytes: { request: state.requestBytes, reply: replyBytes, total: state.requestBytes + replyBytes },
  };
  const size = matches.filter(Boolean).length;
  if (state.mode === 'cardinality') return { mode: 'cardinality', size, ...base };
  const items: PsiItem[] = [];
  const indices: number[] = [];
  for (const [i, matched] of matches.entries()) {
    if (!matched) continue;
    items.push(state.items[i] ?? '');
    indices.push(state.indices[i] ?? -1);
  }
  return { mode: 'intersection', size, items, indices, ...base };
}

/** Step 3 (receiver, sum): add the matched ciphertexts, re-randomize, and ask for a decryption share of C1. */
export async function receiverSumRequest(state: ReceiverState, reply: PsiReply, options: PsiStepOptions = {}): Promise<{ state: ReceiverSumState; request: PsiSumRequest }> {
  if (state.mode !== 'sum') throw refuse('mode', `the ${state.mode} mode ends with receiverResult`);
  const { group, matches, senderRows } = await unblindAndMatch(state, reply, options);
  const sum = reply.sum;
  if (sum === undefined) throw refuse('reply.sum', 'missing');
  group.checkElement(sum.publicKey, 'reply.sum.publicKey');
  for (let j = 0; j < reply.senderSet.count; j++) {
    group.checkElement(row(sum.ciphertexts, j, CIPHERTEXT_BYTES).subarray(0, 32), `reply.sum.ciphertexts[${j}].c1`);
    group.checkElement(row(sum.ciphertexts, j, CIPHERTEXT_BYTES).subarray(32), `reply.sum.ciphertexts[${j}].c2`);
  }
  let total: Uint8Array = new Uint8Array(CIPHERTEXT_BYTES);
  let size = 0;
  for (const [i, matched] of matches.entries()) {
    if (!matched) continue;
    total = addCiphertexts(group, total, row(sum.ciphertexts, senderRows[i] ?? 0, CIPHERTEXT_BYTES));
    size++;
  }
  // Even with no match the request goes out, so the sender cannot tell an empty intersection.
  const fresh = rerandomize(group, sum.publicKey, total);
  const request: PsiSumRequest = { type: 'sum-request', version: PSI_PROTOCOL_VERSION, mode: 'sum', context: state.context, c1: fresh.slice(0, 32) };
  const replyBytes = encodedLength(reply);
  return {
    state: {
      role: 'receiver-sum',
      context: state.context,
      sumBits: state.sumBits,
      c2: fresh.slice(32),
      size,
      receiverCount: state.items.length,
      senderCount: reply.senderSet.count,
      bytes: { request: state.requestBytes, reply: replyBytes, sumRequest: encodedLength(request) },
    },
    request,
  };
}

/** Step 5 (receiver, sum): C2 - x C1 = (Σ v) G, and the bounded discrete logarithm. */
export async function receiverSumResult(state: ReceiverSumState, reply: PsiSumReply, options: PsiStepOptions = {}): Promise<SumResult> {
  const group = await psiGroup();
  checkHeader(reply, 'sum-reply', 'sum', state.context);
  group.checkElement(reply.share, 'sum-reply.share');
  const target = group.sub(state.c2, reply.share, 'sum-reply.share');
  const sum = await boundedDlog(group, options.executor ?? inThread(group.sodium), target, state.sumBits);
  if (sum === undefined) throw refuse('sum-reply.share', `does not open to a sum below 2^${state.sumBits}: the message was altered or the sender left the protocol`);
  const sumReply = encodedLength(reply);
  const { request, reply: replyBytes, sumRequest } = state.bytes;
  return {
    mode: 'sum',
    size: state.size,
    sum,
    sumBits: state.sumBits,
    receiverCount: state.receiverCount,
    senderCount: state.senderCount,
    setEncoding: 'raw',
    falsePositiveRate: 0,
    bytes: { request, reply: replyBytes, sumRequest, sumReply, total: request + replyBytes + sumRequest + sumReply },
  };
}

// ---- sender ------------------------------------------------------------------------------------

/** Step 2 (sender): evaluate the receiver's elements and send the sender's own set. */
export async function senderReply(request: PsiRequest, items: readonly PsiItem[], options: SenderOptions): Promise<{ state: SenderState; reply: PsiReply }> {
  const group = await psiGroup();
  const executor = options.executor ?? inThread(group.sodium);
  const dst = psiDst(options.context);
  const context = contextTag(group, dst);
  checkHeader(request, 'request', request.mode, context);
  if (!options.modes.includes(request.mode)) throw refuse('request.mode', `the ${request.mode} mode is not allowed here (allowed: ${options.modes.join(', ') || 'none'})`);
  if (options.maxRequestCount !== undefined && request.count > options.maxRequestCount) throw refuse('request.count', `${request.count} elements is over the limit of ${options.maxRequestCount}`);

  // The sender's set, distinct; in the sum mode a repeated item's values add up.
  const sum = request.mode === 'sum';
  if (sum && options.values?.length !== items.length) throw refuse('options.values', `the sum mode needs one value per item (${items.length} items, ${options.values?.length ?? 0} values)`);
  const values = sum ? checkValues(options.values ?? [], 'values') : [];
  const position = new Map<string, number>();
  const bytes: Uint8Array[] = [];
  const totals: bigint[] = [];
  for (const [i, item] of items.entries()) {
    const b = itemBytes(item, `items[${i}]`);
    const k = keyOf(b);
    const at = position.get(k);
    if (at === undefined) {
      position.set(k, bytes.length);
      bytes.push(b);
      totals.push(values[i] ?? 0n);
    } else {
      totals[at] = (totals[at] ?? 0n) + (values[i] ?? 0n);
    }
  }
  if (sum) {
    const all = totals.reduce((a, b) => a + b, 0n);
    if (all >= 2n ** BigInt(request.sumBits)) throw refuse('request.sumBits', `the sender's values add up to 2^${request.sumBits} or more; the receiver must ask for more sum bits`);
  }

  const key = group.randomScalar();
  try {
    // Both batches at once: with a pool, this thread hashes the sender's items while the workers evaluate.
    const [evaluatedResult, ownPoints] = await Promise.all([
      runBatch(executor, 'mul', key, request.blinded),
      hashAndMultiply(group, executor, dst, bytes, key),
    ]);
    if ('failedAt' in evaluatedResult) throw invalidElement(`request.blinded[${evaluatedResult.failedAt}]`);
    // Shuffled, the receiver learns how many matched but not which (intersection keeps the order).
    const evaluated = request.mode === 'intersection' ? evaluatedResult.output : permuteRows(evaluatedResult.output, 32, randomPermutation(group, request.count));

    const order = randomPermutation(group, bytes.length);
    const own = permuteRows(ownPoints, 32, order);
    const count = bytes.length;
    let senderSet: SenderSet;
    if (request.setEncoding === 'raw') {
      senderSet = { encoding: 'raw', count, elements: own };
    } else {
      const k = perLookupBits(request.falsePositiveBits, request.count);
      const elements = Array.from({ length: count }, (_, j) => row(own, j));
      senderSet =
        request.setEncoding === 'gcs'
          ? { encoding: 'gcs', ...gcsBuild(elements.map((e) => digest128(group, e)), k) }
          : { encoding: 'bloom', ...bloomBuild(group.sha512, elements, k) };
    }

    let secret: Uint8Array | undefined;
    let sumPart: PsiReply['sum'];
    if (sum) {
      const elgamal = elgamalKey(group);
      secret = elgamal.secret;
      const ordered = Array.from(order, (from) => totals[from] ?? 0n);
      sumPart = { publicKey: elgamal.publicKey, ciphertexts: await encryptOwn(group, executor, elgamal, ordered) };
    }
    const reply: PsiReply = {
      type: 'reply',
      version: PSI_PROTOCOL_VERSION,
      mode: request.mode,
      context,
      count: request.count,
      evaluated,
      senderSet,
      ...(sumPart === undefined ? {} : { sum: sumPart }),
    };
    checkShape(reply);
    return { state: { role: 'sender', mode: request.mode, context, secret }, reply };
  } finally {
    key.fill(0);
  }
}

/** Step 4 (sender, sum): the decryption share of the receiver's one ciphertext. It answers once. */
export async function senderSumReply(state: SenderState, request: PsiSumRequest): Promise<PsiSumReply> {
  const group = await psiGroup();
  if (state.mode !== 'sum' || state.secret === undefined) throw refuse('mode', `a sum-request in the ${state.mode} mode`);
  checkHeader(request, 'sum-request', 'sum', state.context);
  // A second share would let the receiver open a second ciphertext (one value, say); refuse it.
  if (state.secret.every((b) => b === 0)) throw new MalusError('conflict', 'this PSI run already sent its decryption share');
  try {
    const share = decryptionShare(group, state.secret, request.c1, 'sum-request.c1');
    return { type: 'sum-reply', version: PSI_PROTOCOL_VERSION, mode: 'sum', context: state.context, share };
  } finally {
    state.secret.fill(0);
  }
}
