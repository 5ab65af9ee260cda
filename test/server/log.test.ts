import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash } from '../../src/agreement/index.js';
import { fromBase64, fromBase64Url, generateSigningKeyPair, toBase64 } from '../../src/crypto/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import {
  cosignatureLine,
  cosignatureVerifier,
  decodeEntryBundle,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  openCheckpoint,
  parseNote,
  parseVerifierKey,
  rootFromLeafHashes,
  signCheckpoint,
  verifierKeyString,
  verifyConsistency,
  verifyInclusion,
  verifyReceipt,
  witnessName,
  type Checkpoint,
  type NoteVerifier,
  type Receipt,
} from '../../src/ledger/index.js';
import { buildApp } from '../../src/server/index.js';
import { agreementFor, establish, expectProblem, makeParties, send, startTestServer, type Parties, type TestServer } from './helpers.js';

// The log API over inject: a party's entries, checkpoints, proofs, tiles, entry bundles, receipts
// and witness cosignatures. One server; two collaborations give two checkpoints (sizes 4 and 6).

interface EntryView {
  index: number;
  leafHash: string;
  entry: string;
}

let server: TestServer;
let parties: Parties;
let others: Parties;
let id: string;
let otherId: string;
let verifier: NoteVerifier;
/** Every leaf hash of the log (size 6), as the members' entry listings give them. */
let leaves: Uint8Array[];
/** The entries of both collaborations, in index order. */
let allEntries: EntryView[];

const b64 = (text: string): Uint8Array => fromBase64(text) ?? new Uint8Array();
const sha256LeafBase64 = (entry: string): string =>
  createHash('sha256').update(Buffer.from([0])).update(entry, 'utf8').digest('base64');

async function entriesOf(collaboration: string, as: PartyKeys): Promise<EntryView[]> {
  const response = await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${collaboration}`, as });
  expect(response.statusCode, response.body).toBe(200);
  return (response.json() as { entries: EntryView[] }).entries;
}

async function checkpointNote(): Promise<string> {
  const response = await send(server, { method: 'GET', path: '/v1/log/checkpoint' });
  expect(response.statusCode).toBe(200);
  expect(String(response.headers['content-type'])).toMatch(/^text\/plain/);
  return response.body;
}

function open(note: string): { checkpoint: Checkpoint; text: string } {
  const opened = openCheckpoint(note, verifier, verifier.name);
  if (!opened.ok) throw new Error(opened.reason);
  return { checkpoint: opened.checkpoint, text: opened.note.text };
}

async function listedCheckpoints(): Promise<Checkpoint[]> {
  const response = await send(server, { method: 'GET', path: '/v1/log/checkpoints' });
  expect(response.statusCode).toBe(200);
  return (response.json() as { checkpoints: { size: number; note: string }[] }).checkpoints.map((c) => open(c.note).checkpoint);
}

beforeAll(async () => {
  server = await startTestServer();
  parties = makeParties();
  others = makeParties('Other');
  ({ id } = await establish(server, parties, { signed: true }));
  await server.log.checkpoint();
  ({ id: otherId } = await establish(server, others));
  await server.log.checkpoint();
  const key = await send(server, { method: 'GET', path: '/v1/log/key' });
  expect(key.statusCode).toBe(200);
  const announced = key.json() as { origin: string; verifierKey: string };
  expect(announced.origin).toBe('test.malus/log');
  verifier = parseVerifierKey(announced.verifierKey)!;
  expect(verifier.name).toBe('test.malus/log');
  allEntries = [...(await entriesOf(id, parties.publisher)), ...(await entriesOf(otherId, others.operator))];
  leaves = allEntries.map((e) => b64(e.leafHash));
});

afterAll(async () => {
  await server.close();
});

describe('log entries', () => {
  it('records proposed, signed, signed, activated in order, each entry hashing to its leaf', async () => {
    const entries = await entriesOf(id, parties.advertiser);
    expect(entries.map((e) => e.index)).toEqual([0, 1, 2, 3]);
    const events = entries.map((e) => JSON.parse(e.entry) as Record<string, unknown>);
    expect(events.map((e) => e.type)).toEqual(['agreement.proposed', 'agreement.signed', 'agreement.signed', 'agreement.activated']);
    const hash = agreementHash(agreementFor(parties, id));
    for (const e of events) expect(e).toMatchObject({ format: 'malus.event/v1', collaboration: id, agreement: hash, version: 1 });
    expect(events.map((e) => e.signer)).toEqual([undefined, parties.advertiser.identity.id, parties.publisher.identity.id, undefined]);
    for (const e of entries) expect(e.leafHash).toBe(sha256LeafBase64(e.entry));
    // The other collaboration's entries follow at 4 and 5, and are not listed here.
    expect(allEntries.map((e) => e.index)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('answers a stranger exactly as for a collaboration that does not exist', async () => {
    const stranger = generatePartyKeys('Stranger');
    const hidden = await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${id}`, as: stranger });
    const missing = await send(server, { method: 'GET', path: '/v1/log/entries?collaboration=no-such-thing', as: stranger });
    expectProblem(hidden, 404, 'not-found');
    expectProblem(missing, 404, 'not-found');
    expect(hidden.body.replace(id, 'X')).toBe(missing.body.replace('no-such-thing', 'X'));
    // A member of one collaboration is a stranger to another.
    expectProblem(await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${otherId}`, as: parties.advertiser }), 404, 'not-found');
    // Unsigned requests are refused before anything is looked up.
    expectProblem(await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${id}` }), 401, 'unauthenticated');
  });
});

