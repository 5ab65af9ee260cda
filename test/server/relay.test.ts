import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import {
  MAX_RUN_MESSAGE_BYTES,
  createClient,
  finishRun,
  getRun,
  getRunMessages,
  listRuns,
  postRunMessage,
  proposeCollaboration,
  signCollaboration,
  startRun,
  waitForRunMessages,
  type MalusClient,
  type RunView,
} from '../../src/client/index.js';
import { equalBytes, toBase64Url, toHex, utf8 } from '../../src/crypto/index.js';
import { isMalusError, type ErrorCode } from '../../src/errors/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import type { LogEvent } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { expectProblem, inject, makeParties, prepare, removeDir, tempDir, uniqueId, wallClock, type Parties } from './helpers.js';

// The relay of PSI and secure-aggregation runs through a real server over HTTP, every request signed
// by the real client (docs/relay.md): who may start a run and post to it, messages kept once and read
// in order, runs ended with a summary of sizes only, and log entries that never hold message data.

const clock = wallClock;

let dataDir: string;
let server: RunningServer;
let parties: Parties;
/** A fourth party, a provider: secure aggregation needs three contributors. */
let carol: PartyKeys;
const serverLog: string[] = [];

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const idOf = (keys: PartyKeys): string => keys.identity.id;

/** The code a refused call failed with. */
async function refusal(promise: Promise<unknown>): Promise<ErrorCode | 'no error'> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    if (isMalusError(error)) return error.code;
    throw error;
  }
}

async function eventsOf(id: string): Promise<{ text: string; event: LogEvent }[]> {
  return (await server.store.log.entriesOf([id])).map((e) => {
    const text = new TextDecoder().decode(e.data);
    return { text, event: JSON.parse(text) as LogEvent };
  });
}

/** The example agreement with one PSI (publisher sends, advertiser receives) and one secure aggregation over three providers. */
function relayAgreement(id: string): Agreement {
  const base = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - 60_000) },
  );
  const { id: carolId, name, signingKey, encryptionKey } = carol.identity;
  return assertAgreement(
    {
      ...base,
      parties: [...base.parties, { id: carolId, name, signingKey, encryptionKey, roles: ['provider'] }],
      psi: [
        {
          name: 'customer_overlap',
          sender: idOf(parties.publisher),
          receiver: idOf(parties.advertiser),
          modes: ['cardinality', 'intersection'],
          normalize: ['trim', 'lowercase'],
          maxSetSize: 1000,
        },
      ],
      secureAggregation: [
        {
          name: 'spend_total',
          parties: [idOf(parties.advertiser), idOf(parties.publisher), idOf(carol)],
          threshold: 2,
          vectorLength: 4,
          clip: 1000,
          fractionBits: 8,
          receivers: [idOf(parties.advertiser)],
        },
      ],
    },
    'relay test agreement',
  );
}

const signatureOf = (agreement: Agreement, party: PartyKeys) =>
  signAgreement(agreement, agreementHash(agreement), { partyId: idOf(party), signingSecret: party.signingSecret }, new Date());

/** Proposes and signs an agreement through the client: active once the advertiser and the publisher signed. */
async function establish(agreement: Agreement): Promise<Agreement> {
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: signatureOf(agreement, parties.advertiser) });
  await signCollaboration(clientOf(parties.publisher), agreement.id, signatureOf(agreement, parties.publisher));
  return agreement;
}

const psiStart = { kind: 'psi', computation: 'customer_overlap', mode: 'cardinality' } as const;

beforeAll(async () => {
  dataDir = tempDir('malus-relay-');
  const loggerInstance = pino({ level: 'info' }, { write: (chunk: string) => void serverLog.push(chunk) });
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, loggerInstance });
  parties = makeParties('Relay ');
  carol = generatePartyKeys('Relay Carol');
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
});

