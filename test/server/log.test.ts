import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64, generateSigningKeyPair } from '../../src/crypto/index.js';
import {
  cosignatureLine,
  decodeEntryBundle,
  ed25519NoteSigner,
  leafHash,
  openCheckpoint,
  parseVerifierKey,
  signCheckpoint,
  verifyConsistency,
  verifyInclusion,
  verifyReceipt,
  witnessName,
  type NoteVerifier,
  type Receipt,
} from '../../src/ledger/index.js';
import { buildApp } from '../../src/server/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import { establish, expectProblem, makeParties, send, startTestServer, type Parties, type TestServer } from './helpers.js';

let server: TestServer;
let parties: Parties;
let id: string;
let verifier: NoteVerifier;

const b64 = (text: string): Uint8Array => fromBase64(text) ?? new Uint8Array();

beforeAll(async () => {
  server = await startTestServer();
  parties = makeParties();
  ({ id } = await establish(server, parties, { signed: true }));
  await server.log.checkpoint();
  const key = (await send(server, { method: 'GET', path: '/v1/log/key' })).json() as { verifierKey: string };
  verifier = parseVerifierKey(key.verifierKey)!;
});

afterAll(async () => {
  await server.close();
});

async function checkpointNote(): Promise<string> {
  const response = await send(server, { method: 'GET', path: '/v1/log/checkpoint' });
  expect(response.headers['content-type']).toMatch(/^text\/plain/);
  return response.body;
}