describe('checkpoints and proofs', () => {
  it('serves a text/plain checkpoint signed by the announced key, and keeps every checkpoint', async () => {
    const { checkpoint } = open(await checkpointNote());
    expect(checkpoint.origin).toBe('test.malus/log');
    expect(checkpoint.size).toBe(6);
    expect(Buffer.from(checkpoint.root).equals(Buffer.from(rootFromLeafHashes(leaves)))).toBe(true);
    const listed = await listedCheckpoints();
    expect(listed.map((c) => c.size)).toEqual([4, 6]);
    expect(Buffer.from(listed[0]?.root ?? []).equals(Buffer.from(rootFromLeafHashes(leaves.slice(0, 4))))).toBe(true);
  });

  it('does not verify under another key', async () => {
    const other = parseVerifierKey(verifierKeyString(verifier.name, generateSigningKeyPair().publicKey));
    expect(other).toBeDefined();
    expect(openCheckpoint(await checkpointNote(), other ?? verifier)).toMatchObject({ ok: false });
  });

  it('serves inclusion proofs that verify against both checkpoint roots', async () => {
    for (const checkpoint of await listedCheckpoints()) {
      const { size, root } = checkpoint;
      for (let index = 0; index < size; index++) {
        const response = await send(server, { method: 'GET', path: `/v1/log/proof/inclusion?index=${index}&size=${size}` });
        expect(response.statusCode, response.body).toBe(200);
        const proof = response.json() as { index: number; size: number; leafHash: string; proof: string[] };
        expect(proof).toMatchObject({ index, size, leafHash: allEntries[index]?.leafHash });
        expect(verifyInclusion({ index, size, leafHash: b64(proof.leafHash), proof: proof.proof.map(b64), root })).toEqual({ ok: true });
        // The same proof does not place another leaf there.
        const other = leaves[(index + 1) % size] ?? new Uint8Array(32);
        expect(verifyInclusion({ index, size, leafHash: other, proof: proof.proof.map(b64), root }).ok).toBe(false);
      }
    }
  });

  it('serves consistency proofs between the checkpoints, and from every earlier size', async () => {
    const [four, six] = await listedCheckpoints();
    if (four === undefined || six === undefined) throw new Error('expected two checkpoints');
    const response = await send(server, { method: 'GET', path: '/v1/log/proof/consistency?from=4&to=6' });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json() as { from: number; to: number; proof: string[] };
    expect(body).toMatchObject({ from: 4, to: 6 });
    expect(verifyConsistency({ size1: 4, size2: 6, root1: four.root, root2: six.root, proof: body.proof.map(b64) })).toEqual({ ok: true });
    expect(verifyConsistency({ size1: 4, size2: 6, root1: six.root, root2: six.root, proof: body.proof.map(b64) }).ok).toBe(false);
    for (let from = 1; from <= 6; from++) {
      const proof = (await send(server, { method: 'GET', path: `/v1/log/proof/consistency?from=${from}&to=6` })).json() as { proof: string[] };
      const root1 = rootFromLeafHashes(leaves.slice(0, from));
      expect(verifyConsistency({ size1: from, size2: 6, root1, root2: six.root, proof: proof.proof.map(b64) }).ok, `from ${from}`).toBe(true);
    }
  });

  it('refuses bad proof requests with problem documents', async () => {
    const bad = async (path: string, status: number, code: 'invalid-input' | 'not-found'): Promise<void> => {
      expectProblem(await send(server, { method: 'GET', path: `/v1/log/proof/${path}` }), status, code);
    };
    await bad('inclusion?index=6&size=6', 400, 'invalid-input'); // index = size
    await bad('inclusion?index=9&size=6', 400, 'invalid-input'); // index > size
    await bad('inclusion?index=0&size=0', 400, 'invalid-input');
    await bad('inclusion?index=0&size=99', 404, 'not-found'); // beyond the log
    await bad('inclusion?index=x&size=6', 400, 'invalid-input');
    await bad('inclusion?index=1&size=six', 400, 'invalid-input');
    await bad('inclusion?index=-1&size=6', 400, 'invalid-input');
    await bad('inclusion?index=1.5&size=6', 400, 'invalid-input');
    await bad('inclusion?index=1', 400, 'invalid-input');
    await bad('inclusion?index=1&size=6&extra=1', 400, 'invalid-input');
    await bad('consistency?from=0&to=6', 400, 'invalid-input');
    await bad('consistency?from=5&to=4', 400, 'invalid-input');
    await bad('consistency?from=2&to=99', 404, 'not-found');
    await bad('consistency?from=a&to=6', 400, 'invalid-input');
    await bad('consistency?to=6', 400, 'invalid-input');
  });
});