describe('a PSI run', () => {
  let id: string;
  let agreement: Agreement;
  let run: RunView;
  const query = utf8('blinded query: H(x)^a for every x');
  const answer = utf8('blinded answer: (H(x)^a)^b');
  const set = utf8('blinded set: H(y)^b for every y');

  beforeAll(async () => {
    id = uniqueId('relay-psi');
    agreement = await establish(relayAgreement(id));
  }, 30_000);

  it('starts under the active agreement, for one of its parties, with the terms and the options it was asked for', async () => {
    run = await startRun(clientOf(parties.advertiser), id, { ...psiStart, parameters: { setEncoding: 'gcs', falsePositiveBits: 30 } });
    expect(run).toMatchObject({
      collaboration: id,
      kind: 'psi',
      computation: 'customer_overlap',
      mode: 'cardinality',
      agreement: agreementHash(agreement),
      parties: [idOf(parties.publisher), idOf(parties.advertiser)],
      parameters: { maxSetSize: 1000, normalize: ['trim', 'lowercase'], setEncoding: 'gcs', falsePositiveBits: 30 },
      state: 'open',
      startedBy: idOf(parties.advertiser),
      finishedBy: null,
      summary: null,
      relayed: { messages: 0, bytes: 0 },
      finishedAt: null,
    });
    expect(run.id).toMatch(/^run-[0-9a-f]{32}$/);
  });

  it('relays the messages between the receiver and the sender, each party reading only what is addressed to it, in order', async () => {
    const receiver = clientOf(parties.advertiser);
    const sender = clientOf(parties.publisher);
    const posted = await postRunMessage(receiver, id, run.id, { to: idOf(parties.publisher), step: 0, data: query });
    expect(posted).toMatchObject({ seq: 0, sender: idOf(parties.advertiser), to: idOf(parties.publisher), step: 0, bytes: query.byteLength, added: true });

    const atSender = await waitForRunMessages(sender, id, run.id, { after: -1, count: 1, intervalMs: 10 });
    expect(atSender.map((m) => ({ sender: m.sender, step: m.step, data: m.data }))).toEqual([{ sender: idOf(parties.advertiser), step: 0, data: query }]);
    expect(atSender[0]?.sha256).toBe(posted.sha256);

    // Posted out of order; read in step order.
    await postRunMessage(sender, id, run.id, { to: idOf(parties.advertiser), step: 2, data: set });
    await postRunMessage(sender, id, run.id, { to: idOf(parties.advertiser), step: 1, data: answer });
    const atReceiver = await waitForRunMessages(receiver, id, run.id, { after: 0, count: 2, intervalMs: 10 });
    expect(atReceiver.map((m) => [m.step, m.seq, new TextDecoder().decode(m.data)])).toEqual([
      [1, 2, 'blinded answer: (H(x)^a)^b'],
      [2, 1, 'blinded set: H(y)^b for every y'],
    ]);

    // Nothing of one's own comes back, and nothing after the last step read.
    expect((await getRunMessages(sender, id, run.id, { after: 0 })).messages).toEqual([]);
    expect((await getRunMessages(receiver, id, run.id, { after: 2 })).messages).toEqual([]);
    expect((await getRunMessages(receiver, id, run.id, { after: 1, afterSeq: 2 })).messages.map((m) => m.step)).toEqual([2]);
    expect(await getRun(receiver, id, run.id)).toMatchObject({ relayed: { messages: 3, bytes: query.byteLength + answer.byteLength + set.byteLength } });
    expect((await listRuns(clientOf(parties.operator), id)).map((r) => r.id)).toEqual([run.id]);
  });

  it('keeps a message once: the same bytes again change nothing, other bytes for the step are 409 conflict', async () => {
    const receiver = clientOf(parties.advertiser);
    const again = await postRunMessage(receiver, id, run.id, { to: idOf(parties.publisher), step: 0, data: query });
    expect(again).toMatchObject({ seq: 0, step: 0, added: false });
    const repeat = await inject(
      server,
      prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs/${run.id}/messages`, json: { to: idOf(parties.publisher), step: 0, data: toBase64Url(query) }, as: parties.advertiser }),
    );
    expect(repeat.statusCode, repeat.body).toBe(200);
    const other = await inject(
      server,
      prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs/${run.id}/messages`, json: { to: idOf(parties.publisher), step: 0, data: toBase64Url(utf8('other bytes')) }, as: parties.advertiser }),
    );
    expectProblem(other, 409, 'conflict', 'already relayed with other bytes');
    // The same step to everyone is another message; so is the same step from the other party.
    expect((await postRunMessage(receiver, id, run.id, { to: '*', step: 0, data: utf8('to all') })).added).toBe(true);
    expect((await getRun(receiver, id, run.id)).relayed.messages).toBe(4);
    const atSender = await getRunMessages(clientOf(parties.publisher), id, run.id);
    expect(atSender.messages.map((m) => [m.step, m.to, new TextDecoder().decode(m.data)])).toEqual([
      [0, idOf(parties.publisher), 'blinded query: H(x)^a for every x'],
      [0, '*', 'to all'],
    ]);
  });

  it('relays only to another party of the run', async () => {
    const receiver = clientOf(parties.advertiser);
    for (const to of [idOf(parties.advertiser), idOf(parties.operator), '0123456789abcdef0123']) {
      const response = await inject(
        server,
        prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs/${run.id}/messages`, json: { to, step: 9, data: '' }, as: parties.advertiser }),
      );
      expect(expectProblem(response, 400, 'invalid-input').issues?.[0]?.path).toBe('body.to');
    }
    expect(await refusal(postRunMessage(receiver, id, run.id, { to: 'not a party', step: 9, data: new Uint8Array() }))).toBe('invalid-input');
    const notBase64 = await inject(
      server,
      prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs/${run.id}/messages`, json: { to: '*', step: 9, data: 'AB' }, as: parties.advertiser }),
    );
    expect(expectProblem(notBase64, 400, 'invalid-input').issues?.[0]?.path).toBe('body.data');
  });

  it('takes a message above the 1 MiB JSON limit on this route only', async () => {
    const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => i % 251);
    expect((await postRunMessage(clientOf(parties.publisher), id, run.id, { to: idOf(parties.advertiser), step: 3, data: big })).bytes).toBe(big.byteLength);
    const [received] = await waitForRunMessages(clientOf(parties.advertiser), id, run.id, { after: 2, count: 1, intervalMs: 10 });
    // (Compared as bytes: a deep equality of 2 MiB element by element takes seconds.)
    expect(received !== undefined && equalBytes(received.data, big)).toBe(true);
    const padded = await inject(server, prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs`, json: { ...psiStart, pad: 'x'.repeat(2 * 1024 * 1024) }, as: parties.advertiser }));
    expectProblem(padded, 413, 'payload-too-large');
    // The client refuses a message over the limit before sending it.
    expect(await refusal(postRunMessage(clientOf(parties.publisher), id, run.id, { to: '*', step: 4, data: new Uint8Array(MAX_RUN_MESSAGE_BYTES + 1) }))).toBe('payload-too-large');
  });

  it('refuses a request whose signature does not cover the bytes sent, storing nothing', async () => {
    const path = `/v1/collaborations/${id}/runs/${run.id}/messages`;
    const signed = { to: idOf(parties.publisher), step: 7, data: toBase64Url(utf8('signed bytes')) };
    const tampered = prepare({ clock }, { method: 'POST', path, json: { ...signed, data: toBase64Url(utf8('swapped bytes')) }, signedBody: JSON.stringify(signed), as: parties.advertiser });
    expectProblem(await inject(server, tampered), 401, 'unauthenticated', 'digest-mismatch');
    expect((await getRunMessages(clientOf(parties.publisher), id, run.id, { after: 6 })).messages).toEqual([]);
  });

  it('refuses a summary with a field it does not know, of another kind, or with a set larger than the agreement allows, and stays open', async () => {
    const receiver = clientOf(parties.advertiser);
    const path = `/v1/collaborations/${id}/runs/${run.id}/finish`;
    const smuggled = await inject(
      server,
      prepare({ clock }, { method: 'POST', path, json: { outcome: 'succeeded', summary: { kind: 'psi', setSizes: { sender: 3, receiver: 2 }, intersection: ['alice@example.com'] } }, as: parties.advertiser }),
    );
    expect(expectProblem(smuggled, 400, 'invalid-input').issues).toEqual([{ path: 'body.summary.intersection', message: 'unknown field' }]);
    const nested = await inject(
      server,
      prepare({ clock }, { method: 'POST', path, json: { outcome: 'succeeded', summary: { kind: 'psi', setSizes: { sender: 3, receiver: 2, overlap: 1 } } }, as: parties.advertiser }),
    );
    expectProblem(nested, 400, 'invalid-input');
    const text = await inject(server, prepare({ clock }, { method: 'POST', path, json: { outcome: 'failed', summary: { kind: 'psi', code: 'alice@example.com' } }, as: parties.advertiser }));
    expectProblem(text, 400, 'invalid-input');
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'succeeded', summary: { kind: 'secagg', dropouts: 0 } }))).toBe('invalid-input');
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'succeeded', summary: { kind: 'psi', code: 'internal' } }))).toBe('invalid-input');
    const oversized = await inject(server, prepare({ clock }, { method: 'POST', path, json: { outcome: 'succeeded', summary: { kind: 'psi', setSizes: { sender: 1001, receiver: 2 } } }, as: parties.advertiser }));
    expectProblem(oversized, 403, 'computation-not-allowed', "the sender's set (1001) is larger than customer_overlap allows (1000)");
    expect((await getRun(receiver, id, run.id)).state).toBe('open');
    expect((await eventsOf(id)).filter((e) => e.event.type === 'run.finished')).toEqual([]);
  });

  it('ends with a summary of sizes, logged as run.finished with what the server relayed, and then takes no new message', async () => {
    const receiver = clientOf(parties.advertiser);
    const before = await getRun(receiver, id, run.id);
    const ended = await finishRun(receiver, id, run.id, {
      outcome: 'succeeded',
      summary: { kind: 'psi', setSizes: { sender: 3, receiver: 2 }, setEncoding: 'gcs', falsePositiveRate: 1e-9 },
    });
    expect(ended).toMatchObject({ state: 'finished', finishedBy: idOf(parties.advertiser), summary: { kind: 'psi', setSizes: { sender: 3, receiver: 2 } }, relayed: before.relayed });
    expect(ended.finishedAt).not.toBeNull();
    expect(await refusal(finishRun(clientOf(parties.publisher), id, run.id, { outcome: 'failed', summary: { kind: 'psi' } }))).toBe('conflict');
    expect(await refusal(postRunMessage(receiver, id, run.id, { to: '*', step: 8, data: utf8('late') }))).toBe('conflict');
    // A repeat of a message it holds is still answered as such.
    expect((await postRunMessage(receiver, id, run.id, { to: idOf(parties.publisher), step: 0, data: query })).added).toBe(false);
    // Reading what was relayed stays possible.
    expect((await getRunMessages(clientOf(parties.publisher), id, run.id)).messages).toHaveLength(2);

    const runEvents = (await eventsOf(id)).filter((e) => e.event.type.startsWith('run.'));
    expect(runEvents.map((e) => e.event)).toEqual([
      {
        format: 'malus.event/v1',
        type: 'run.started',
        collaboration: id,
        actor: { kind: 'party', id: idOf(parties.advertiser) },
        time: run.createdAt,
        run: run.id,
        kind: 'psi',
        computation: 'customer_overlap',
        mode: 'cardinality',
        agreement: run.agreement,
        parties: run.parties,
        parameters: { maxSetSize: 1000, normalize: ['trim', 'lowercase'], setEncoding: 'gcs', falsePositiveBits: 30 },
      },
      {
        format: 'malus.event/v1',
        type: 'run.finished',
        collaboration: id,
        actor: { kind: 'party', id: idOf(parties.advertiser) },
        time: ended.finishedAt,
        run: run.id,
        kind: 'psi',
        computation: 'customer_overlap',
        outcome: 'succeeded',
        summary: { kind: 'psi', setSizes: { sender: 3, receiver: 2 }, setEncoding: 'gcs', falsePositiveRate: 1e-9 },
        relayed: before.relayed,
      },
    ]);
  });

  it('never puts message data in the log or in the server log', async () => {
    const leaks = (text: string): string[] =>
      [query, answer, set, utf8('to all')].flatMap((data) => [new TextDecoder().decode(data), toBase64Url(data), toHex(data)]).filter((needle) => text.includes(needle));
    for (const { text } of await eventsOf(id)) expect(leaks(text)).toEqual([]);
    expect(serverLog.length).toBeGreaterThan(0);
    expect(leaks(serverLog.join(''))).toEqual([]);
  });
});

describe('who may take part', () => {
  let id: string;
  let agreement: Agreement;
  let run: RunView;
  const outsider = generatePartyKeys('Relay outsider');

  beforeAll(async () => {
    id = uniqueId('relay-who');
    agreement = await establish(relayAgreement(id));
    run = await startRun(clientOf(parties.publisher), id, psiStart);
  }, 30_000);

  it('answers an outsider 404 on every route, as for a run that does not exist', async () => {
    const base = `/v1/collaborations/${id}/runs`;
    const calls = [
      { method: 'POST', path: base, json: psiStart },
      { method: 'GET', path: base },
      { method: 'GET', path: `${base}/${run.id}` },
      { method: 'POST', path: `${base}/${run.id}/messages`, json: { to: '*', step: 0, data: '' } },
      { method: 'GET', path: `${base}/${run.id}/messages?after=-1` },
      { method: 'POST', path: `${base}/${run.id}/finish`, json: { outcome: 'failed', summary: { kind: 'psi' } } },
    ] as const;
    for (const call of calls) {
      const response = await inject(server, prepare({ clock }, { ...call, as: outsider }));
      expectProblem(response, 404, 'not-found');
    }
    const unknown = `run-${'0'.repeat(32)}`;
    expectProblem(await inject(server, prepare({ clock }, { method: 'GET', path: `${base}/${unknown}`, as: parties.publisher })), 404, 'not-found');
    expect(await refusal(getRunMessages(clientOf(parties.publisher), id, unknown))).toBe('not-found');
  });

  it('answers a member who is not a party of the computation 403 forbidden, and lets it see the run', async () => {
    const operator = clientOf(parties.operator);
    const start = await inject(server, prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs`, json: psiStart, as: parties.operator }));
    expectProblem(start, 403, 'forbidden', 'only the parties of customer_overlap run it');
    expect(await refusal(startRun(operator, id, { kind: 'secagg', computation: 'spend_total' }))).toBe('forbidden');
    expect(await refusal(postRunMessage(operator, id, run.id, { to: '*', step: 0, data: utf8('x') }))).toBe('forbidden');
    expect(await refusal(getRunMessages(operator, id, run.id))).toBe('forbidden');
    expect(await refusal(finishRun(operator, id, run.id, { outcome: 'failed', summary: { kind: 'psi' } }))).toBe('forbidden');
    expect((await getRun(operator, id, run.id)).state).toBe('open');
  });

  it('refuses a mode the agreement does not allow and a computation it does not have, logging nothing', async () => {
    const receiver = clientOf(parties.advertiser);
    const sum = await inject(server, prepare({ clock }, { method: 'POST', path: `/v1/collaborations/${id}/runs`, json: { ...psiStart, mode: 'sum' }, as: parties.advertiser }));
    expectProblem(sum, 403, 'computation-not-allowed', 'customer_overlap allows the modes cardinality, intersection, not sum');
    expect(await refusal(startRun(receiver, id, { ...psiStart, computation: 'other_overlap' }))).toBe('computation-not-allowed');
    // A name of the other kind is not a computation of this one.
    expect(await refusal(startRun(receiver, id, { kind: 'secagg', computation: 'customer_overlap' }))).toBe('computation-not-allowed');
    expect(await refusal(startRun(receiver, id, { ...psiStart, mode: 'everything' as 'sum' }))).toBe('invalid-input');
    expect((await listRuns(receiver, id)).map((r) => r.id)).toEqual([run.id]);
    expect((await eventsOf(id)).filter((e) => e.event.type === 'run.started')).toHaveLength(1);
  });

  it('answers 409 conflict for a collaboration without an active agreement', async () => {
    const pending = relayAgreement(uniqueId('relay-pending'));
    await proposeCollaboration(clientOf(parties.advertiser), { agreement: pending, signature: signatureOf(pending, parties.advertiser) });
    expect(await refusal(startRun(clientOf(parties.advertiser), pending.id, psiStart))).toBe('conflict');
  });

  it('takes no new message once an amendment removes the computation', async () => {
    const amended = assertAgreement(
      { ...structuredClone(agreement), version: 2, previous: agreementHash(agreement), title: `${agreement.title} (amended)`, psi: [] },
      'amended relay agreement',
    );
    await proposeCollaboration(clientOf(parties.advertiser), { agreement: amended, signature: signatureOf(amended, parties.advertiser) });
    await signCollaboration(clientOf(parties.publisher), id, signatureOf(amended, parties.publisher));
    const publisher = clientOf(parties.publisher);
    expect(await refusal(postRunMessage(publisher, id, run.id, { to: '*', step: 0, data: utf8('after the amendment') }))).toBe('computation-not-allowed');
    expect(await refusal(startRun(publisher, id, psiStart))).toBe('computation-not-allowed');
    // The run can still be ended, as failed.
    expect((await finishRun(publisher, id, run.id, { outcome: 'failed', summary: { kind: 'psi', code: 'computation-not-allowed' } })).state).toBe('failed');
  });
});

