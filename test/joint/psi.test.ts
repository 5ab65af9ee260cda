import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createClient, getRun, proposeCollaboration, signCollaboration, type MalusClient, type RunView } from '../../src/client/index.js';
import { isMalusError, type ErrorCode } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { SIGNATURE_BYTES, activeTerms, connectForPsi, listenForPsi, readPsiInput, receiveMessages, receivePsi, sealPsiMessage, sendMessage, sendPsi, type PsiOutcome } from '../../src/joint/index.js';
import type { LogEvent } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { makeParties, removeDir, tempDir, uniqueId, type Parties } from '../server/helpers.js';

// PSI between two real parties through a real server: every request signed, every message relayed,
// the agreement checked by both sides, and the run logged with its sizes only.

let dataDir: string;
let server: RunningServer;
let parties: Parties;
const serverLog: string[] = [];

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const idOf = (keys: PartyKeys): string => keys.identity.id;

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'no error'> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    if (isMalusError(error)) return error.code;
    throw error;
  }
}

function psiAgreement(id: string): Agreement {
  const base = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - 60_000) },
  );
  return assertAgreement(
    {
      ...base,
      psi: [
        {
          name: 'customer_overlap',
          sender: idOf(parties.publisher),
          receiver: idOf(parties.advertiser),
          modes: ['cardinality', 'intersection', 'sum'],
          normalize: ['email'],
          maxSetSize: 1000,
        },
        { name: 'count_only', sender: idOf(parties.publisher), receiver: idOf(parties.advertiser), modes: ['cardinality'], maxSetSize: 50 },
      ],
    },
    'psi test agreement',
  );
}

async function establish(agreement: Agreement): Promise<void> {
  const sign = (party: PartyKeys) => signAgreement(agreement, agreementHash(agreement), { partyId: idOf(party), signingSecret: party.signingSecret }, new Date());
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: sign(parties.advertiser) });
  await signCollaboration(clientOf(parties.publisher), agreement.id, sign(parties.publisher));
}

async function entriesOf(id: string): Promise<{ text: string; event: LogEvent }[]> {
  return (await server.store.log.entriesOf([id])).map((e) => {
    const text = new TextDecoder().decode(e.data);
    return { text, event: JSON.parse(text) as LogEvent };
  });
}

const receiverSet = Array.from({ length: 120 }, (_, i) => `customer${i}@example.com`);
const senderSet = Array.from({ length: 90 }, (_, i) => `customer${i + 60}@example.com`);
const shared = receiverSet.filter((x) => senderSet.includes(x));

/** Both sides at once: the receiver starts the run, the sender finds it and answers. */
async function both(
  collab: string,
  receiver: Omit<Parameters<typeof receivePsi>[0], 'client' | 'collaborationId' | 'partyId'>,
  sender: Omit<Parameters<typeof sendPsi>[0], 'client' | 'collaborationId' | 'partyId'>,
): Promise<{ run: RunView; result: PsiOutcome; receiverCount: number }> {
  const common = { collaborationId: collab, intervalMs: 20, timeoutMs: 20_000 };
  const [received, sent] = await Promise.all([
    receivePsi({ ...common, client: clientOf(parties.advertiser), ...receiver }),
    sendPsi({ ...common, client: clientOf(parties.publisher), ...sender }),
  ]);
  expect(sent.run.id).toBe(received.run.id);
  return { ...received, receiverCount: sent.receiverCount };
}

beforeAll(async () => {
  dataDir = tempDir('malus-joint-psi-');
  const loggerInstance = pino({ level: 'info' }, { write: (chunk: string) => void serverLog.push(chunk) });
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, loggerInstance });
  parties = makeParties('PSI ');
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
});

