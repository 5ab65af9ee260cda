// The four PSI messages as plain objects, and their binary form. Every message starts with the
// magic "MPSI", the protocol version, its type, the mode and the 32-byte context tag, so a message
// from another version, mode or run fails closed. Counts are 32-bit big-endian; the decoder checks
// every length against the bytes present and refuses trailing bytes. Elements are not checked here
// (that needs the group, see protocol.ts), only their sizes.
import { MalusError } from '../errors/index.js';

export const PSI_PROTOCOL_VERSION = 1;

export type PsiMode = 'cardinality' | 'intersection' | 'sum';
export type SetEncoding = 'raw' | 'gcs' | 'bloom';

export const PSI_MODE_LIST: readonly PsiMode[] = ['cardinality', 'intersection', 'sum'];
export const SET_ENCODINGS: readonly SetEncoding[] = ['raw', 'gcs', 'bloom'];

/** The most elements one message may carry (2^26, about 67 million). */
export const MAX_ELEMENTS = 2 ** 26;
export const MIN_FALSE_POSITIVE_BITS = 8;
export const MAX_FALSE_POSITIVE_BITS = 48;
export const MAX_SUM_BITS = 40;

interface Header {
  readonly version: number;
  readonly mode: PsiMode;
  /** The first 32 bytes of SHA-512 over the context string and the run's tag (protocol.ts). */
  readonly context: Uint8Array;
}

/** Receiver to sender: the receiver's elements, blinded. */
export interface PsiRequest extends Header {
  readonly type: 'request';
  readonly setEncoding: SetEncoding;
  /** The receiver accepts a false positive anywhere in its result with probability 2^-bits (0 with raw). */
  readonly falsePositiveBits: number;
  /** Sums are below 2^sumBits (sum mode; 0 otherwise). */
  readonly sumBits: number;
  readonly count: number;
  /** count x 32 bytes. */
  readonly blinded: Uint8Array;
}

export type SenderSet =
  | { readonly encoding: 'raw'; readonly count: number; /** count x 32 bytes */ readonly elements: Uint8Array }
  | { readonly encoding: 'gcs'; readonly count: number; readonly riceBits: number; readonly bits: Uint8Array }
  | { readonly encoding: 'bloom'; readonly count: number; readonly hashes: number; readonly bits: Uint8Array };

/** Sender to receiver: the receiver's elements under the sender's key too, and the sender's own. */
export interface PsiReply extends Header {
  readonly type: 'reply';
  readonly count: number;
  /** count x 32 bytes; shuffled unless the mode is intersection. */
  readonly evaluated: Uint8Array;
  readonly senderSet: SenderSet;
  /** Sum mode: the sender's ElGamal key and one ciphertext (C1 || C2, 64 bytes) per sender element, in the same order. */
  readonly sum?: { readonly publicKey: Uint8Array; readonly ciphertexts: Uint8Array };
}

/** Receiver to sender (sum mode): the first half of the re-randomized sum of the matched ciphertexts. */
export interface PsiSumRequest extends Header {
  readonly type: 'sum-request';
  readonly c1: Uint8Array;
}

/** Sender to receiver (sum mode): its decryption share x C1. */
export interface PsiSumReply extends Header {
  readonly type: 'sum-reply';
  readonly share: Uint8Array;
}

export type PsiMessage = PsiRequest | PsiReply | PsiSumRequest | PsiSumReply;

const MAGIC = [0x4d, 0x50, 0x53, 0x49]; // "MPSI"
const TYPES: readonly PsiMessage['type'][] = ['request', 'reply', 'sum-request', 'sum-reply'];
const HEADER_BYTES = 4 + 1 + 1 + 1 + 32;

function invalid(path: string, detail: string): MalusError {
  return new MalusError('invalid-input', `PSI message ${path}: ${detail}`, { issues: [{ path, message: detail }] });
}