describe('a secure-aggregation run', () => {
  let id: string;

  beforeAll(async () => {
    id = uniqueId('relay-secagg');
    await establish(relayAgreement(id));
  }, 30_000);

  it('relays each party’s broadcast to the others, and ends with the number of dropouts', async () => {
    const run = await startRun(clientOf(carol), id, { kind: 'secagg', computation: 'spend_total' });
    expect(run).toMatchObject({
      mode: null,
      parties: [idOf(parties.advertiser), idOf(parties.publisher), idOf(carol)],
      parameters: { threshold: 2, vectorLength: 4, clip: 1000, fractionBits: 8, receivers: [idOf(parties.advertiser)] },
    });
    const members = [parties.advertiser, parties.publisher, carol];
    for (const member of members) {
      await postRunMessage(clientOf(member), id, run.id, { to: '*', step: 0, data: utf8(`public keys of ${member.identity.name}`) });
    }
    for (const member of members) {
      const received = await waitForRunMessages(clientOf(member), id, run.id, { count: 2, intervalMs: 10 });
      expect(received.map((m) => m.sender).sort()).toEqual(members.filter((m) => m !== member).map(idOf).sort());
    }
    const receiver = clientOf(parties.advertiser);
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'succeeded', summary: { kind: 'secagg', dropouts: 2 } }))).toBe('invalid-input');
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'succeeded', summary: { kind: 'secagg', contributors: 1 } }))).toBe('invalid-input');
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'failed', summary: { kind: 'secagg', dropouts: 4 } }))).toBe('invalid-input');
    expect(await refusal(finishRun(receiver, id, run.id, { outcome: 'failed', summary: { kind: 'secagg', contributors: 3, dropouts: 1 } }))).toBe('invalid-input');
    const summary = { kind: 'secagg', contributors: 2, dropouts: 1 } as const;
    const ended = await finishRun(receiver, id, run.id, { outcome: 'succeeded', summary });
    expect(ended).toMatchObject({ state: 'finished', summary, relayed: { messages: 3 } });
    const finished = (await eventsOf(id)).find((e) => e.event.type === 'run.finished')?.event;
    expect(finished).toMatchObject({ kind: 'secagg', computation: 'spend_total', outcome: 'succeeded', summary, relayed: { messages: 3 } });
  });
});
