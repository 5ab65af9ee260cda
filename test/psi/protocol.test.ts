import { randomInt } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import {
  decodeExpected,
  encodeMessage,
  psiGroup,
  receiverRequest,
  receiverResult,
  receiverSumRequest,
  receiverSumResult,
  runPsiLocally,
  senderReply,
  senderSumReply,
  type PsiGroup,
  type PsiMode,
  type PsiReply,
  type SetEncoding,
} from '../../src/psi/index.js';

// Every mode against a plain intersection and sum in JavaScript, on random sets and the edges:
// empty sets, identical sets, duplicates, and very unbalanced sizes; then tampered messages.

const context = { collaborationId: '00000000-1111-2222-3333-444444444444', runId: 'run-1' };

interface Case {
  readonly x: readonly string[];
  readonly y: readonly string[];
  readonly values: readonly number[];
}

function randomCase(nx: number, ny: number, overlap: number): Case {
  const shared = Array.from({ length: overlap }, (_, i) => `shared-${i}@example.com`);
  const x = [...shared, ...Array.from({ length: nx - overlap }, (_, i) => `x-${i}@example.com`)].sort(() => randomInt(3) - 1);
  const y = [...shared, ...Array.from({ length: ny - overlap }, (_, i) => `y-${i}@example.com`)].sort(() => randomInt(3) - 1);
  return { x, y, values: y.map(() => randomInt(0, 100_000)) };
}

/** The reference: what each mode should give, from plain sets. */
function expected(c: Case): { size: number; items: string[]; sum: bigint } {
  const totals = new Map<string, bigint>();
  c.y.forEach((item, i) => totals.set(item, (totals.get(item) ?? 0n) + BigInt(c.values[i] ?? 0)));
  const seen = new Set<string>();
  const items = c.x.filter((item) => {
    if (seen.has(item) || !totals.has(item)) return false;
    seen.add(item);
    return true;
  });
  return { size: items.length, items, sum: items.reduce((acc, item) => acc + (totals.get(item) ?? 0n), 0n) };
}

async function run(c: Case, mode: PsiMode, setEncoding: SetEncoding = 'raw') {
  return runPsiLocally(c.x, c.y, { context, mode, setEncoding, sumBits: 28, falsePositiveBits: 30, values: c.values });
}

async function check(c: Case, label: string): Promise<void> {
  const want = expected(c);
  for (const setEncoding of ['raw', 'gcs', 'bloom'] as const) {
    const cardinality = await run(c, 'cardinality', setEncoding);
    expect(cardinality.size, `${label} cardinality ${setEncoding}`).toBe(want.size);
    const intersection = await run(c, 'intersection', setEncoding);
    expect(intersection.mode === 'intersection' ? intersection.items : [], `${label} intersection ${setEncoding}`).toEqual(want.items);
  }
  const sum = await run(c, 'sum');
  expect(sum.size, `${label} sum size`).toBe(want.size);
  expect(sum.mode === 'sum' ? sum.sum : -1n, `${label} sum`).toBe(want.sum);
}

let group: PsiGroup;
beforeAll(async () => {
  group = await psiGroup();
});

