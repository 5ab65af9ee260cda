import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import {
  createClient,
  finishRun,
  getRun,
  getRunMessages,
  listRuns,
  postRunMessage,
  proposeCollaboration,
  signCollaboration,
  startRun,
  type MalusClient,
  type RunView,
} from '../../src/client/index.js';
import { isMalusError, type MalusError } from '../../src/errors/index.js';
import { decodeSigningKey, generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import type { LogEvent } from '../../src/ledger/index.js';
import { RESULT_STEP, decodeSecAggResult, encodeSecAggResult, joinSecAggRun, readVectorFile, startSecAggRun, type SecAggProgress } from '../../src/joint/secagg.js';
import { checkRun, createParty, partyAdvertise, secaggReason, type SecAggParams } from '../../src/secagg/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { makeParties, removeDir, tempDir, uniqueId, type Parties } from '../server/helpers.js';

// Secure aggregation between real parties over a real server (HTTP, every request signed): the
// aggregator is the receiver that starts the run, the parties run in the same process but talk
// only through the relay. Dropouts are parties that stop (an aborted signal), not mocks.

let dataDir: string;
let server: RunningServer;
let parties: Parties;
let carol: PartyKeys;
let agreement: Agreement;
let id: string;

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const idOf = (keys: PartyKeys): string => keys.identity.id;
const CLIP = 1000;
const SCALE = 2 ** 8;

/** Entries with fractions, one above the clip and one below -clip. */
const INPUTS = {
  advertiser: [1.5, -2.25, 1e6, 0.001],
  publisher: [10, 20.126, -3000, 7.7],
  carol: [100.3, 0, 0.5, -0.1],
};

/** The sum the protocol must give: each entry clipped, quantized to 1/256, added exactly. */
function plainSum(...vectors: number[][]): Float64Array {
  const out = new Float64Array(4);
  for (const v of vectors) v.forEach((x, i) => (out[i] = (out[i] ?? 0) + Math.round(Math.max(-CLIP, Math.min(CLIP, x)) * SCALE)));
  return out.map((q) => q / SCALE);
}

function secaggAgreement(collab: string): Agreement {
  const base = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id: collab, validFrom: new Date(Date.now() - 60_000) },
  );
  const { id: carolId, name, signingKey, encryptionKey } = carol.identity;
  const providers = [idOf(parties.advertiser), idOf(parties.publisher), carolId];
  const terms = { parties: providers, threshold: 2, vectorLength: 4, clip: CLIP, fractionBits: 8 };
  return assertAgreement(
    {
      ...base,
      parties: [...base.parties, { id: carolId, name, signingKey, encryptionKey, roles: ['provider'] }],
      secureAggregation: [
        { name: 'spend_total', ...terms, receivers: [idOf(parties.advertiser)] },
        // The operator aggregates without contributing; the advertiser receives the sum too.
        { name: 'spend_shared', ...terms, receivers: [idOf(parties.operator), idOf(parties.advertiser)] },
      ],
    },
    'secagg test agreement',
  );
}

async function establish(a: Agreement): Promise<void> {
  const signature = (party: PartyKeys) => signAgreement(a, agreementHash(a), { partyId: idOf(party), signingSecret: party.signingSecret }, new Date());
  await proposeCollaboration(clientOf(parties.advertiser), { agreement: a, signature: signature(parties.advertiser) });
  await signCollaboration(clientOf(parties.publisher), a.id, signature(parties.publisher));
}

async function runEvents(runId: string): Promise<{ text: string; event: LogEvent }[]> {
  return (await server.store.log.entriesOf([id]))
    .map((e) => {
      const text = new TextDecoder().decode(e.data);
      return { text, event: JSON.parse(text) as LogEvent };
    })
    .filter((e) => 'run' in e.event && e.event.run === runId);
}

interface Joiner {
  readonly keys: PartyKeys;
  readonly input?: number[];
  /** Stop right after sending this round's message: a real dropout. */
  readonly dropAfterRound?: number;
}