/** The rules both the encoder and the decoder hold a message to (sizes and parameters, not group membership). */
export function checkShape(message: PsiMessage): void {
  const where = message.type;
  if (message.version !== PSI_PROTOCOL_VERSION) throw invalid(`${where}.version`, `protocol version ${message.version} is not supported (this build speaks ${PSI_PROTOCOL_VERSION})`);
  if (!PSI_MODE_LIST.includes(message.mode)) throw invalid(`${where}.mode`, `unknown mode ${message.mode}`);
  if (message.context.length !== 32) throw invalid(`${where}.context`, 'must be 32 bytes');
  const elements = (path: string, bytes: Uint8Array, count: number, width: number): void => {
    if (!Number.isInteger(count) || count < 0 || count > MAX_ELEMENTS) throw invalid(path, `count ${count} is outside 0 to ${MAX_ELEMENTS}`);
    if (bytes.length !== count * width) throw invalid(path, `holds ${bytes.length} bytes for ${count} elements of ${width}`);
  };
  switch (message.type) {
    case 'request': {
      if (!SET_ENCODINGS.includes(message.setEncoding)) throw invalid('request.setEncoding', `unknown set encoding ${message.setEncoding}`);
      const fp = message.falsePositiveBits;
      if (message.setEncoding === 'raw' ? fp !== 0 : !Number.isInteger(fp) || fp < MIN_FALSE_POSITIVE_BITS || fp > MAX_FALSE_POSITIVE_BITS) {
        throw invalid('request.falsePositiveBits', message.setEncoding === 'raw' ? 'must be 0 with the raw set encoding' : `must be ${MIN_FALSE_POSITIVE_BITS} to ${MAX_FALSE_POSITIVE_BITS}`);
      }
      if (message.mode === 'sum') {
        if (message.setEncoding !== 'raw') throw invalid('request.setEncoding', 'the sum mode needs the raw set encoding (each match needs its ciphertext)');
        if (!Number.isInteger(message.sumBits) || message.sumBits < 1 || message.sumBits > MAX_SUM_BITS) throw invalid('request.sumBits', `must be 1 to ${MAX_SUM_BITS}`);
      } else if (message.sumBits !== 0) {
        throw invalid('request.sumBits', 'must be 0 outside the sum mode');
      }
      elements('request.blinded', message.blinded, message.count, 32);
      return;
    }
    case 'reply': {
      elements('reply.evaluated', message.evaluated, message.count, 32);
      const set = message.senderSet;
      if (!SET_ENCODINGS.includes(set.encoding)) throw invalid('reply.senderSet.encoding', `unknown set encoding ${set.encoding}`);
      if (!Number.isInteger(set.count) || set.count < 0 || set.count > MAX_ELEMENTS) throw invalid('reply.senderSet.count', `count ${set.count} is outside 0 to ${MAX_ELEMENTS}`);
      if (set.encoding === 'raw') elements('reply.senderSet.elements', set.elements, set.count, 32);
      else if (set.encoding === 'gcs' && (!Number.isInteger(set.riceBits) || set.riceBits < 1 || set.riceBits > 64)) throw invalid('reply.senderSet.riceBits', 'must be 1 to 64');
      else if (set.encoding === 'bloom' && (!Number.isInteger(set.hashes) || set.hashes < 1 || set.hashes > 64)) throw invalid('reply.senderSet.hashes', 'must be 1 to 64');
      if (set.encoding === 'bloom' && set.bits.length === 0) throw invalid('reply.senderSet.bits', 'a Bloom filter needs at least one byte');
      if (message.mode === 'sum') {
        if (message.sum === undefined) throw invalid('reply.sum', 'the sum mode needs the public key and the ciphertexts');
        if (set.encoding !== 'raw') throw invalid('reply.senderSet.encoding', 'the sum mode needs the raw set encoding');
        if (message.sum.publicKey.length !== 32) throw invalid('reply.sum.publicKey', 'must be 32 bytes');
        elements('reply.sum.ciphertexts', message.sum.ciphertexts, set.count, 64);
      } else if (message.sum !== undefined) {
        throw invalid('reply.sum', 'only the sum mode carries ciphertexts');
      }
      return;
    }
    case 'sum-request':
    case 'sum-reply': {
      if (message.mode !== 'sum') throw invalid(`${where}.mode`, `a ${where} belongs to the sum mode`);
      const point = message.type === 'sum-request' ? message.c1 : message.share;
      if (point.length !== 32) throw invalid(`${where}.${message.type === 'sum-request' ? 'c1' : 'share'}`, 'must be 32 bytes');
      return;
    }
  }
}

/** The size of the binary form, without building it. */
export function encodedLength(message: PsiMessage): number {
  switch (message.type) {
    case 'request':
      return HEADER_BYTES + 3 + 4 + message.blinded.length;
    case 'reply': {
      const set = message.senderSet;
      const body = set.encoding === 'raw' ? set.elements.length : 1 + 4 + set.bits.length;
      const sum = message.sum === undefined ? 0 : 32 + message.sum.ciphertexts.length;
      return HEADER_BYTES + 1 + 4 + message.evaluated.length + 4 + body + sum;
    }
    case 'sum-request':
    case 'sum-reply':
      return HEADER_BYTES + 32;
  }
}

export function encodeMessage(message: PsiMessage): Uint8Array {
  checkShape(message);
  const out = new Uint8Array(encodedLength(message));
  const view = new DataView(out.buffer);
  let at = 0;
  const u8 = (v: number): void => {
    out[at++] = v;
  };
  const u32 = (v: number): void => {
    view.setUint32(at, v);
    at += 4;
  };
  const bytes = (b: Uint8Array): void => {
    out.set(b, at);
    at += b.length;
  };
  bytes(Uint8Array.from(MAGIC));
  u8(message.version);
  u8(TYPES.indexOf(message.type) + 1);
  u8(PSI_MODE_LIST.indexOf(message.mode) + 1);
  bytes(message.context);
  switch (message.type) {
    case 'request':
      u8(SET_ENCODINGS.indexOf(message.setEncoding));
      u8(message.falsePositiveBits);
      u8(message.sumBits);
      u32(message.count);
      bytes(message.blinded);
      break;
    case 'reply': {
      const set = message.senderSet;
      u8(SET_ENCODINGS.indexOf(set.encoding));
      u32(message.count);
      bytes(message.evaluated);
      u32(set.count);
      if (set.encoding === 'raw') {
        bytes(set.elements);
      } else {
        u8(set.encoding === 'gcs' ? set.riceBits : set.hashes);
        u32(set.bits.length);
        bytes(set.bits);
      }
      if (message.sum !== undefined) {
        bytes(message.sum.publicKey);
        bytes(message.sum.ciphertexts);
      }
      break;
    }
    case 'sum-request':
      bytes(message.c1);
      break;
    case 'sum-reply':
      bytes(message.share);
      break;
  }
  return out;
}