describe('PSI against a plain intersection and sum', () => {
  it('random sets with partial overlap', async () => {
    for (let i = 0; i < 3; i++) {
      const nx = randomInt(20, 120);
      const ny = randomInt(20, 120);
      await check(randomCase(nx, ny, randomInt(0, Math.min(nx, ny) + 1)), `random ${i}`);
    }
  });

  it('empty sets on either side and on both', async () => {
    await check({ x: [], y: ['a', 'b'], values: [1, 2] }, 'empty receiver');
    await check({ x: ['a', 'b'], y: [], values: [] }, 'empty sender');
    await check({ x: [], y: [], values: [] }, 'both empty');
  });

  it('identical sets', async () => {
    const c = randomCase(60, 60, 60);
    await check({ ...c, y: c.x, values: c.x.map((_, i) => i) }, 'identical');
  });

  it('duplicates on both sides (a set; the sender adds the values of a repeated item)', async () => {
    const c: Case = { x: ['a', 'b', 'a', 'c', 'b', 'z'], y: ['b', 'c', 'c', 'd', 'b', 'c'], values: [5, 7, 11, 13, 17, 19] };
    await check(c, 'duplicates');
    const intersection = await run(c, 'intersection');
    expect(intersection.mode === 'intersection' ? intersection.indices : []).toEqual([1, 3]);
    const sum = await run(c, 'sum');
    expect(sum.mode === 'sum' ? sum.sum : -1n).toBe(5n + 17n + 7n + 11n + 19n);
    expect(sum.receiverCount).toBe(4);
    expect(sum.senderCount).toBe(3);
  });

  it('text and bytes name the same element (text is hashed as UTF-8)', async () => {
    const result = await runPsiLocally([new TextEncoder().encode('café'), 'x'], ['café'], { context, mode: 'intersection' });
    expect(result.size).toBe(1);
  });

  it('very unbalanced sizes: 1 receiver item against 10,000, in each mode', async () => {
    const y = Array.from({ length: 10_000 }, (_, i) => `customer-${i}`);
    const values = y.map((_, i) => i % 1000);
    const x = ['customer-4321'];
    const cardinality = await runPsiLocally(x, y, { context, mode: 'cardinality', setEncoding: 'gcs' });
    expect(cardinality.size).toBe(1);
    expect(cardinality.bytes.reply).toBeLessThan(10_000 * 8);
    const intersection = await runPsiLocally(['nobody', ...x], y, { context, mode: 'intersection', setEncoding: 'bloom' });
    expect(intersection.mode === 'intersection' ? intersection.items : []).toEqual(x);
    const sum = await runPsiLocally(x, y, { context, mode: 'sum', values, sumBits: 24 });
    expect(sum.mode === 'sum' ? sum.sum : -1n).toBe(321n);
  });

  it('very unbalanced sizes: 2,000 receiver items against 1', async () => {
    const x = Array.from({ length: 2000 }, (_, i) => `customer-${i}`);
    const result = await runPsiLocally(x, ['customer-1999'], { context, mode: 'intersection', setEncoding: 'gcs' });
    expect(result.mode === 'intersection' ? result.indices : []).toEqual([1999]);
  });

  it('reports the false-positive rate and the bytes sent', async () => {
    const c = randomCase(100, 100, 50);
    const raw = await run(c, 'cardinality', 'raw');
    const gcs = await run(c, 'cardinality', 'gcs');
    const bloom = await run(c, 'cardinality', 'bloom');
    expect(raw.falsePositiveRate).toBe(0);
    expect(gcs.falsePositiveRate).toBeGreaterThan(0);
    expect(gcs.falsePositiveRate).toBeLessThanOrEqual(2 ** -30);
    expect(bloom.falsePositiveRate).toBeLessThanOrEqual(2 ** -30 * 1.01);
    expect(raw.bytes.total).toBe(raw.bytes.request + raw.bytes.reply);
    expect(raw.bytes.request).toBe(39 + 7 + 100 * 32);
    expect(gcs.bytes.reply).toBeLessThan(raw.bytes.reply);
  });

  it('sums at the bound: 2^bits - 1 opens, and a sender whose values reach 2^bits refuses', async () => {
    const values = [2 ** 19, 2 ** 19 - 1];
    const top = await runPsiLocally(['a', 'b'], ['a', 'b'], { context, mode: 'sum', values, sumBits: 20 });
    expect(top.mode === 'sum' ? top.sum : -1n).toBe(2n ** 20n - 1n);
    await expect(runPsiLocally(['a'], ['a', 'b'], { context, mode: 'sum', values: [2 ** 19, 2 ** 19], sumBits: 20 })).rejects.toThrow(/2\^20 or more/);
    const zero = await runPsiLocally(['a'], ['a'], { context, mode: 'sum', values: [0n], sumBits: 8 });
    expect(zero.mode === 'sum' ? zero.sum : -1n).toBe(0n);
  });

  it('refuses an item that is neither text nor bytes, and a false-positive rate it cannot meet', async () => {
    await expect(runPsiLocally(['a', 7 as unknown as string], ['a'], { context, mode: 'cardinality' })).rejects.toThrow(/items\[1\]: an item must be a string/);
    const many = Array.from({ length: 70_000 }, (_, i) => `m${i}`);
    await expect(receiverRequest(many, { context, mode: 'cardinality', setEncoding: 'gcs', falsePositiveBits: 48 })).rejects.toThrow(/needs 65 bits per lookup/);
  });

  it('refuses sum values that are negative, fractional or unsafe', async () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, -1n]) {
      await expect(runPsiLocally(['a'], ['a'], { context, mode: 'sum', values: [bad], sumBits: 8 })).rejects.toThrow(/non-negative integer/);
    }
  });
});