describe('PSI through the relay', () => {
  let collab: string;
  beforeAll(async () => {
    collab = uniqueId('joint-psi');
    await establish(psiAgreement(collab));
  }, 30_000);

  it('cardinality: the receiver learns |X ∩ Y|, the sender |X|, and the log holds the sizes only', async () => {
    const { run, result, receiverCount } = await both(collab, { mode: 'cardinality', items: receiverSet, computation: 'customer_overlap' }, { items: senderSet, computation: 'customer_overlap' });
    expect(result).toMatchObject({ mode: 'cardinality', size: shared.length, receiverCount: 120, senderCount: 90, setEncoding: 'raw', falsePositiveRate: 0 });
    expect(receiverCount).toBe(120);
    expect(run).toMatchObject({ state: 'finished', summary: { kind: 'psi', setSizes: { sender: 90, receiver: 120 }, setEncoding: 'raw', falsePositiveRate: 0 } });
    expect(run.relayed.messages).toBe(2);
    const finished = (await entriesOf(collab)).filter((e) => e.event.type === 'run.finished' && e.text.includes(run.id));
    expect(finished).toHaveLength(1);
    for (const { text } of await entriesOf(collab)) {
      expect(text).not.toContain('@example.com');
      expect(text).not.toContain(`"size":${shared.length}`);
    }
    expect(serverLog.join('')).not.toContain('@example.com');
  });

  it('intersection with a compressed set: the receiver learns which of its elements are shared', async () => {
    const { result, run } = await both(
      collab,
      { mode: 'intersection', items: receiverSet, computation: 'customer_overlap', setEncoding: 'gcs', falsePositiveBits: 30 },
      { items: senderSet, computation: 'customer_overlap' },
    );
    expect(result.mode).toBe('intersection');
    if (result.mode === 'intersection') expect([...result.items].sort()).toEqual([...shared].sort());
    expect(run.summary).toMatchObject({ setEncoding: 'gcs', falsePositiveRate: result.falsePositiveRate });
    expect(result.falsePositiveRate).toBeLessThanOrEqual(2 ** -30);
  });

  it('sum: the receiver learns the size and the total of the sender’s values over the shared elements', async () => {
    const values = senderSet.map((_, i) => BigInt(100 + i));
    const expected = senderSet.reduce((sum, x, i) => (receiverSet.includes(x) ? sum + (values[i] ?? 0n) : sum), 0n);
    const { result } = await both(collab, { mode: 'sum', items: receiverSet, computation: 'customer_overlap' }, { items: senderSet, values, computation: 'customer_overlap' });
    expect(result).toMatchObject({ mode: 'sum', size: shared.length, sum: expected });
  });

  it('refuses what the agreement does not allow, before anything is sent', async () => {
    const receiver = { client: clientOf(parties.advertiser), collaborationId: collab };
    expect(await codeOf(receivePsi({ ...receiver, computation: 'count_only', mode: 'intersection', items: receiverSet }))).toBe('computation-not-allowed');
    // 120 elements against a maximum of 50.
    expect(await codeOf(receivePsi({ ...receiver, computation: 'count_only', mode: 'cardinality', items: receiverSet }))).toBe('computation-not-allowed');
    // A party outside the PSI: the operator is neither its sender nor its receiver.
    expect(await codeOf(receivePsi({ client: clientOf(parties.operator), collaborationId: collab, mode: 'cardinality', items: receiverSet, computation: 'customer_overlap' }))).toBe(
      'computation-not-allowed',
    );
    // The receiver cannot play the sender's side.
    expect(await codeOf(sendPsi({ ...receiver, items: senderSet, computation: 'customer_overlap', timeoutMs: 100 }))).toBe('computation-not-allowed');
  });

  it('an answer with one byte flipped fails the run: its signature does not verify, and the run ends failed with the code', async () => {
    let started: RunView | undefined;
    const receiving = receivePsi({
      client: clientOf(parties.advertiser),
      collaborationId: collab,
      computation: 'customer_overlap',
      mode: 'cardinality',
      items: receiverSet,
      intervalMs: 20,
      timeoutMs: 20_000,
      onStarted: (run) => (started = run),
    });
    const outcome = codeOf(receiving);
    // Play the sender by hand: answer its real request with a real reply, one byte flipped.
    while (started === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    const run = started;
    const channel = { client: clientOf(parties.publisher), collaborationId: collab, runId: run.id, intervalMs: 20 };
    const [request] = await receiveMessages(channel, 0, { from: [idOf(parties.advertiser)] });
    expect(request).toBeDefined();
    const { senderReply, decodeExpected, encodeMessage } = await import('../../src/psi/index.js');
    const body = (request?.data ?? new Uint8Array()).subarray(SIGNATURE_BYTES);
    const { reply } = await senderReply(decodeExpected(body, 'request'), senderSet, { context: { collaborationId: collab, runId: run.id }, modes: ['cardinality'] });
    const bytes = sealPsiMessage(parties.publisher, run.id, 0, 'answer', encodeMessage(reply));
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] ?? 0) ^ 1;
    await sendMessage(channel, idOf(parties.advertiser), 0, bytes);
    expect(await outcome).toBe('signature-invalid');
    const after = await getRun(clientOf(parties.advertiser), collab, run.id);
    expect(after.state).toBe('failed');
    expect(after.summary).toEqual({ kind: 'psi', code: 'signature-invalid' });
  });

  it("an answer replayed from another run is refused: the run id is in what each party signs", async () => {
    const old = await both(collab, { mode: 'cardinality', items: receiverSet, computation: 'customer_overlap' }, { items: senderSet, computation: 'customer_overlap' });
    const oldChannel = { client: clientOf(parties.advertiser), collaborationId: collab, runId: old.run.id, intervalMs: 20 };
    const [oldReply] = await receiveMessages(oldChannel, 0, { from: [idOf(parties.publisher)] });
    expect(oldReply).toBeDefined();
    let started: RunView | undefined;
    const receiving = codeOf(
      receivePsi({
        client: clientOf(parties.advertiser),
        collaborationId: collab,
        computation: 'customer_overlap',
        mode: 'cardinality',
        items: receiverSet,
        intervalMs: 20,
        timeoutMs: 20_000,
        onStarted: (run) => (started = run),
      }),
    );
    while (started === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    const channel = { client: clientOf(parties.publisher), collaborationId: collab, runId: started.id, intervalMs: 20 };
    await sendMessage(channel, idOf(parties.advertiser), 0, oldReply?.data ?? new Uint8Array());
    expect(await receiving).toBe('signature-invalid');
    expect((await getRun(clientOf(parties.advertiser), collab, started.id)).state).toBe('failed');
  });
});