describe('log entries', () => {
  it('records proposed, signed, signed, activated, each entry hashing to its leaf', async () => {
    const response = await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${id}`, as: parties.publisher });
    expect(response.statusCode).toBe(200);
    const entries = (response.json() as { entries: { index: number; leafHash: string; entry: string }[] }).entries;
    expect(entries.map((e) => (JSON.parse(e.entry) as { type: string }).type)).toEqual([
      'agreement.proposed',
      'agreement.signed',
      'agreement.signed',
      'agreement.activated',
    ]);
    for (const e of entries) expect(e.leafHash).toBe(Buffer.from(leafHash(new TextEncoder().encode(e.entry))).toString('base64'));
  });

  it('answers a stranger exactly as for a collaboration that does not exist', async () => {
    const stranger = generatePartyKeys('Stranger');
    const hidden = await send(server, { method: 'GET', path: `/v1/log/entries?collaboration=${id}`, as: stranger });
    const missing = await send(server, { method: 'GET', path: '/v1/log/entries?collaboration=no-such-thing', as: stranger });
    expectProblem(hidden, 404, 'not-found');
    expectProblem(missing, 404, 'not-found');
    expect(hidden.body.replace(id, 'X')).toBe(missing.body.replace('no-such-thing', 'X'));
  });
});

describe('checkpoints, proofs and tiles', () => {
  it('serves a checkpoint signed by the announced key', async () => {
    const opened = openCheckpoint(await checkpointNote(), verifier, verifier.name);
    expect(opened.ok && opened.checkpoint.size).toBe(4);
  });

  it('serves inclusion and consistency proofs that verify against checkpoint roots', async () => {
    const opened = openCheckpoint(await checkpointNote(), verifier);
    if (!opened.ok) throw new Error(opened.reason);
    const { root, size } = opened.checkpoint;
    for (let index = 0; index < size; index++) {
      const proof = (await send(server, { method: 'GET', path: `/v1/log/proof/inclusion?index=${index}&size=${size}` })).json() as {
        leafHash: string;
        proof: string[];
      };
      expect(verifyInclusion({ index, size, leafHash: b64(proof.leafHash), proof: proof.proof.map(b64), root }).ok).toBe(true);
    }
    const root2 = server.log.tree.root(2);
    const consistency = (await send(server, { method: 'GET', path: `/v1/log/proof/consistency?from=2&to=${size}` })).json() as { proof: string[] };
    expect(verifyConsistency({ size1: 2, size2: size, root1: root2, root2: root, proof: consistency.proof.map(b64) }).ok).toBe(true);
  });

  it('refuses bad proof requests', async () => {
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/proof/inclusion?index=4&size=4' }), 400, 'invalid-input');
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/proof/inclusion?index=0&size=99' }), 404, 'not-found');
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/proof/inclusion?index=x&size=4' }), 400, 'invalid-input');
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/proof/consistency?from=0&to=4' }), 400, 'invalid-input');
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/proof/consistency?from=4&to=2' }), 400, 'invalid-input');
  });

  it('serves level-0 hash tiles equal to the leaf hashes, only inside the checkpoint', async () => {
    const tile = await send(server, { method: 'GET', path: '/v1/log/tile/0/000.p/4' });
    expect(tile.statusCode).toBe(200);
    const bytes = (await server.app.inject({ method: 'GET', url: '/v1/log/tile/0/000.p/4' })).rawPayload;
    expect(bytes.length).toBe(4 * 32);
    for (let i = 0; i < 4; i++) expect(bytes.subarray(i * 32, i * 32 + 32).equals(Buffer.from(server.log.tree.leafHash(i)))).toBe(true);
    for (const path of ['tile/0/000', 'tile/0/000.p/5', 'tile/0/x000/000.p/4', 'tile/0/000.p/256', 'tile/0/000.p/0', 'tile/abc/000']) {
      expectProblem(await send(server, { method: 'GET', path: `/v1/log/${path}` }), 404, 'not-found');
    }
  });

  it('keeps entry bundles private unless the server publishes them', async () => {
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/tile/entries/000.p/4' }), 404, 'not-found');
    const open = await buildApp({ context: { store: server.store, log: server.log, now: () => server.clock.now }, publicEntries: true });
    const response = await open.inject({ method: 'GET', url: '/v1/log/tile/entries/000.p/4' });
    expect(response.statusCode).toBe(200);
    const entries = decodeEntryBundle(response.rawPayload);
    expect(entries.map((e, i) => Buffer.from(leafHash(e)).equals(Buffer.from(server.log.tree.leafHash(i))))).toEqual([true, true, true, true]);
    await open.close();
  });
});

describe('receipts', () => {
  let receipt: Receipt;

  beforeAll(async () => {
    const response = await send(server, { method: 'GET', path: '/v1/log/receipt?index=3', as: parties.advertiser });
    expect(response.statusCode, response.body).toBe(200);
    receipt = response.json() as Receipt;
  });

  it('gives a member a receipt that verifies offline', () => {
    expect(verifyReceipt(receipt, { log: verifier })).toMatchObject({ ok: true, index: 3, event: { type: 'agreement.activated' } });
  });

  it('gives a stranger 404', async () => {
    expectProblem(await send(server, { method: 'GET', path: '/v1/log/receipt?index=3', as: generatePartyKeys('S') }), 404, 'not-found');
  });

  it('fails at the right step for each kind of tampering', () => {
    const flipped = receipt.entry.replace('"version":1', '"version":3');
    expect(verifyReceipt({ ...receipt, entry: flipped }, { log: verifier })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(verifyReceipt({ ...receipt, index: 2 }, { log: verifier })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(verifyReceipt({ ...receipt, inclusionProof: receipt.inclusionProof.slice(1) }, { log: verifier })).toMatchObject({ ok: false, step: 'inclusion' });
    const forged = signCheckpoint(
      { origin: verifier.name, size: 4, root: server.log.tree.root(4), extensions: [] },
      ed25519NoteSigner(verifier.name, generateSigningKeyPair().secretKey),
    );
    expect(verifyReceipt({ ...receipt, checkpoint: forged }, { log: verifier })).toMatchObject({ ok: false, step: 'checkpoint' });
    expect(verifyReceipt(receipt, { log: verifier, witnesses: [], minCosignatures: 1 })).toMatchObject({ ok: false, step: 'cosignatures' });
  });
});

describe('witness cosignatures', () => {
  async function body(): Promise<{ size: number; text: string }> {
    const opened = openCheckpoint(await checkpointNote(), verifier);
    if (!opened.ok) throw new Error(opened.reason);
    return { size: opened.checkpoint.size, text: opened.note.text };
  }

  it('accepts a party cosignature once and serves it with the checkpoint', async () => {
    const { size, text } = await body();
    const keys = parties.publisher;
    const line = cosignatureLine(text, witnessName(keys.identity.id), keys.signingSecret, 1_800_000_000);
    const first = await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: line }, as: keys });
    expect(first.statusCode, first.body).toBe(201);
    expect(await checkpointNote()).toContain(line);
    const again = await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: line }, as: keys });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ added: false });
  });

  it('refuses forged, misnamed, foreign and misplaced cosignatures', async () => {
    const { size, text } = await body();
    const me = parties.advertiser;
    const otherKey = parties.operator.signingSecret;
    const forged = cosignatureLine(text, witnessName(me.identity.id), otherKey, 1_800_000_000);
    expectProblem(await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: forged }, as: me }), 422, 'signature-invalid');
    const misnamed = cosignatureLine(text, witnessName(parties.publisher.identity.id), me.signingSecret, 1_800_000_000);
    expectProblem(await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: misnamed }, as: me }), 400, 'invalid-input');
    const otherBody = text.replace(`\n${size}\n`, `\n${size + 1}\n`);
    const wrongCheckpoint = cosignatureLine(otherBody, witnessName(me.identity.id), me.signingSecret, 1_800_000_000);
    expectProblem(
      await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: wrongCheckpoint }, as: me }),
      422,
      'signature-invalid',
    );
    const line = cosignatureLine(text, witnessName(me.identity.id), me.signingSecret, 1_800_000_000);
    expectProblem(await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size: 99, cosignature: line }, as: me }), 404, 'not-found');
    const outsider = generatePartyKeys('Outsider');
    const outsiderLine = cosignatureLine(text, witnessName(outsider.identity.id), outsider.signingSecret, 1_800_000_000);
    expectProblem(
      await send(server, { method: 'POST', path: '/v1/log/cosignatures', json: { size, cosignature: outsiderLine }, as: outsider }),
      403,
      'forbidden',
    );
    expect(await checkpointNote()).not.toContain(forged);
  });
});