describe('PSI messages that were tampered with', () => {
  const x = ['a', 'b', 'c', 'd'];
  const y = ['c', 'd', 'e'];

  async function started(mode: PsiMode = 'cardinality', setEncoding: SetEncoding = 'raw') {
    return receiverRequest(x, { context, mode, setEncoding, sumBits: 16 });
  }

  async function replied(mode: PsiMode = 'cardinality', setEncoding: SetEncoding = 'raw') {
    const r = await started(mode, setEncoding);
    const s = await senderReply(r.request, y, { context, modes: [mode], values: [1, 2, 3] });
    return { state: r.state, request: r.request, reply: s.reply, senderState: s.state };
  }

  async function failure(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      expect(isMalusError(error, 'invalid-input'), String(error)).toBe(true);
      return error as Error;
    }
    throw new Error('expected a MalusError');
  }

  it('a flipped byte in a blinded element: the sender names it', async () => {
    const { request } = await started();
    const blinded = request.blinded.slice();
    blinded[2 * 32] = (blinded[2 * 32] ?? 0) ^ 1;
    const error = await failure(senderReply({ ...request, blinded }, y, { context, modes: ['cardinality'] }));
    expect(error.message).toContain('request.blinded[2]');
  });

  it('the identity in place of an evaluated element: the receiver names it', async () => {
    const { state, reply } = await replied();
    const evaluated = reply.evaluated.slice();
    evaluated.fill(0, 32, 64);
    const error = await failure(receiverResult(state, { ...reply, evaluated }));
    expect(error.message).toContain('reply.evaluated[1]');
  });

  it("the identity or a non-canonical encoding among the sender's elements", async () => {
    const { state, reply } = await replied();
    if (reply.senderSet.encoding !== 'raw') throw new Error('raw expected');
    const identity = reply.senderSet.elements.slice();
    identity.fill(0, 64, 96);
    expect((await failure(receiverResult(state, { ...reply, senderSet: { ...reply.senderSet, elements: identity } }))).message).toContain('reply.senderSet.elements[2]');
    const high = reply.senderSet.elements.slice();
    high[31] = (high[31] ?? 0) | 0x80;
    expect((await failure(receiverResult(state, { ...reply, senderSet: { ...reply.senderSet, elements: high } }))).message).toContain('reply.senderSet.elements[0]');
  });

  it('a truncated or extended message, and one of another version', async () => {
    const { reply } = await replied();
    const bytes = encodeMessage(reply);
    expect(() => decodeExpected(bytes.slice(0, bytes.length - 1), 'reply')).toThrow(/ends after/);
    expect(() => decodeExpected(Uint8Array.of(...bytes, 0), 'reply')).toThrow(/follow the end/);
    const v2 = bytes.slice();
    v2[4] = 2;
    expect(() => decodeExpected(v2, 'reply')).toThrow(/version 2 is not supported/);
    await failure(receiverResult((await replied()).state, { ...reply, version: 2 }));
  });

  it('a reply in another mode, with another set encoding, or of another size', async () => {
    const { state, reply } = await replied('cardinality');
    expect((await failure(receiverResult(state, { ...reply, mode: 'intersection' }))).message).toMatch(/cardinality mode/);
    const gcs = await replied('cardinality', 'gcs');
    expect((await failure(receiverResult(state, gcs.reply))).message).toMatch(/another collaboration or run|asked for raw/);
    const shorter: PsiReply = { ...reply, count: 3, evaluated: reply.evaluated.slice(0, 96) };
    expect((await failure(receiverResult(state, shorter))).message).toMatch(/3 elements for a request of 4/);
  });

  it('a request for another run, or a mode the sender does not allow', async () => {
    const { request } = await started('intersection');
    expect((await failure(senderReply(request, y, { context: { ...context, runId: 'run-2' }, modes: ['intersection'] }))).message).toMatch(/another collaboration or run/);
    expect((await failure(senderReply(request, y, { context, modes: ['cardinality'] }))).message).toMatch(/not allowed/);
    expect((await failure(senderReply(request, y, { context, modes: ['intersection'], maxRequestCount: 3 }))).message).toMatch(/over the limit of 3/);
  });

  it('a Golomb-coded set with another parameter than the receiver asked for', async () => {
    const { state, reply } = await replied('cardinality', 'gcs');
    if (reply.senderSet.encoding !== 'gcs') throw new Error('gcs expected');
    const weaker: PsiReply = { ...reply, senderSet: { ...reply.senderSet, riceBits: reply.senderSet.riceBits - 1 } };
    expect((await failure(receiverResult(state, weaker))).message).toMatch(/riceBits/);
  });

  it('sum: a tampered ciphertext, a tampered share, and a second share request', async () => {
    const { state, reply } = await replied('sum');
    const sum = reply.sum;
    if (sum === undefined) throw new Error('sum expected');
    const ciphertexts = sum.ciphertexts.slice();
    ciphertexts.fill(0, 64 + 32, 128);
    expect((await failure(receiverSumRequest(state, { ...reply, sum: { ...sum, ciphertexts } }))).message).toContain('reply.sum.ciphertexts[1].c2');

    const again = await started('sum');
    const answered = await senderReply(again.request, y, { context, modes: ['sum'], values: [1, 2, 3] });
    const asked = await receiverSumRequest(again.state, answered.reply);
    const share = await senderSumReply(answered.state, asked.request);
    const altered = share.share.slice();
    altered[0] = (altered[0] ?? 0) ^ 2;
    await failure(receiverSumResult(asked.state, { ...share, share: altered }));
    await failure(receiverSumResult(asked.state, { ...share, share: group.mulBase(group.randomScalar()) }));
    expect((await receiverSumResult(asked.state, share)).sum).toBe(3n);
    let conflict: unknown;
    try {
      await senderSumReply(answered.state, asked.request);
    } catch (error) {
      conflict = error;
    }
    expect(isMalusError(conflict, 'conflict')).toBe(true);
  });

  it('the sum steps refuse the other modes, and the other modes the sum steps', async () => {
    const card = await replied('cardinality');
    await expect(receiverSumRequest(card.state, card.reply)).rejects.toThrow(/ends with receiverResult/);
    const sum = await replied('sum');
    await expect(receiverResult(sum.state, sum.reply)).rejects.toThrow(/continues with receiverSumRequest/);
    await expect(senderReply(sum.request, y, { context, modes: ['sum'] })).rejects.toThrow(/one value per item/);
  });
});