describe('PSI directly between the parties', () => {
  let collab: string;
  beforeAll(async () => {
    collab = uniqueId('joint-direct');
    await establish(psiAgreement(collab));
  }, 30_000);

  it('sends the messages straight to the sender, signed both ways; the run is still started and logged at the server', async () => {
    const listener = await listenForPsi('127.0.0.1', 0);
    try {
      const terms = await activeTerms(clientOf(parties.advertiser), collab);
      const { run, result } = await both(
        collab,
        { mode: 'intersection', items: receiverSet, computation: 'customer_overlap', link: (r, c) => connectForPsi(listener.url, r, terms.agreement, parties.advertiser, c.sender, 20) },
        { items: senderSet, computation: 'customer_overlap', link: (r, c) => listener.linkFor(r, terms.agreement, parties.publisher, c.receiver) },
      );
      expect(result.size).toBe(shared.length);
      expect(run).toMatchObject({ state: 'finished', relayed: { messages: 0, bytes: 0 }, summary: { setSizes: { sender: 90, receiver: 120 } } });
    } finally {
      await listener.close();
    }
  });

  it('refuses an answer that the agreed sender did not sign, and a request that the agreed receiver did not sign', async () => {
    const terms = await activeTerms(clientOf(parties.advertiser), collab);
    // An imposter answers in the sender's place: it signs with the operator's key.
    const imposter = await listenForPsi('127.0.0.1', 0);
    try {
      const refused = codeOf(
        both(
          collab,
          { mode: 'cardinality', items: receiverSet, computation: 'customer_overlap', link: (r, c) => connectForPsi(imposter.url, r, terms.agreement, parties.advertiser, c.sender, 20) },
          { items: senderSet, computation: 'customer_overlap', timeoutMs: 5_000, link: (r, c) => imposter.linkFor(r, terms.agreement, parties.operator, c.receiver) },
        ),
      );
      expect(await refused).toBe('signature-invalid');
    } finally {
      await imposter.close();
    }
    // The request is signed by someone other than the receiver: the sender answers 401 and never computes.
    const listener = await listenForPsi('127.0.0.1', 0);
    try {
      const outcome = codeOf(
        both(
          collab,
          { mode: 'cardinality', items: receiverSet, computation: 'customer_overlap', link: (r, c) => connectForPsi(listener.url, r, terms.agreement, parties.operator, c.sender, 20) },
          { items: senderSet, computation: 'customer_overlap', timeoutMs: 2_000, link: (r, c) => listener.linkFor(r, terms.agreement, parties.publisher, c.receiver) },
        ),
      );
      expect(await outcome).toBe('server-error');
    } finally {
      await listener.close();
    }
  });
});