interface Played {
  readonly run: RunView;
  readonly aggregator: PromiseSettledResult<Awaited<ReturnType<typeof startSecAggRun>>>;
  readonly joins: PromiseSettledResult<Awaited<ReturnType<typeof joinSecAggRun>>>[];
  readonly events: SecAggProgress[];
}

/** Starts a run as the aggregator, lets the joiners join once it exists, and waits for everyone. */
async function play(computation: string, aggregator: PartyKeys, input: number[] | undefined, joiners: readonly Joiner[], roundTimeoutMs = 1500): Promise<Played> {
  const events: SecAggProgress[] = [];
  let started!: (run: RunView) => void;
  const runStarted = new Promise<RunView>((resolve) => (started = resolve));
  const aggregation = startSecAggRun({
    client: clientOf(aggregator),
    collaborationId: id,
    computation,
    keys: aggregator,
    ...(input === undefined ? {} : { input }),
    roundTimeoutMs,
    joinTimeoutMs: 10_000,
    intervalMs: 10,
    onStarted: started,
    onProgress: (e) => events.push(e),
  });
  const run = await Promise.race([runStarted, aggregation.then(() => Promise.reject(new Error('the run ended before it started')))]);
  const joins = joiners.map((j) => {
    const controller = new AbortController();
    return joinSecAggRun({
      client: clientOf(j.keys),
      collaborationId: id,
      runId: run.id,
      keys: j.keys,
      ...(j.input === undefined ? {} : { input: j.input }),
      signal: controller.signal,
      intervalMs: 10,
      timeoutMs: 20_000,
      onProgress: (e) => {
        if (e.event === 'sent' && e.round === j.dropAfterRound) controller.abort();
      },
    });
  });
  const [agg, ...rest] = await Promise.allSettled([aggregation, ...joins]);
  return { run, aggregator: agg, joins: rest, events };
}

function value<T>(settled: PromiseSettledResult<T> | undefined): T {
  if (settled?.status !== 'fulfilled') throw new Error(`expected success, got ${String(settled?.status === 'rejected' ? (settled.reason as Error).message : settled)}`);
  return settled.value;
}

function reasonOf(settled: PromiseSettledResult<unknown> | undefined): unknown {
  if (settled?.status !== 'rejected') throw new Error('expected a failure');
  return settled.reason;
}

const sortedIds = (...keys: PartyKeys[]): string[] => keys.map(idOf).sort();