/** Parses a message; throws a MalusError (invalid-input) naming the field that is wrong. */
export function decodeMessage(input: Uint8Array): PsiMessage {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  let at = 0;
  let where = 'message';
  const need = (n: number, what: string): void => {
    if (input.length - at < n) throw invalid(`${where}.${what}`, `the message ends after ${input.length} bytes`);
  };
  const u8 = (what: string): number => {
    need(1, what);
    return input[at++] ?? 0;
  };
  const u32 = (what: string): number => {
    need(4, what);
    const v = view.getUint32(at);
    at += 4;
    return v;
  };
  const bytes = (n: number, what: string): Uint8Array => {
    need(n, what);
    const out = input.slice(at, at + n);
    at += n;
    return out;
  };
  const count = (what: string): number => {
    const n = u32(what);
    if (n > MAX_ELEMENTS) throw invalid(`${where}.${what}`, `count ${n} is over ${MAX_ELEMENTS}`);
    return n;
  };

  need(HEADER_BYTES, 'header');
  if (MAGIC.some((b, i) => input[i] !== b)) throw invalid('message', 'does not start with "MPSI"; it is not a PSI message');
  at = 4;
  const version = u8('version');
  if (version !== PSI_PROTOCOL_VERSION) throw invalid('message.version', `protocol version ${version} is not supported (this build speaks ${PSI_PROTOCOL_VERSION})`);
  const type = TYPES[u8('type') - 1];
  if (type === undefined) throw invalid('message.type', `unknown message type ${input[at - 1] ?? 0}`);
  where = type;
  const mode = PSI_MODE_LIST[u8('mode') - 1];
  if (mode === undefined) throw invalid(`${where}.mode`, `unknown mode ${input[at - 1] ?? 0}`);
  const context = bytes(32, 'context');
  const encoding = (what: string): SetEncoding => {
    const e = SET_ENCODINGS[u8(what)];
    if (e === undefined) throw invalid(`${where}.${what}`, `unknown set encoding ${input[at - 1] ?? 0}`);
    return e;
  };

  let message: PsiMessage;
  switch (type) {
    case 'request': {
      const setEncoding = encoding('setEncoding');
      const falsePositiveBits = u8('falsePositiveBits');
      const sumBits = u8('sumBits');
      const n = count('count');
      message = { type, version, mode, context, setEncoding, falsePositiveBits, sumBits, count: n, blinded: bytes(n * 32, 'blinded') };
      break;
    }
    case 'reply': {
      const setEncoding = encoding('senderSet.encoding');
      const n = count('count');
      const evaluated = bytes(n * 32, 'evaluated');
      const senderCount = count('senderSet.count');
      let senderSet: SenderSet;
      if (setEncoding === 'raw') {
        senderSet = { encoding: 'raw', count: senderCount, elements: bytes(senderCount * 32, 'senderSet.elements') };
      } else {
        const parameter = u8(setEncoding === 'gcs' ? 'senderSet.riceBits' : 'senderSet.hashes');
        const bits = bytes(u32('senderSet.length'), 'senderSet.bits');
        senderSet = setEncoding === 'gcs' ? { encoding: 'gcs', count: senderCount, riceBits: parameter, bits } : { encoding: 'bloom', count: senderCount, hashes: parameter, bits };
      }
      const sum = mode === 'sum' ? { publicKey: bytes(32, 'sum.publicKey'), ciphertexts: bytes(senderCount * 64, 'sum.ciphertexts') } : undefined;
      message = { type, version, mode, context, count: n, evaluated, senderSet, ...(sum === undefined ? {} : { sum }) };
      break;
    }
    case 'sum-request':
      message = { type, version, mode, context, c1: bytes(32, 'c1') };
      break;
    case 'sum-reply':
      message = { type, version, mode, context, share: bytes(32, 'share') };
      break;
  }
  if (at !== input.length) throw invalid(where, `${input.length - at} bytes follow the end of the message`);
  checkShape(message);
  return message;
}

/** decodeMessage, refusing any other type than the one expected. */
export function decodeExpected<T extends PsiMessage['type']>(input: Uint8Array, type: T): Extract<PsiMessage, { type: T }> {
  const message = decodeMessage(input);
  if (message.type !== type) throw invalid('message.type', `expected a ${type}, got a ${message.type}`);
  return message as Extract<PsiMessage, { type: T }>;
}