describe('tiles', () => {
  it('serves the level-0 hash tile of the checkpoint: size × 32 bytes, the leaf hashes', async () => {
    for (const width of [1, 4, 6]) {
      const response = await server.app.inject({ method: 'GET', url: `/v1/log/tile/0/000.p/${width}` });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('application/octet-stream');
      expect(response.headers['cache-control']).toBe('no-cache');
      expect(response.rawPayload.length).toBe(width * 32);
      for (let i = 0; i < width; i++) {
        expect(toBase64(response.rawPayload.subarray(i * 32, i * 32 + 32))).toBe(allEntries[i]?.leafHash);
      }
    }
  });

  it('serves no tile beyond the checkpoint, and no malformed tile path', async () => {
    const paths = [
      'tile/0/000', // the full tile: 256 leaves, the log has 6
      'tile/0/001',
      'tile/0/000.p/7',
      'tile/0/001.p/1',
      'tile/1/000.p/1',
      'tile/0/x000/001',
      'tile/0/001.p/256',
      'tile/0/001.p/0',
      'tile/0/000.p/06',
      'tile/0/00',
      'tile/00/000.p/1',
      'tile/abc/000',
      'tile/-1/000.p/1',
      'tile/0/000.p/',
      'tile/0/000.p/1/extra',
      'tile/',
    ];
    for (const path of paths) expectProblem(await send(server, { method: 'GET', path: `/v1/log/${path}` }), 404, 'not-found');
  });

  it('keeps entry bundles private unless the server is built with publicEntries', async () => {
    for (const path of ['tile/entries/000.p/6', 'tile/entries/000.p/1', 'tile/entries/000']) {
      expectProblem(await send(server, { method: 'GET', path: `/v1/log/${path}` }), 404, 'not-found');
    }
    const open = await buildApp({ context: { store: server.store, log: server.log, now: () => server.clock.now }, publicEntries: true });
    try {
      const response = await open.inject({ method: 'GET', url: '/v1/log/tile/entries/000.p/6' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('application/octet-stream');
      const entries = decodeEntryBundle(response.rawPayload).map((e) => new TextDecoder().decode(e));
      expect(entries).toEqual(allEntries.map((e) => e.entry));
      const partial = decodeEntryBundle((await open.inject({ method: 'GET', url: '/v1/log/tile/entries/000.p/2' })).rawPayload);
      expect(partial.map((e) => new TextDecoder().decode(e))).toEqual(allEntries.slice(0, 2).map((e) => e.entry));
      // Still only inside the checkpoint, and still only canonical paths.
      expect((await open.inject({ method: 'GET', url: '/v1/log/tile/entries/000.p/7' })).statusCode).toBe(404);
      expect((await open.inject({ method: 'GET', url: '/v1/log/tile/entries/000' })).statusCode).toBe(404);
      expect((await open.inject({ method: 'GET', url: '/v1/log/tile/entries/x000/000.p/1' })).statusCode).toBe(404);
    } finally {
      await open.close();
    }
  });
});

describe('receipts', () => {
  let receipt: Receipt;
  const publisherWitness = (): NoteVerifier =>
    cosignatureVerifier(witnessName(parties.publisher.identity.id), fromBase64Url(parties.publisher.identity.signingKey) ?? new Uint8Array());

  beforeAll(async () => {
    const response = await send(server, { method: 'GET', path: '/v1/log/receipt?index=3', as: parties.advertiser });
    expect(response.statusCode, response.body).toBe(200);
    receipt = response.json() as Receipt;
  });

  it('gives a member a receipt that verifies offline against the newest checkpoint (the one witnesses cosign)', async () => {
    expect(receipt).toMatchObject({ format: 'malus.receipt/v1', index: 3, entry: allEntries[3]?.entry });
    const verdict = verifyReceipt(receipt, { log: verifier });
    expect(verdict).toMatchObject({ ok: true, index: 3, event: { type: 'agreement.activated', collaboration: id }, cosignedBy: [] });
    expect(verdict.ok && verdict.checkpoint.size).toBe((await server.store.log.latestCheckpoint())?.size);
  });

  it('gives a stranger, a member of another collaboration and an unknown index 404', async () => {
    const get = (index: number, as: PartyKeys) => send(server, { method: 'GET', path: `/v1/log/receipt?index=${index}`, as });
    const stranger = await get(3, generatePartyKeys('S'));
    expectProblem(stranger, 404, 'not-found');
    expectProblem(await get(3, others.advertiser), 404, 'not-found');
    const unknown = await get(99, parties.advertiser);
    expectProblem(unknown, 404, 'not-found');
    const detail = (response: { json(): unknown }) => (response.json() as { detail: string }).detail.replace(/\d+/g, 'N');
    expect(detail(stranger)).toBe(detail(unknown));
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/receipt?index=3' }), 401, 'unauthenticated');
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/receipt?index=x', as: parties.advertiser }), 400, 'invalid-input');
  });

  it('fails at the entry or inclusion step for every flipped bit of the entry', () => {
    for (let i = 0; i < receipt.entry.length; i++) {
      const code = receipt.entry.charCodeAt(i);
      const entry = `${receipt.entry.slice(0, i)}${String.fromCharCode(code ^ 1)}${receipt.entry.slice(i + 1)}`;
      const verdict = verifyReceipt({ ...receipt, entry }, { log: verifier });
      expect(verdict.ok, `byte ${i}`).toBe(false);
      if (!verdict.ok) expect(['entry', 'inclusion'], `byte ${i}`).toContain(verdict.step);
    }
    // A still-canonical, still-valid event that is not the logged one: only the proof can tell.
    const other = receipt.entry.replace('"version":1', '"version":3');
    expect(verifyReceipt({ ...receipt, entry: other }, { log: verifier })).toMatchObject({ ok: false, step: 'inclusion' });
    // Not canonical JSON any more.
    expect(verifyReceipt({ ...receipt, entry: ` ${receipt.entry}` }, { log: verifier })).toMatchObject({ ok: false, step: 'entry' });
  });

  it('fails at the inclusion step for another index or a changed proof', () => {
    for (const index of [0, 1, 2, 4, 5, 100]) {
      expect(verifyReceipt({ ...receipt, index }, { log: verifier }), `index ${index}`).toMatchObject({ ok: false, step: 'inclusion' });
    }
    expect(verifyReceipt({ ...receipt, inclusionProof: receipt.inclusionProof.slice(1) }, { log: verifier })).toMatchObject({
      ok: false,
      step: 'inclusion',
    });
    expect(verifyReceipt({ ...receipt, inclusionProof: receipt.inclusionProof.slice(0, -1) }, { log: verifier })).toMatchObject({
      ok: false,
      step: 'inclusion',
    });
    expect(verifyReceipt({ ...receipt, inclusionProof: [...receipt.inclusionProof, receipt.inclusionProof[0] ?? ''] }, { log: verifier })).toMatchObject({
      ok: false,
      step: 'inclusion',
    });
    const flipped = b64(receipt.inclusionProof[0] ?? '');
    flipped[31] = (flipped[31] ?? 0) ^ 0x80;
    expect(verifyReceipt({ ...receipt, inclusionProof: [toBase64(flipped), ...receipt.inclusionProof.slice(1)] }, { log: verifier })).toMatchObject({
      ok: false,
      step: 'inclusion',
    });
  });

  it('fails at the checkpoint step for a checkpoint signed by another key, or edited', () => {
    const { checkpoint } = open(receipt.checkpoint);
    const forged = signCheckpoint(checkpoint, ed25519NoteSigner(verifier.name, generateSigningKeyPair().secretKey));
    expect(verifyReceipt({ ...receipt, checkpoint: forged }, { log: verifier })).toMatchObject({ ok: false, step: 'checkpoint' });
    const edited = receipt.checkpoint.replace(`\n${checkpoint.size}\n`, `\n${checkpoint.size + 1}\n`);
    expect(verifyReceipt({ ...receipt, checkpoint: edited }, { log: verifier })).toMatchObject({ ok: false, step: 'checkpoint' });
    const otherLog = parseVerifierKey(server.log.verifierKey.replace('test.malus/log', 'other.malus/log'));
    // Renaming the log changes the key id, so such a key string does not even parse.
    expect(otherLog).toBeUndefined();
    expect(verifyReceipt({ ...receipt, format: 'malus.receipt/v0' }, { log: verifier })).toMatchObject({ ok: false, step: 'shape' });
  });

  it('fails at the cosignatures step when a witness is required and none cosigned', () => {
    expect(verifyReceipt(receipt, { log: verifier, witnesses: [publisherWitness()], minCosignatures: 1 })).toMatchObject({
      ok: false,
      step: 'cosignatures',
    });
    expect(verifyReceipt(receipt, { log: verifier, witnesses: [], minCosignatures: 1 })).toMatchObject({ ok: false, step: 'cosignatures' });
    expect(verifyReceipt(receipt, { log: verifier, witnesses: [publisherWitness()], minCosignatures: 0 })).toMatchObject({ ok: true });
  });

  it('carries the cosignatures of the checkpoint it uses, once witnesses cosigned it', async () => {
    const { checkpoint, text } = open(receipt.checkpoint);
    const keys = parties.publisher;
    const line = cosignatureLine(text, witnessName(keys.identity.id), keys.signingSecret, 1_800_000_000);
    const posted = await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size: checkpoint.size, cosignature: line }, as: keys });
    expect(posted.statusCode, posted.body).toBe(201);
    const again = (await send(server, { method: 'GET', path: '/v1/log/receipt?index=3', as: parties.publisher })).json() as Receipt;
    expect(again.checkpoint).toContain(line);
    const verdict = verifyReceipt(again, { log: verifier, witnesses: [publisherWitness()], minCosignatures: 1 });
    expect(verdict).toMatchObject({ ok: true, cosignedBy: [witnessName(keys.identity.id)] });
    expect(verifyReceipt(again, { log: verifier, witnesses: [publisherWitness()], minCosignatures: 2 })).toMatchObject({
      ok: false,
      step: 'cosignatures',
    });
    // A listed witness's cosignature that does not verify is tampering.
    const parsed = parseNote(again.checkpoint);
    if ('error' in parsed) throw new Error(parsed.error);
    const cosig = parsed.signatures.find((s) => s.name === witnessName(keys.identity.id))?.line ?? '';
    const bytes = b64(cosig.split(' ')[2] ?? '');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    const tampered = again.checkpoint.replace(cosig, `${cosig.split(' ').slice(0, 2).join(' ')} ${toBase64(bytes)}`);
    expect(verifyReceipt({ ...again, checkpoint: tampered }, { log: verifier, witnesses: [publisherWitness()] })).toMatchObject({
      ok: false,
      step: 'cosignatures',
    });
  });
});