beforeAll(async () => {
  dataDir = tempDir('malus-secagg-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, loggerInstance: pino({ level: 'silent' }) });
  parties = makeParties('Secagg ');
  carol = generatePartyKeys('Secagg Carol');
  id = uniqueId('secagg-joint');
  agreement = secaggAgreement(id);
  await establish(agreement);
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
});

describe('a secure aggregation over the relay', () => {
  it('sums three providers exactly (clipped, quantized), and logs only the counts', async () => {
    const { advertiser, publisher } = parties;
    const played = await play('spend_total', advertiser, INPUTS.advertiser, [
      { keys: publisher, input: INPUTS.publisher },
      { keys: carol, input: INPUTS.carol },
    ]);
    const { run, result } = value(played.aggregator);
    expect([...result.sum]).toEqual([...plainSum(INPUTS.advertiser, INPUTS.publisher, INPUTS.carol)]);
    expect([...new Int32Array(result.quantizedSum.buffer)]).toEqual([...plainSum(INPUTS.advertiser, INPUTS.publisher, INPUTS.carol)].map((x) => x * SCALE));
    expect(result.contributors).toEqual(sortedIds(advertiser, publisher, carol));
    expect(result.dropped).toEqual([]);
    expect(run).toMatchObject({ id: played.run.id, state: 'finished', startedBy: idOf(advertiser), summary: { kind: 'secagg', contributors: 3, dropouts: 0 } });
    // The parties that only contribute see the run end, and nothing of the sum.
    for (const join of played.joins) {
      expect(value(join).run.state).toBe('finished');
      expect(value(join).result).toBeUndefined();
    }
    expect(played.events.filter((e) => e.event === 'closed')).toEqual([0, 1, 2, 3, 4].map((round) => ({ event: 'closed', round, messages: 3, expected: 3 })));

    const events = await runEvents(run.id);
    expect(events.map((e) => e.event.type)).toEqual(['run.started', 'run.finished']);
    const finished = events[1]?.event;
    expect(finished).toMatchObject({ outcome: 'succeeded', summary: { kind: 'secagg', contributors: 3, dropouts: 0 } });
    expect(finished !== undefined && 'summary' in finished ? finished.summary : undefined).toEqual({ kind: 'secagg', contributors: 3, dropouts: 0 });
    // No sum in the log, in any form.
    for (const { text } of events) for (const x of result.sum) if (Math.abs(x) > 1) expect(text).not.toContain(String(x));
  });

  it('survives a party that stops after sharing its keys: the sum holds the other two', async () => {
    const { advertiser, publisher } = parties;
    const played = await play('spend_total', advertiser, INPUTS.advertiser, [
      { keys: publisher, input: INPUTS.publisher },
      { keys: carol, input: INPUTS.carol, dropAfterRound: 1 },
    ]);
    const { run, result } = value(played.aggregator);
    expect([...result.sum]).toEqual([...plainSum(INPUTS.advertiser, INPUTS.publisher)]);
    expect(result.contributors).toEqual(sortedIds(advertiser, publisher));
    expect(result.dropped).toEqual([idOf(carol)]);
    expect(run.summary).toEqual({ kind: 'secagg', contributors: 2, dropouts: 1 });
    expect(played.events.find((e) => e.event === 'closed' && e.round === 2)).toEqual({ event: 'closed', round: 2, messages: 2, expected: 3 });
    expect(value(played.joins[0]).run.state).toBe('finished');
    expect((reasonOf(played.joins[1]) as Error).name).toBe('AbortError');
  });

  it('fails when more parties drop than the threshold allows, and the run ends failed in the log', async () => {
    const { advertiser, publisher } = parties;
    const played = await play('spend_total', advertiser, INPUTS.advertiser, [
      { keys: publisher, input: INPUTS.publisher, dropAfterRound: 1 },
      { keys: carol, input: INPUTS.carol, dropAfterRound: 1 },
    ]);
    const error = reasonOf(played.aggregator);
    expect(isMalusError(error, 'conflict')).toBe(true);
    expect(secaggReason(error)).toBe('secagg-too-few-parties');
    expect((error as MalusError).message).toBe('round 2 has 1 messages, fewer than the threshold 2: the run cannot go on');
    const run = await getRun(clientOf(advertiser), id, played.run.id);
    expect(run).toMatchObject({ state: 'failed', summary: { kind: 'secagg', code: 'conflict' } });
    const finished = (await runEvents(run.id)).find((e) => e.event.type === 'run.finished')?.event;
    expect(finished).toMatchObject({ outcome: 'failed', summary: { kind: 'secagg', code: 'conflict' } });
  });

  it('gives the sum to every receiver when the aggregator contributes nothing', async () => {
    const { advertiser, publisher, operator } = parties;
    const played = await play('spend_shared', operator, undefined, [
      { keys: advertiser, input: INPUTS.advertiser },
      { keys: publisher, input: INPUTS.publisher },
      { keys: carol, input: INPUTS.carol },
    ]);
    const expected = [...plainSum(INPUTS.advertiser, INPUTS.publisher, INPUTS.carol)];
    expect([...value(played.aggregator).result.sum]).toEqual(expected);
    const atAdvertiser = value(played.joins[0]).result;
    expect(atAdvertiser === undefined ? undefined : [...atAdvertiser.sum]).toEqual(expected);
    expect(atAdvertiser?.contributors).toEqual(sortedIds(advertiser, publisher, carol));
    expect(value(played.joins[1]).result).toBeUndefined();
    expect(value(played.aggregator).run.summary).toEqual({ kind: 'secagg', contributors: 3, dropouts: 0 });
  });
});

describe('who may take part', () => {
  it('refuses an aggregator that is not a receiver, and an aggregator input that is not a vector of the right shape, before any run starts', async () => {
    const before = (await listRuns(clientOf(parties.advertiser), id)).length;
    const start = (keys: PartyKeys, input: number[] | undefined, computation = 'spend_total') =>
      startSecAggRun({ client: clientOf(keys), collaborationId: id, computation, keys, ...(input === undefined ? {} : { input }) });
    await expect(start(parties.publisher, INPUTS.publisher)).rejects.toMatchObject({ code: 'forbidden', message: expect.stringContaining('only a receiver of spend_total') });
    await expect(start(parties.advertiser, [1, 2, 3])).rejects.toMatchObject({ code: 'invalid-input', message: 'the input has 3 entries; the computation takes 4' });
    await expect(start(parties.advertiser, [1, 2, Number.NaN, 4])).rejects.toMatchObject({ code: 'invalid-input', message: 'entry 2 of the input is not a finite number' });
    await expect(start(parties.advertiser, undefined)).rejects.toMatchObject({ code: 'invalid-input', message: expect.stringContaining('must bring an input vector') });
    await expect(start(parties.operator, [1, 2, 3, 4], 'spend_shared')).rejects.toMatchObject({ code: 'invalid-input', message: expect.stringContaining('brings no input') });
    await expect(start(parties.advertiser, INPUTS.advertiser, 'no_such_sum')).rejects.toMatchObject({ code: 'computation-not-allowed' });
    expect((await listRuns(clientOf(parties.advertiser), id)).length).toBe(before);
  });

  it('keeps a member outside the computation out: refused by the client before it sends, forbidden by the server', async () => {
    const run = await startRun(clientOf(parties.advertiser), id, { kind: 'secagg', computation: 'spend_total' });
    const { operator } = parties;
    await expect(joinSecAggRun({ client: clientOf(operator), collaborationId: id, runId: run.id, keys: operator, input: INPUTS.carol })).rejects.toMatchObject({
      code: 'forbidden',
      message: `${idOf(operator)} is neither a party nor a receiver of spend_total`,
    });
    await expect(postRunMessage(clientOf(operator), id, run.id, { to: idOf(parties.advertiser), step: 0, data: new Uint8Array([0, 0, 0, 1]) })).rejects.toMatchObject({ code: 'forbidden' });
    // A stranger to the collaboration does not even see the run.
    const stranger = generatePartyKeys('Secagg stranger');
    await expect(joinSecAggRun({ client: clientOf(stranger), collaborationId: id, runId: run.id, keys: stranger, input: INPUTS.carol })).rejects.toMatchObject({ code: 'not-found' });
    // A party refuses bad input before sending anything.
    await expect(joinSecAggRun({ client: clientOf(carol), collaborationId: id, runId: run.id, keys: carol, input: [0, 1, Infinity, 3] })).rejects.toMatchObject({
      code: 'invalid-input',
      message: 'entry 2 of the input is not a finite number',
    });
    expect((await getRunMessages(clientOf(parties.advertiser), id, run.id)).messages).toEqual([]);
    await finishRun(clientOf(parties.advertiser), id, run.id, { outcome: 'failed', summary: { kind: 'secagg', code: 'forbidden' } });
  });

  it('sends nothing to a run started by a party that is not a receiver', async () => {
    const run = await startRun(clientOf(parties.publisher), id, { kind: 'secagg', computation: 'spend_total' });
    await expect(joinSecAggRun({ client: clientOf(carol), collaborationId: id, runId: run.id, keys: carol, input: INPUTS.carol })).rejects.toMatchObject({
      code: 'forbidden',
      message: expect.stringContaining(`was started by ${idOf(parties.publisher)}, who is not a receiver of spend_total`),
    });
    expect((await getRunMessages(clientOf(parties.publisher), id, run.id)).messages).toEqual([]);
    await finishRun(clientOf(parties.publisher), id, run.id, { outcome: 'failed', summary: { kind: 'secagg', code: 'forbidden' } });
  });
});

/** The protocol parameters of a run, as the parties derive them from the agreement. */
function paramsOf(runId: string): SecAggParams {
  const c = agreement.secureAggregation?.[0];
  if (c === undefined) throw new Error('no computation');
  const signingKeyOf = (party: string): Uint8Array => {
    const key = decodeSigningKey(agreement.parties.find((p) => p.id === party)?.signingKey ?? '');
    if ('problem' in key) throw new Error(key.problem);
    return key.key;
  };
  return {
    collaboration: id,
    roundId: runId,
    parties: c.parties.map((p) => ({ id: p, signingKey: signingKeyOf(p) })),
    threshold: c.threshold,
    vectorLength: c.vectorLength,
    clip: c.clip,
    scale: 2 ** c.fractionBits,
  };
}

const ALLOWED = { vectorLength: { min: 4, max: 4 }, threshold: { min: 2, max: 2 }, clip: { min: CLIP, max: CLIP }, scale: { min: SCALE, max: SCALE } };

describe('a message that is not what the protocol expects', () => {
  // Policy: the aggregator refuses the message and the sender is out of the run from that round on
  // (as if it had dropped out); the run goes on while at least t parties remain.
  const tampered = [
    { what: 'garbage bytes in a well-formed relay frame', reason: 'secagg-malformed', bytes: (): Uint8Array => new TextEncoder().encode('not a secagg message at all') },
    {
      what: "carol's signed advertisement for another run (a replay)",
      reason: 'secagg-wrong-run',
      bytes: (): Uint8Array => partyAdvertise(createParty({ params: paramsOf(`run-${'0'.repeat(32)}`), allowed: ALLOWED, id: idOf(carol), identitySecretKey: carol.signingSecret, input: INPUTS.carol })).message,
    },
  ] as const;

  for (const { what, reason, bytes } of tampered) {
    it(`refuses ${what} and drops the sender (${reason})`, async () => {
      const { advertiser, publisher } = parties;
      const events: SecAggProgress[] = [];
      let started!: (run: RunView) => void;
      const runStarted = new Promise<RunView>((resolve) => (started = resolve));
      const aggregation = startSecAggRun({
        client: clientOf(advertiser),
        collaborationId: id,
        computation: 'spend_total',
        keys: advertiser,
        input: INPUTS.advertiser,
        roundTimeoutMs: 1500,
        intervalMs: 10,
        onStarted: started,
        onProgress: (e) => events.push(e),
      });
      const run = await runStarted;
      // Carol posts the bytes itself, framed as the channel frames a one-part message.
      const message = bytes();
      const framed = new Uint8Array(4 + message.byteLength);
      new DataView(framed.buffer).setUint32(0, 1);
      framed.set(message, 4);
      await postRunMessage(clientOf(carol), id, run.id, { to: idOf(advertiser), step: 0, data: framed });
      const [publisherJoin] = await Promise.all([
        joinSecAggRun({ client: clientOf(publisher), collaborationId: id, runId: run.id, keys: publisher, input: INPUTS.publisher, intervalMs: 10, timeoutMs: 20_000 }),
        aggregation,
      ]);
      const { result, run: ended } = await aggregation;
      const refused = events.find((e) => e.event === 'refused');
      expect(refused).toMatchObject({ event: 'refused', round: 0, party: idOf(carol) });
      expect(refused?.event === 'refused' ? secaggReason(refused.error) : undefined).toBe(reason);
      expect([...result.sum]).toEqual([...plainSum(INPUTS.advertiser, INPUTS.publisher)]);
      expect(result.contributors).toEqual(sortedIds(advertiser, publisher));
      // Carol never got into U1, so it is not a dropout of the sum either.
      expect(ended.summary).toEqual({ kind: 'secagg', contributors: 2, dropouts: 0 });
      expect(publisherJoin.run.state).toBe('finished');
    });
  }

  it('a receiver refuses a result whose bytes were altered on the way', () => {
    const params = paramsOf(`run-${'1'.repeat(32)}`);
    const session = { params, digest: checkRun(params, ALLOWED).digest };
    const result = { sum: new Float64Array(4), quantizedSum: new Uint32Array([1, 2, 3, 0xffffffff]), contributors: sortedIds(parties.advertiser, carol), dropped: [idOf(parties.publisher)] };
    const bytes = encodeSecAggResult(session, result, parties.advertiser.signingSecret);
    const key = parties.advertiser.identity.signingKey;
    const decodedKey = decodeSigningKey(key);
    if ('problem' in decodedKey) throw new Error(decodedKey.problem);
    const decoded = decodeSecAggResult(session, decodedKey.key, bytes);
    expect([...decoded.sum]).toEqual([1 / SCALE, 2 / SCALE, 3 / SCALE, -1 / SCALE]);
    expect(decoded.contributors).toEqual(result.contributors);
    expect(decoded.dropped).toEqual(result.dropped);
    const altered = bytes.slice();
    altered[altered.length - 70] = (altered[altered.length - 70] ?? 0) ^ 1;
    expect(() => decodeSecAggResult(session, decodedKey.key, altered)).toThrow(expect.objectContaining({ code: 'signature-invalid' }));
    const other = paramsOf(`run-${'2'.repeat(32)}`);
    expect(() => decodeSecAggResult({ params: other, digest: checkRun(other, ALLOWED).digest }, decodedKey.key, bytes)).toThrow(expect.objectContaining({ code: 'invalid-input', message: expect.stringContaining('another run') }));
    expect(RESULT_STEP).toBe(5);
  });
});

describe('readVectorFile', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('malus-secagg-vectors-');
  });
  afterAll(() => {
    removeDir(dir);
  });
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('reads an array of numbers or {"vector": [...]}', () => {
    expect(readVectorFile(file('a.json', '[1, -2.5, 3e2]'))).toEqual([1, -2.5, 300]);
    expect(readVectorFile(file('b.json', '{"vector": [0.25]}'))).toEqual([0.25]);
  });

  it('names the file, and the entry that is not a finite number', () => {
    const missing = join(dir, 'missing.json');
    expect(() => readVectorFile(missing)).toThrow(expect.objectContaining({ code: 'file-unreadable', message: `cannot read vector file ${missing}: ENOENT` }));
    const bad = file('c.json', '[1, "2", 3]');
    expect(() => readVectorFile(bad)).toThrow(expect.objectContaining({ code: 'invalid-input', message: `vector file ${bad}: entry 1 is not a finite number (got the string "2")` }));
    const huge = file('d.json', '[1, 2, 1e999]');
    expect(() => readVectorFile(huge)).toThrow(expect.objectContaining({ code: 'invalid-input', message: `vector file ${huge}: entry 2 is not a finite number (got Infinity)` }));
    const notJson = file('e.json', '[1, 2');
    expect(() => readVectorFile(notJson)).toThrow(expect.objectContaining({ code: 'invalid-input', message: expect.stringContaining(`vector file ${notJson} is not JSON`) }));
    const misspelt = file('f.json', '{"vectors": [1]}');
    expect(() => readVectorFile(misspelt)).toThrow(expect.objectContaining({ code: 'invalid-input', message: expect.stringContaining('not an object with the keys vectors') }));
    expect(() => readVectorFile(file('g.json', '3'))).toThrow(expect.objectContaining({ code: 'invalid-input' }));
  });
});
