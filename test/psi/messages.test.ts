import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import {
  decodeExpected,
  decodeMessage,
  encodedLength,
  encodeMessage,
  type PsiMessage,
  type PsiReply,
  type PsiRequest,
  type PsiSumReply,
  type PsiSumRequest,
} from '../../src/psi/messages.js';

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const context = bytes(32);

const request: PsiRequest = { type: 'request', version: 1, mode: 'cardinality', context, setEncoding: 'gcs', falsePositiveBits: 30, sumBits: 0, count: 3, blinded: bytes(96) };
const rawReply: PsiReply = { type: 'reply', version: 1, mode: 'intersection', context, count: 2, evaluated: bytes(64), senderSet: { encoding: 'raw', count: 3, elements: bytes(96) } };
const gcsReply: PsiReply = { type: 'reply', version: 1, mode: 'cardinality', context, count: 1, evaluated: bytes(32), senderSet: { encoding: 'gcs', count: 5, riceBits: 31, bits: bytes(21) } };
const bloomReply: PsiReply = { type: 'reply', version: 1, mode: 'cardinality', context, count: 0, evaluated: bytes(0), senderSet: { encoding: 'bloom', count: 5, hashes: 31, bits: bytes(40) } };
const sumReply: PsiReply = {
  type: 'reply',
  version: 1,
  mode: 'sum',
  context,
  count: 1,
  evaluated: bytes(32),
  senderSet: { encoding: 'raw', count: 2, elements: bytes(64) },
  sum: { publicKey: bytes(32), ciphertexts: bytes(128) },
};
const sumRequest: PsiSumRequest = { type: 'sum-request', version: 1, mode: 'sum', context, c1: bytes(32) };
const share: PsiSumReply = { type: 'sum-reply', version: 1, mode: 'sum', context, share: bytes(32) };
const all: readonly PsiMessage[] = [request, { ...request, mode: 'sum', setEncoding: 'raw', falsePositiveBits: 0, sumBits: 40 }, rawReply, gcsReply, bloomReply, sumReply, sumRequest, share];

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isMalusError(error, 'invalid-input')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('PSI message encoding', () => {
  it('round-trips every message type, at the length it states', () => {
    for (const message of all) {
      const encoded = encodeMessage(message);
      expect(encoded.length).toBe(encodedLength(message));
      expect(decodeMessage(encoded)).toEqual(message);
      expect(decodeExpected(encoded, message.type)).toEqual(message);
    }
  });

  it('refuses every truncation and any trailing byte', () => {
    for (const message of all) {
      const encoded = encodeMessage(message);
      for (let cut = 0; cut < encoded.length; cut += Math.max(1, Math.floor(encoded.length / 40))) {
        expect(refusal(() => decodeMessage(encoded.slice(0, cut)))).toMatch(/ends after|PSI message/);
      }
      expect(refusal(() => decodeMessage(Uint8Array.of(...encoded, 7)))).toMatch(/1 bytes follow the end/);
    }
  });

  it('names the field when the magic, version, type, mode or encoding is wrong', () => {
    const encoded = encodeMessage(request);
    const with_ = (at: number, value: number): Uint8Array => {
      const copy = encoded.slice();
      copy[at] = value;
      return copy;
    };
    expect(refusal(() => decodeMessage(with_(0, 0x4e)))).toMatch(/not a PSI message/);
    expect(refusal(() => decodeMessage(with_(4, 9)))).toMatch(/version 9 is not supported/);
    expect(refusal(() => decodeMessage(with_(5, 9)))).toMatch(/message\.type/);
    expect(refusal(() => decodeMessage(with_(6, 0)))).toMatch(/request\.mode/);
    expect(refusal(() => decodeMessage(with_(39, 5)))).toMatch(/request\.setEncoding/);
    expect(refusal(() => decodeMessage(with_(40, 60)))).toMatch(/falsePositiveBits/);
    expect(refusal(() => decodeMessage(with_(41, 3)))).toMatch(/sumBits: must be 0 outside the sum mode/);
    expect(refusal(() => decodeExpected(encoded, 'reply'))).toMatch(/expected a reply, got a request/);
  });

  it('refuses counts that do not match the bytes, or are too large', () => {
    const encoded = encodeMessage(request);
    const bigger = encoded.slice();
    new DataView(bigger.buffer).setUint32(42, 4);
    expect(refusal(() => decodeMessage(bigger))).toMatch(/request\.blinded: the message ends/);
    const huge = encoded.slice();
    new DataView(huge.buffer).setUint32(42, 2 ** 30);
    expect(refusal(() => decodeMessage(huge))).toMatch(/count 1073741824 is over/);
    expect(refusal(() => encodeMessage({ ...request, count: 4 }))).toMatch(/holds 96 bytes for 4 elements/);
  });

  it('holds the modes to their rules: the sum mode is raw and carries ciphertexts, the others do not', () => {
    expect(refusal(() => encodeMessage({ ...request, mode: 'sum', sumBits: 20 }))).toMatch(/needs the raw set encoding/);
    expect(refusal(() => encodeMessage({ ...request, mode: 'sum', setEncoding: 'raw', falsePositiveBits: 0, sumBits: 41 }))).toMatch(/sumBits: must be 1 to 40/);
    expect(refusal(() => encodeMessage({ ...request, setEncoding: 'raw' }))).toMatch(/must be 0 with the raw/);
    const noSum: PsiReply = { ...sumReply, sum: undefined };
    expect(refusal(() => encodeMessage(noSum))).toMatch(/needs the public key and the ciphertexts/);
    expect(refusal(() => encodeMessage({ ...rawReply, sum: sumReply.sum }))).toMatch(/only the sum mode/);
    expect(refusal(() => encodeMessage({ ...sumReply, sum: { publicKey: bytes(32), ciphertexts: bytes(64) } }))).toMatch(/ciphertexts: holds 64 bytes for 2/);
    expect(refusal(() => encodeMessage({ ...sumRequest, mode: 'cardinality' }))).toMatch(/belongs to the sum mode/);
    expect(refusal(() => encodeMessage({ ...gcsReply, senderSet: { encoding: 'gcs', count: 1, riceBits: 0, bits: bytes(1) } }))).toMatch(/riceBits/);
    expect(refusal(() => encodeMessage({ ...share, context: bytes(31) }))).toMatch(/context: must be 32 bytes/);
  });
});