describe('the run channel', () => {
  it('splits a large message into parts and puts them back together, with two senders interleaved', async () => {
    const collab = uniqueId('joint-channel');
    await establish(psiAgreement(collab));
    const { startRun } = await import('../../src/client/index.js');
    const run = await startRun(clientOf(parties.advertiser), collab, { kind: 'psi', computation: 'customer_overlap', mode: 'cardinality' });
    const big = new Uint8Array(5001).map((_, i) => i % 251);
    const small = new Uint8Array([1, 2, 3]);
    const toPublisher = { client: clientOf(parties.advertiser), collaborationId: collab, runId: run.id, intervalMs: 10, partBytes: 1000 };
    const atPublisher = { client: clientOf(parties.publisher), collaborationId: collab, runId: run.id, intervalMs: 10, partBytes: 1000 };
    const waiting = receiveMessages(atPublisher, 3, { from: [idOf(parties.advertiser)], deadline: Date.now() + 10_000 });
    await sendMessage(toPublisher, idOf(parties.publisher), 4, small);
    await sendMessage(toPublisher, idOf(parties.publisher), 3, big);
    const [got] = await waiting;
    expect(got?.data).toEqual(big);
    expect((await getRun(clientOf(parties.advertiser), collab, run.id)).relayed.messages).toBe(1 + 6);
    const [next] = await receiveMessages(atPublisher, 4, { from: [idOf(parties.advertiser)] });
    expect(next?.data).toEqual(small);
    // At the deadline, only what arrived (with partial), or a timeout.
    expect(await receiveMessages(atPublisher, 5, { from: [idOf(parties.advertiser)], deadline: Date.now() + 50, partial: true })).toEqual([]);
    expect(await codeOf(receiveMessages(atPublisher, 5, { from: [idOf(parties.advertiser)], deadline: Date.now() + 50 }))).toBe('request-timeout');
  });
});

describe('PSI input files', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('malus-psi-input-');
  });
  afterAll(() => { removeDir(dir); });

  it('reads one column of a wider file through the normalizers, and the values exactly', async () => {
    const path = join(dir, 'customers.csv');
    writeFileSync(path, 'name,email,spend\nAda, Ada.Lovelace+ads@GMail.com ,12.50\nBob,bob@example.org,3\n');
    const read = await readPsiInput({ input: path, column: 'email', valueColumn: 'spend', valueDecimals: 2, normalize: ['email'] });
    expect(read).toEqual({ rows: 2, items: ['adalovelace@gmail.com', 'bob@example.org'], values: [1250n, 300n] });
    const plain = await readPsiInput({ input: path, column: 'EMAIL' });
    expect(plain.items).toEqual([' Ada.Lovelace+ads@GMail.com ', 'bob@example.org']);
  });

  it('names the rows it cannot use, without repeating their values', async () => {
    const path = join(dir, 'bad.csv');
    writeFileSync(path, 'email,spend\nnot-an-email,1\n,2\nc@example.com,-5\nd@example.com,1.234\n');
    const error = await readPsiInput({ input: path, column: 'email', normalize: ['email'] }).catch((e: unknown) => e);
    expect(isMalusError(error, 'invalid-input')).toBe(true);
    const issues = (error as { issues?: { path: string; message: string }[] }).issues ?? [];
    expect(issues.map((i) => i.path)).toEqual(['row 1, column email', 'row 2, column email']);
    const values = await readPsiInput({ input: join(dir, 'bad.csv'), column: 'spend', valueColumn: 'email' }).catch((e: unknown) => e);
    expect(isMalusError(values, 'invalid-input')).toBe(true);
    const ok = join(dir, 'values.csv');
    writeFileSync(ok, 'email,spend\nc@example.com,-5\nd@example.com,1.234\ne@example.com,7\n');
    const amounts = await readPsiInput({ input: ok, column: 'email', valueColumn: 'spend', valueDecimals: 2 }).catch((e: unknown) => e);
    const amountIssues = (amounts as { issues?: { path: string; message: string }[] }).issues ?? [];
    expect(amountIssues.map((i) => i.path)).toEqual(['row 1, column spend', 'row 2, column spend']);
    expect(JSON.stringify(amountIssues)).not.toContain('1.234');
    expect(await codeOf(readPsiInput({ input: join(dir, 'missing.csv'), column: 'email' }))).toBe('file-unreadable');
    expect(await codeOf(readPsiInput({ input: ok, column: 'phone' }))).toBe('invalid-input');
  });
});