describe('witness cosignatures', () => {
  async function current(): Promise<{ size: number; text: string }> {
    const { checkpoint, text } = open(await checkpointNote());
    return { size: checkpoint.size, text };
  }
  const post = (as: PartyKeys | undefined, size: number, cosignature: string) =>
    send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature }, ...(as === undefined ? {} : { as }) });

  it('accepts a party cosignature once and serves it with the checkpoint', async () => {
    const { size, text } = await current();
    const keys = parties.advertiser;
    const name = witnessName(keys.identity.id);
    const line = cosignatureLine(text, name, keys.signingSecret, 1_800_000_000);
    const first = await post(keys, size, line);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toEqual({ size, witness: name, added: true });
    const served = await checkpointNote();
    expect(served).toContain(`${line}\n`);
    // Still a valid checkpoint, now cosigned.
    expect(open(served).checkpoint.size).toBe(size);
    // A cosignature (type 0x04) never passes for an Ed25519 note signature (type 0x01) by the same key.
    const sameKeyAsLog = ed25519NoteVerifier(name, fromBase64Url(keys.identity.signingKey) ?? new Uint8Array());
    expect(openCheckpoint(served, sameKeyAsLog).ok).toBe(false);
    const again = await post(keys, size, line);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ size, witness: name, added: false });
    // Another line by the same witness over the same checkpoint is a repeat too, and is not served.
    const later = cosignatureLine(text, name, keys.signingSecret, 1_800_000_100);
    expect((await post(keys, size, later)).json()).toMatchObject({ added: false });
    expect(await checkpointNote()).not.toContain(later);
  });

  it('refuses a line signed by another key under my name (422)', async () => {
    const { size, text } = await current();
    const me = parties.operator;
    const forged = cosignatureLine(text, witnessName(me.identity.id), parties.publisher.signingSecret, 1_800_000_000);
    expectProblem(await post(me, size, forged), 422, 'signature-invalid');
    expect(await checkpointNote()).not.toContain(forged);
  });

  it('refuses a line naming another witness, or no witness line at all (400)', async () => {
    const { size, text } = await current();
    const me = parties.operator;
    const misnamed = cosignatureLine(text, witnessName(parties.publisher.identity.id), me.signingSecret, 1_800_000_000);
    expectProblem(await post(me, size, misnamed), 400, 'invalid-input');
    const parsed = parseNote(await checkpointNote());
    if ('error' in parsed) throw new Error(parsed.error);
    const logLine = parsed.signatures.find((s) => s.name === verifier.name);
    expect(logLine).toBeDefined();
    expectProblem(await post(me, size, logLine?.line ?? ''), 400, 'invalid-input');
    expectProblem(await post(me, size, 'not a signature line'), 400, 'invalid-input');
    expectProblem(await post(me, size, ''), 400, 'invalid-input');
    expect(await checkpointNote()).not.toContain(misnamed);
  });

  it('refuses a party in no collaboration (403) and unsigned requests (401)', async () => {
    const { size, text } = await current();
    const outsider = generatePartyKeys('Outsider');
    const line = cosignatureLine(text, witnessName(outsider.identity.id), outsider.signingSecret, 1_800_000_000);
    expectProblem(await post(outsider, size, line), 403, 'forbidden');
    expectProblem(await post(undefined, size, line), 401, 'unauthenticated');
    expect(await checkpointNote()).not.toContain(line);
  });

  it('refuses an unknown size (404) and a cosignature over another checkpoint body (422)', async () => {
    const { size, text } = await current();
    const me = parties.operator;
    const line = cosignatureLine(text, witnessName(me.identity.id), me.signingSecret, 1_800_000_000);
    expectProblem(await post(me, 99, line), 404, 'not-found');
    expectProblem(await post(me, 5, line), 404, 'not-found'); // inside the log, but never checkpointed
    // The body of size 6 posted for the checkpoint of size 4, and a body that was never signed.
    expectProblem(await post(me, 4, line), 422, 'signature-invalid');
    const otherBody = text.replace(`\n${size}\n`, `\n${size + 1}\n`);
    expectProblem(await post(me, size, cosignatureLine(otherBody, witnessName(me.identity.id), me.signingSecret, 1_800_000_000)), 422, 'signature-invalid');
    // The genuine line is still accepted after all that.
    expect((await post(me, size, line)).statusCode).toBe(201);
  });

  it('caps the cosignatures of one checkpoint, so that the served note stays readable', async () => {
    // Anyone can name fresh identities in a proposal; 100 signature lines make a note unreadable.
    const crowded = await startTestServer();
    try {
      const witnesses: PartyKeys[] = [];
      for (let i = 0; i < 22; i++) {
        const p = makeParties(`Crowd${i}`);
        await establish(crowded, p);
        witnesses.push(p.advertiser, p.publisher, p.operator);
      }
      await crowded.log.checkpoint();
      const served = async () => (await send(crowded, { method: 'GET', path: '/v1/log/checkpoint' })).body;
      const crowdedLog = parseVerifierKey(crowded.log.verifierKey)!;
      const opened = openCheckpoint(await served(), crowdedLog);
      if (!opened.ok) throw new Error(opened.reason);
      const { size } = opened.checkpoint;
      const lineOf = (k: PartyKeys) => cosignatureLine(opened.note.text, witnessName(k.identity.id), k.signingSecret, 1_800_000_000);
      const postTo = (k: PartyKeys) =>
        send(crowded, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: lineOf(k) }, as: k });
      for (const k of witnesses.slice(0, 64)) expect((await postTo(k)).statusCode).toBe(201);
      expectProblem(await postTo(witnesses[64] ?? parties.advertiser), 409, 'conflict');
      // A witness already counted still gets its idempotent answer.
      expect((await postTo(witnesses[0] ?? parties.advertiser)).json()).toMatchObject({ added: false });
      const note = await served();
      const parsed = parseNote(note);
      if ('error' in parsed) throw new Error(parsed.error);
      expect(parsed.signatures.length).toBe(65);
      expect(openCheckpoint(note, crowdedLog).ok).toBe(true);
    } finally {
      await crowded.close();
    }
  });
});
