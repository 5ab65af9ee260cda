import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import Database from 'better-sqlite3';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createSimAttester, simPlatformAttester } from '../../src/attestation/index.js';
import {
  abandonUpload,
  createClient,
  fetchJobDataset,
  fetchJobDatasetManifest,
  getDataset,
  httpWorkerPort,
  listDataKeys,
  listDatasets,
  proposeCollaboration,
  signCollaboration,
  uploadDataset,
  type MalusClient,
} from '../../src/client/index.js';
import { fromHex } from '../../src/crypto/index.js';
import { createWorkerIdentity, readSimCa, registerWorker, type WorkerIdentity } from '../../src/engine/index.js';
import { isMalusError } from '../../src/errors/index.js';
import { signRequest } from '../../src/httpsig/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { signManifest, type SignedManifest } from '../../src/ingest/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { writePreparedDataset, type PreparedDataset } from '../ingest/make-dataset.js';
import { expectProblem, inject, makeParties, prepare, removeDir, tempDir, uniqueId, wallClock, type InjectResponse, type Parties, type SendOptions } from './helpers.js';

// Dataset upload (docs/datasets.md) through a real server: the SDK's whole flow over the socket,
// and single requests through inject() to break one rule at a time. Whatever is refused leaves
// nothing behind: no dataset, no pending upload, no file, no log entry.

const MEASUREMENT = 'd4'.repeat(48);
const OTHER_MEASUREMENT = 'e5'.repeat(48);
const UPLOAD_TYPE = 'application/offset+octet-stream';
const clock = wallClock;

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;
let outsider: PartyKeys;

beforeAll(async () => {
  dataDir = tempDir('malus-datasets-');
  work = tempDir('malus-datasets-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: MEASUREMENT });
  parties = makeParties('Datasets ');
  outsider = generatePartyKeys('Outsider');
});

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const send = (options: SendOptions): Promise<InjectResponse> => inject(server, prepare({ clock }, options));

interface Collaboration {
  readonly id: string;
  readonly agreement: Agreement;
}

function signatureOf(agreement: Agreement, party: PartyKeys) {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
}

async function establish(measurements: string[] = [MEASUREMENT]): Promise<Collaboration> {
  const id = uniqueId('datasets');
  const agreement = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - 60_000), measurements },
  );
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: signatureOf(agreement, parties.advertiser) });
  expect((await signCollaboration(clientOf(parties.publisher), id, signatureOf(agreement, parties.publisher))).state).toBe('active');
  return { id, agreement };
}

let folders = 0;
/** A prepared folder of the publisher's impressions table (or as the options say). */
function prepared(collab: Collaboration, options: Partial<Parameters<typeof writePreparedDataset>[1]> = {}): Promise<PreparedDataset> {
  folders += 1;
  return writePreparedDataset(join(work, `folder-${folders}`), { agreement: collab.agreement, table: 'impressions', keys: parties.publisher, ...options });
}

const datasetPath = (collab: Collaboration, dataset: string): string => `/v1/collaborations/${collab.id}/datasets/${dataset}`;

function put(collab: Collaboration, signed: SignedManifest, as: PartyKeys = parties.publisher, dataset = signed.manifest.dataset): Promise<InjectResponse> {
  return send({ method: 'PUT', path: datasetPath(collab, dataset), json: signed, as });
}

function patch(collab: Collaboration, dataset: string, offset: number, bytes: Buffer, as: PartyKeys = parties.publisher): Promise<InjectResponse> {
  return send({ method: 'PATCH', path: `${datasetPath(collab, dataset)}/upload`, raw: bytes, contentType: UPLOAD_TYPE, headers: { 'upload-offset': String(offset) }, as });
}

const partFile = (collab: Collaboration, dataset: string): string => join(dataDir, 'uploads', collab.id, `${dataset}.part`);
const finalFile = (collab: Collaboration, dataset: string): string => join(dataDir, 'datasets', collab.id, `${dataset}.mds`);

async function eventsOf(collab: Collaboration): Promise<Record<string, unknown>[]> {
  return (await server.store.log.entriesOf([collab.id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as Record<string, unknown>);
}

/** Nothing of the dataset is stored: no dataset, no upload, no file, no entry; list and show agree. */
async function expectNothingStored(collab: Collaboration, dataset: string): Promise<void> {
  expect(await server.store.datasets.get(collab.id, dataset)).toBeUndefined();
  expect(await server.store.datasets.getUpload(collab.id, dataset)).toBeUndefined();
  expect(existsSync(partFile(collab, dataset))).toBe(false);
  expect(existsSync(finalFile(collab, dataset))).toBe(false);
  expect((await eventsOf(collab)).filter((e) => e.type === 'dataset.registered')).toEqual([]);
  expect((await listDatasets(clientOf(parties.advertiser), collab.id)).map((d) => d.dataset)).not.toContain(dataset);
}

/** The dataset is not visible, whatever is pending. */
async function expectInvisible(collab: Collaboration, dataset: string): Promise<void> {
  expect((await listDatasets(clientOf(parties.advertiser), collab.id)).map((d) => d.dataset)).not.toContain(dataset);
  expectProblem(await send({ method: 'GET', path: datasetPath(collab, dataset), as: parties.advertiser }), 404, 'not-found');
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; reasons: string[]; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isMalusError(error)) return { code: error.code, reasons: error.reasons.map((r) => r.code), message: error.message };
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('uploading a dataset', () => {
  it('uploads in pieces, then shows the dataset to every member with its hashes, its key and one log entry of hashes only', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const progress: [number, number][] = [];
    const view = await uploadDataset(clientOf(parties.publisher), {
      dir: folder.dir,
      agreement: collab.agreement,
      chunkBytes: 16 * 1024,
      onProgress: (sent, total) => progress.push([sent, total]),
    });
    const { manifest } = folder.manifest;
    const expected = {
      dataset: folder.dataset,
      table: 'impressions',
      owner: parties.publisher.identity.id,
      rows: manifest.rows,
      bytes: folder.ciphertext.length,
      ciphertext: manifest.ciphertext.sha256,
      headerHash: manifest.headerHash,
      schemaHash: manifest.schemaHash,
      agreementHash: agreementHash(collab.agreement),
      keyCommitment: manifest.keyCommitment,
      keyRegistered: true,
    };
    expect(view).toMatchObject(expected);
    expect(progress[0]).toEqual([0, folder.ciphertext.length]);
    expect(progress.at(-1)).toEqual([folder.ciphertext.length, folder.ciphertext.length]);
    expect(progress.length).toBeGreaterThan(4);

    // Visible to every member, the operator included; the file is in place and the part is gone.
    for (const member of [parties.advertiser, parties.publisher, parties.operator]) {
      expect(await listDatasets(clientOf(member), collab.id)).toEqual([view]);
      expect(await getDataset(clientOf(member), collab.id, folder.dataset)).toEqual(view);
    }
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
    expect(existsSync(partFile(collab, folder.dataset))).toBe(false);
    expect(await server.store.datasets.getUpload(collab.id, folder.dataset)).toBeUndefined();
    expect((await listDataKeys(clientOf(parties.advertiser), collab.id)).keys.map((k) => k.keyCommitment)).toEqual([manifest.keyCommitment]);

    const registered = (await eventsOf(collab)).filter((e) => e.type === 'dataset.registered');
    expect(registered).toHaveLength(1);
    const { format, type, collaboration, actor, time, ...fields } = registered[0]!;
    expect({ format, type, collaboration, actor }).toEqual({
      format: 'malus.event/v1',
      type: 'dataset.registered',
      collaboration: collab.id,
      actor: { kind: 'party', id: parties.publisher.identity.id },
    });
    expect(typeof time).toBe('string');
    expect({ ...fields, keyRegistered: true }).toEqual(expected);
  });

  it('is idempotent: the same folder again sends nothing more, and the same manifest is answered complete', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const first = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement });
    const progress: number[] = [];
    const again = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement, onProgress: (sent) => progress.push(sent) });
    expect(again).toEqual(first);
    expect(progress).toEqual([]);
    const response = await put(collab, folder.manifest);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ status: 'complete', ...first });
    expect((await eventsOf(collab)).filter((e) => e.type === 'dataset.registered')).toHaveLength(1);
  });

  it('lets three runs of one upload race: each follows the others on, and all answer the one dataset', async () => {
    const collab = await establish();
    const folder = await prepared(collab, { payload: randomBytes(300_000) });
    const run = () => uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement, chunkBytes: 65_536 });
    const views = await Promise.all([run(), run(), run()]);
    expect(views[1]).toEqual(views[0]);
    expect(views[2]).toEqual(views[0]);
    expect(views[0]).toMatchObject({ dataset: folder.dataset, bytes: folder.ciphertext.length });
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
    expect((await eventsOf(collab)).filter((e) => e.type === 'dataset.registered')).toHaveLength(1);
  });

  it('refuses another ciphertext under a dataset id that is taken (409 naming the dataset)', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement });
    // Same id and key commitment, another file.
    const other = await prepared(collab, { dataset: folder.dataset, manifest: { keyCommitment: folder.manifest.manifest.keyCommitment } });
    expectProblem(await put(collab, other.manifest), 409, 'conflict', `dataset ${folder.dataset} is already uploaded with another ciphertext`);
    // Same id, another key: the SDK is stopped at key registration, the server at the key check.
    const rekeyed = await prepared(collab, { dataset: folder.dataset });
    expectProblem(await put(collab, rekeyed.manifest), 409, 'conflict', `dataset ${folder.dataset}`);
    expect((await rejection(uploadDataset(clientOf(parties.publisher), { dir: rekeyed.dir, agreement: collab.agreement }))).code).toBe('conflict');
    expect((await server.store.datasets.get(collab.id, folder.dataset))?.ciphertextSha256).toBe(folder.manifest.manifest.ciphertext.sha256);
    expect((await eventsOf(collab)).filter((e) => e.type === 'dataset.registered')).toHaveLength(1);
  });

  it('resumes an interrupted upload from the offset the server holds, and checks the hash at the end', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const started = await put(collab, folder.manifest);
    expect(started.statusCode, started.body).toBe(201);
    expect(started.json()).toEqual({ status: 'uploading', offset: 0, bytes: folder.ciphertext.length });
    expect((await patch(collab, folder.dataset, 0, folder.ciphertext.subarray(0, 20_000))).json()).toEqual({
      status: 'uploading',
      offset: 20_000,
      bytes: folder.ciphertext.length,
    });
    await expectInvisible(collab, folder.dataset);
    const shown = await send({ method: 'GET', path: `${datasetPath(collab, folder.dataset)}/upload`, as: parties.publisher });
    expect(shown.json()).toEqual({ offset: 20_000, bytes: folder.ciphertext.length });
    expect(shown.headers['upload-offset']).toBe('20000');

    const progress: number[] = [];
    const view = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement, chunkBytes: 10_000, onProgress: (sent) => progress.push(sent) });
    expect(progress[0]).toBe(20_000);
    expect(view.ciphertext).toBe(folder.manifest.manifest.ciphertext.sha256);
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
  });

  it('keeps nothing of a piece whose connection died mid-body, and resumes after it', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    const piece = folder.ciphertext.subarray(0, 40_000);
    const url = `${server.url}${datasetPath(collab, folder.dataset)}/upload`;
    const headers = signRequest({ method: 'PATCH', url, body: piece, keyId: parties.publisher.identity.signingKey, secretKey: parties.publisher.signingSecret });
    await new Promise<void>((resolvePromise) => {
      const req = httpRequest(url, {
        method: 'PATCH',
        headers: { ...headers, 'content-type': UPLOAD_TYPE, 'content-length': String(piece.length), 'upload-offset': '0' },
      });
      req.on('error', () => {
        resolvePromise();
      });
      req.on('close', () => {
        resolvePromise();
      });
      req.write(piece.subarray(0, 15_000), () => {
        setTimeout(() => req.destroy(), 50);
      });
    });
    await new Promise((r) => setTimeout(r, 100));
    expect((await server.store.datasets.getUpload(collab.id, folder.dataset))?.bytesReceived).toBe(0);
    await expectInvisible(collab, folder.dataset);
    const view = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement });
    expect(view.bytes).toBe(folder.ciphertext.length);
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
  });

  it('replaces a pending upload when its owner sends a newer manifest, and keeps it for the same one', async () => {
    const collab = await establish();
    const first = await prepared(collab);
    expect((await put(collab, first.manifest)).statusCode).toBe(201);
    await patch(collab, first.dataset, 0, first.ciphertext.subarray(0, 1000));
    const same = await put(collab, first.manifest);
    expect(same.statusCode).toBe(200);
    expect(same.json()).toMatchObject({ status: 'uploading', offset: 1000 });
    const newer = await prepared(collab, { dataset: first.dataset });
    const replaced = await put(collab, newer.manifest);
    expect(replaced.statusCode).toBe(201);
    expect(replaced.json()).toEqual({ status: 'uploading', offset: 0, bytes: newer.ciphertext.length });
    expect(existsSync(partFile(collab, first.dataset))).toBe(false);
  });

  it('lets the owner give up a pending upload: its bytes, its claim and its place go; others get 403, and a complete dataset has no upload', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    await patch(collab, folder.dataset, 0, folder.ciphertext.subarray(0, 1000));
    const path = `${datasetPath(collab, folder.dataset)}/upload`;
    expectProblem(await send({ method: 'DELETE', path, as: parties.advertiser }), 403, 'forbidden', 'only the owner');
    expect(existsSync(partFile(collab, folder.dataset))).toBe(true);
    await abandonUpload(clientOf(parties.publisher), collab.id, folder.dataset);
    await expectNothingStored(collab, folder.dataset);
    expect((await server.store.datasets.pendingUploads()).filter((u) => u.collaborationId === collab.id)).toEqual([]);
    expectProblem(await send({ method: 'DELETE', path, as: parties.publisher }), 404, 'not-found', 'no upload of dataset');
    // The same manifest starts from nothing, and a finished dataset is not given up.
    expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    expect((await patch(collab, folder.dataset, 0, folder.ciphertext)).json()).toMatchObject({ status: 'complete' });
    expectProblem(await send({ method: 'DELETE', path, as: parties.publisher }), 404, 'not-found');
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
  });

  it('does not take "complete" for a dataset of another key or owner than its manifest says (the books were altered)', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement });
    const db = new Database(join(dataDir, 'malus.db'));
    try {
      db.prepare('UPDATE datasets SET key_commitment = ? WHERE collaboration_id = ? AND dataset_id = ?').run(`sha256:${'0'.repeat(64)}`, collab.id, folder.dataset);
    } finally {
      db.close();
    }
    const refused = await rejection(uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement }));
    expect(refused).toMatchObject({ code: 'server-error', message: `the server calls dataset ${folder.dataset} complete, but with another keyCommitment than its manifest` });
  });

  it('says how to go on when a dataset prepared again keeps the id of one whose data key is registered', async () => {
    const collab = await establish();
    const first = await prepared(collab);
    await uploadDataset(clientOf(parties.publisher), { dir: first.dir, agreement: collab.agreement });
    const again = await prepared(collab, { dataset: first.dataset });
    const refused = await rejection(uploadDataset(clientOf(parties.publisher), { dir: again.dir, agreement: collab.agreement }));
    expect(refused.code).toBe('conflict');
    expect(refused.message).toContain(`dataset ${first.dataset} already has a different data key: a dataset id keeps the first data key registered for it`);
    expect(refused.message).toContain('dataset prepare --dataset');
  });

  it('removes a file a crash left under the final name of a dataset never recorded when the upload starts again', async () => {
    const collab = await establish();
    const first = await prepared(collab);
    expect((await put(collab, first.manifest)).statusCode).toBe(201);
    // As a crash between completing's rename and its commit leaves it: a whole file, no dataset.
    mkdirSync(dirname(finalFile(collab, first.dataset)), { recursive: true });
    writeFileSync(finalFile(collab, first.dataset), first.ciphertext);
    const newer = await prepared(collab, { dataset: first.dataset });
    expect((await put(collab, newer.manifest)).statusCode).toBe(201);
    expect(existsSync(finalFile(collab, first.dataset))).toBe(false);
    await expectInvisible(collab, first.dataset);
  });
});

describe('refusals leave nothing behind', () => {
  it('refuses a manifest whose signature does not verify (422 signature-invalid)', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const value = folder.manifest.signature.value;
    const flipped = `${value.slice(0, 10)}${value[10] === 'A' ? 'B' : 'A'}${value.slice(11)}`;
    const problem = expectProblem(await put(collab, { ...folder.manifest, signature: { ...folder.manifest.signature, value: flipped } }), 422, 'signature-invalid');
    expect(problem.reasons?.map((r) => r.code)).toEqual(['bad-signature']);
    await expectNothingStored(collab, folder.dataset);
  });

  it("refuses a manifest signed by the other party's key, whoever sends it (403 forbidden)", async () => {
    const collab = await establish();
    // The publisher's table, its manifest signed by the advertiser.
    const folder = await prepared(collab, { signer: parties.advertiser });
    expectProblem(await put(collab, folder.manifest, parties.publisher), 403, 'forbidden', 'only its signer');
    const problem = expectProblem(await put(collab, folder.manifest, parties.advertiser), 403, 'forbidden');
    expect(problem.reasons?.map((r) => r.code)).toContain('not-owner');
    await expectNothingStored(collab, folder.dataset);
  });

  it('refuses an upload for a table the party does not own (403), in the SDK before anything is sent', async () => {
    const collab = await establish();
    // The advertiser prepares "its own" copy of the publisher's table.
    const folder = await prepared(collab, { keys: parties.advertiser });
    const problem = expectProblem(await put(collab, folder.manifest, parties.advertiser), 403, 'forbidden');
    expect(problem.reasons?.map((r) => r.code)).toEqual(['not-owner']);
    const refused = await rejection(uploadDataset(clientOf(parties.advertiser), { dir: folder.dir, agreement: collab.agreement }));
    expect(refused.code).toBe('forbidden');
    await expectNothingStored(collab, folder.dataset);
    expect((await listDataKeys(clientOf(parties.advertiser), collab.id)).keys).toEqual([]);
  });

  it('refuses a manifest that claims more than the server takes: over the size limit (413), more than the disk has free (507)', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const claiming = async (bytes: number) => (await prepared(collab, { manifest: { ciphertext: { sha256: folder.manifest.manifest.ciphertext.sha256, bytes } } })).manifest;
    const huge = await claiming(Number.MAX_SAFE_INTEGER);
    const tooLarge = expectProblem(await put(collab, huge), 413, 'payload-too-large', `this server takes at most ${2 ** 40} per dataset`);
    expect(tooLarge.issues?.[0]?.path).toBe('body.manifest.ciphertext.bytes');
    // Just under the limit, but far more than this machine's disk holds.
    // A 5xx answer carries its title only: members learn nothing of the server's disk.
    expectProblem(await put(collab, await claiming(2 ** 40)), 507, 'insufficient-storage', 'the server has no room for the upload');
    await expectNothingStored(collab, folder.dataset);
  });

  it('refuses a ninth upload in progress of one party in one collaboration (409 naming them), and takes it once one is done', async () => {
    const collab = await establish();
    const folders = await Promise.all(Array.from({ length: 9 }, (_, i) => prepared(collab, { dataset: `pending-${i}` })));
    for (const folder of folders.slice(0, 8)) expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    const ninth = folders[8] as PreparedDataset;
    expectProblem(await put(collab, ninth.manifest), 409, 'conflict', 'already has 8 uploads in progress in collaboration');
    await expectNothingStored(collab, ninth.dataset);
    // The same manifest again, or the owner's newer one for a pending dataset, is not a new upload.
    expect((await put(collab, (folders[0] as PreparedDataset).manifest)).statusCode).toBe(200);
    const first = folders[0] as PreparedDataset;
    expect((await patch(collab, first.dataset, 0, first.ciphertext)).json()).toMatchObject({ status: 'complete', dataset: first.dataset });
    expect((await put(collab, ninth.manifest)).statusCode).toBe(201);
  });

  it('counts uploads started at once against the limit: 30 at the same time leave 8 in progress', async () => {
    const collab = await establish();
    const folders = await Promise.all(Array.from({ length: 30 }, (_, i) => prepared(collab, { dataset: `racing-${i}` })));
    const answers = await Promise.all(folders.map((folder) => put(collab, folder.manifest)));
    expect(answers.filter((a) => a.statusCode === 201)).toHaveLength(8);
    for (const refused of answers.filter((a) => a.statusCode !== 201)) expectProblem(refused, 409, 'conflict', 'already has 8 uploads in progress');
    expect((await server.store.datasets.pendingUploads()).filter((u) => u.collaborationId === collab.id)).toHaveLength(8);
  });

  it('refuses a file whose bytes were flipped at completion, deletes it and starts the upload again at 0', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const bad = Buffer.from(folder.ciphertext);
    bad[bad.length - 40] = (bad[bad.length - 40] ?? 0) ^ 0x01;
    expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    expect((await patch(collab, folder.dataset, 0, bad.subarray(0, 30_000))).statusCode).toBe(200);
    const problem = expectProblem(await patch(collab, folder.dataset, 30_000, bad.subarray(30_000)), 400, 'invalid-input', 'starts again at offset 0');
    expect(problem.reasons?.map((r) => r.code)).toEqual(['ciphertext-mismatch']);
    expect(existsSync(partFile(collab, folder.dataset))).toBe(false);
    expect(existsSync(finalFile(collab, folder.dataset))).toBe(false);
    expect((await server.store.datasets.getUpload(collab.id, folder.dataset))?.bytesReceived).toBe(0);
    await expectInvisible(collab, folder.dataset);
    expect((await eventsOf(collab)).filter((e) => e.type === 'dataset.registered')).toEqual([]);
    // The right bytes complete it.
    const done = await patch(collab, folder.dataset, 0, folder.ciphertext);
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toMatchObject({ status: 'complete', dataset: folder.dataset });
  });

  it('refuses a file whose header says other than its manifest', async () => {
    const collab = await establish();
    const folder = await prepared(collab, { rows: 3, manifest: { rows: 5 } });
    expect((await put(collab, folder.manifest)).statusCode).toBe(201);
    const problem = expectProblem(await patch(collab, folder.dataset, 0, folder.ciphertext), 400, 'invalid-input');
    expect(problem.reasons).toEqual([{ code: 'header-mismatch', message: "the header's rows is 3; the manifest says 5" }]);
    await expectInvisible(collab, folder.dataset);
  });

  it('refuses a piece at the wrong offset (409 with the offset), past the end (400), or of another media type (415)', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await put(collab, folder.manifest);
    await patch(collab, folder.dataset, 0, folder.ciphertext.subarray(0, 100));
    const mismatch = await patch(collab, folder.dataset, 50, folder.ciphertext.subarray(50, 150));
    expect(expectProblem(mismatch, 409, 'conflict', 'the upload is at offset 100, not 50').reasons?.map((r) => r.code)).toEqual(['offset-mismatch']);
    expect(mismatch.headers['upload-offset']).toBe('100');
    const past = expectProblem(await patch(collab, folder.dataset, 100, Buffer.concat([folder.ciphertext.subarray(100), Buffer.alloc(1)])), 400, 'invalid-input', 'past the');
    expect(past.issues).toEqual([{ path: 'body', message: `at most ${folder.ciphertext.length - 100} bytes from offset 100` }]);
    const path = `${datasetPath(collab, folder.dataset)}/upload`;
    for (const contentType of ['application/json', 'text/plain', 'application/octet-stream']) {
      const raw = contentType === 'application/json' ? '{}' : 'abc';
      expectProblem(await send({ method: 'PATCH', path, raw, contentType, headers: { 'upload-offset': '100' }, as: parties.publisher }), 415, 'unsupported-media-type');
    }
    const missing = await send({ method: 'PATCH', path, raw: Buffer.alloc(1), contentType: UPLOAD_TYPE, as: parties.publisher });
    expect(expectProblem(missing, 400, 'invalid-input').issues?.[0]?.path).toBe('headers.upload-offset');
    expect((await server.store.datasets.getUpload(collab.id, folder.dataset))?.bytesReceived).toBe(100);
  });

  it('takes pieces up to 8 MiB and JSON up to 1 MiB', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await put(collab, folder.manifest);
    expectProblem(await patch(collab, folder.dataset, 0, Buffer.alloc(8 * 1024 * 1024 + 1)), 413, 'payload-too-large');
    // 2 MiB is fine as a piece (then refused as past the end), not as JSON.
    expectProblem(await patch(collab, folder.dataset, 0, Buffer.alloc(2 * 1024 * 1024)), 400, 'invalid-input', 'past the');
    const padded = { ...folder.manifest, padding: 'x'.repeat(1024 * 1024) };
    expectProblem(await send({ method: 'PUT', path: datasetPath(collab, folder.dataset), json: padded, as: parties.publisher }), 413, 'payload-too-large');
  });

  it('answers 404 to outsiders everywhere, 403 to a member for an upload it does not own, and 400 for a path that disagrees', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    expectProblem(await put(collab, folder.manifest, parties.publisher, 'other-dataset'), 400, 'invalid-input', 'not other-dataset');
    await put(collab, folder.manifest);
    const path = datasetPath(collab, folder.dataset);
    for (const options of [
      { method: 'GET', path: `/v1/collaborations/${collab.id}/datasets` },
      { method: 'GET', path },
      { method: 'GET', path: `${path}/upload` },
    ] as const) {
      expectProblem(await send({ ...options, as: outsider }), 404, 'not-found');
    }
    expectProblem(await put(collab, folder.manifest, outsider), 404, 'not-found');
    expectProblem(await patch(collab, folder.dataset, 0, folder.ciphertext, outsider), 404, 'not-found');
    expectProblem(await send({ method: 'GET', path: `${path}/upload`, as: parties.advertiser }), 403, 'forbidden');
    expectProblem(await patch(collab, folder.dataset, 0, folder.ciphertext, parties.advertiser), 403, 'forbidden');
    expectProblem(await send({ method: 'GET', path }), 401, 'unauthenticated');
    expect((await server.store.datasets.getUpload(collab.id, folder.dataset))?.bytesReceived).toBe(0);
  });

  it('sends nothing when the attestation is refused: another pinned measurement, or another sim root', async () => {
    const pinned = await establish([OTHER_MEASUREMENT]);
    const folder = await prepared(pinned);
    const refused = await rejection(uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: pinned.agreement }));
    expect(refused).toMatchObject({ code: 'attestation-refused', reasons: ['measurement-not-pinned'] });
    await expectNothingStored(pinned, folder.dataset);
    expect((await listDataKeys(clientOf(parties.publisher), pinned.id)).keys).toEqual([]);

    const collab = await establish();
    const other = await prepared(collab);
    const wrongRoot = await rejection(uploadDataset(clientOf(parties.publisher), { dir: other.dir, agreement: collab.agreement, simRoots: ['00'.repeat(32)] }));
    expect(wrongRoot.code).toBe('attestation-refused');
    expect(wrongRoot.reasons).toContain('evidence-invalid');
    await expectNothingStored(collab, other.dataset);
    expect((await listDataKeys(clientOf(parties.publisher), collab.id)).keys).toEqual([]);
  });

  it('refuses in the SDK a folder whose file is not the one its manifest describes', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const bad = Buffer.from(folder.ciphertext);
    bad[100] = (bad[100] ?? 0) ^ 0x01;
    writeFileSync(folder.paths.ciphertext, bad);
    const refused = await rejection(uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement }));
    expect(refused.code).toBe('invalid-input');
    await expectNothingStored(collab, folder.dataset);
    expect((await listDataKeys(clientOf(parties.publisher), collab.id)).keys).toEqual([]);
  });
});

describe('after a crash', () => {
  it('takes back a file moved into place whose dataset was never recorded, and completes it', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await put(collab, folder.manifest);
    // The state a crash between the move and the commit leaves: every byte received, the file at its
    // final name, no dataset row.
    mkdirSync(join(dataDir, 'datasets', collab.id), { recursive: true });
    writeFileSync(finalFile(collab, folder.dataset), folder.ciphertext);
    expect(await server.store.datasets.advanceUpload(collab.id, folder.dataset, 0, folder.ciphertext.length)).toBe(true);
    await expectInvisible(collab, folder.dataset);
    const progress: number[] = [];
    const view = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement, onProgress: (sent) => progress.push(sent) });
    expect(progress[0]).toBe(folder.ciphertext.length);
    expect(view.ciphertext).toBe(folder.manifest.manifest.ciphertext.sha256);
    expect(existsSync(partFile(collab, folder.dataset))).toBe(false);
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
  });

  it('starts again from what the part file holds, and drops bytes a crash left past the recorded offset', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    await put(collab, folder.manifest);
    await patch(collab, folder.dataset, 0, folder.ciphertext.subarray(0, 5000));
    rmSync(partFile(collab, folder.dataset));
    const lost = await send({ method: 'GET', path: `${datasetPath(collab, folder.dataset)}/upload`, as: parties.publisher });
    expect(lost.json()).toEqual({ offset: 0, bytes: folder.ciphertext.length });

    await patch(collab, folder.dataset, 0, folder.ciphertext.subarray(0, 5000));
    // A write that reached the disk but not the store.
    appendFileSync(partFile(collab, folder.dataset), Buffer.alloc(3000, 0xee));
    const view = await uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement });
    expect(view.bytes).toBe(folder.ciphertext.length);
    expect(readFileSync(finalFile(collab, folder.dataset)).equals(folder.ciphertext)).toBe(true);
  });
});

describe('the enclave worker', () => {
  async function newWorker(): Promise<WorkerIdentity> {
    const identity = createWorkerIdentity();
    const ca = readSimCa(join(dataDir, 'sim-ca.json'));
    const attester = simPlatformAttester(await createSimAttester(ca, new Date()), fromHex(MEASUREMENT) ?? new Uint8Array());
    await registerWorker({ identity, attester, port: httpWorkerPort(createClient({ server: server.url, keys: identity.keys })), now: () => new Date() });
    return identity;
  }

  it('reads the file and the manifest of the datasets its running job names, and nobody else does', async () => {
    const collab = await establish();
    const folder = await prepared(collab);
    const other = await prepared(collab);
    for (const f of [folder, other]) await uploadDataset(clientOf(parties.publisher), { dir: f.dir, agreement: collab.agreement });
    const worker = await newWorker();
    const bystander = await newWorker();
    const submitted = await send({ method: 'POST', path: `/v1/collaborations/${collab.id}/jobs`, json: { kind: 'key-check', datasets: [folder.dataset] }, as: parties.advertiser });
    expect(submitted.statusCode, submitted.body).toBe(201);
    const job = (submitted.json() as { id: string }).id;
    const path = `/v1/workers/me/jobs/${job}/datasets/${folder.dataset}`;
    // Not yet claimed: not its job.
    expectProblem(await send({ method: 'GET', path, as: worker.keys }), 404, 'not-found');
    const claimed = await send({ method: 'POST', path: '/v1/workers/me/claim', as: worker.keys });
    expect((claimed.json() as { job: { id: string } | null }).job?.id).toBe(job);

    const workerClient = createClient({ server: server.url, keys: worker.keys });
    const pieces: Uint8Array[] = [];
    for await (const piece of await fetchJobDataset(workerClient, job, folder.dataset)) pieces.push(piece);
    expect(Buffer.concat(pieces).equals(folder.ciphertext)).toBe(true);
    expect(await fetchJobDatasetManifest(workerClient, job, folder.dataset)).toEqual(folder.manifest);
    const streamed = await send({ method: 'GET', path, as: worker.keys });
    expect(streamed.headers['content-type']).toBe('application/octet-stream');
    expect(Number(streamed.headers['content-length'])).toBe(folder.ciphertext.length);

    // A dataset the job does not name, another worker, a party, an outsider.
    expectProblem(await send({ method: 'GET', path: `/v1/workers/me/jobs/${job}/datasets/${other.dataset}`, as: worker.keys }), 404, 'not-found');
    expect((await rejection(fetchJobDataset(workerClient, job, other.dataset))).code).toBe('not-found');
    for (const suffix of ['', '/manifest']) {
      expectProblem(await send({ method: 'GET', path: `${path}${suffix}`, as: bystander.keys }), 404, 'not-found');
      expectProblem(await send({ method: 'GET', path: `${path}${suffix}`, as: parties.publisher }), 403, 'forbidden');
      expectProblem(await send({ method: 'GET', path: `${path}${suffix}`, as: outsider }), 403, 'forbidden');
    }
    // Once the job has ended, not even its worker.
    const finished = await send({ method: 'POST', path: `/v1/workers/me/jobs/${job}/finish`, json: { error: 'stopped by the test' }, as: worker.keys });
    expect(finished.statusCode, finished.body).toBe(200);
    expectProblem(await send({ method: 'GET', path, as: worker.keys }), 404, 'not-found');
  });
});

describe('the manifest the SDK checks before anything leaves', () => {
  it('must be for this collaboration, and for the caller', async () => {
    const collab = await establish();
    const elsewhere = await establish();
    const folder = await prepared(collab);
    expect((await rejection(uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: elsewhere.agreement }))).message).toContain(
      `prepared for collaboration ${collab.id}`,
    );
    expect((await rejection(uploadDataset(clientOf(parties.advertiser), { dir: folder.dir, agreement: collab.agreement }))).code).toBe('forbidden');
    // A manifest whose signature was made over other fields.
    const forged = signManifest({ ...folder.manifest.manifest, rows: 99 }, { partyId: parties.publisher.identity.id, signingSecret: parties.publisher.signingSecret });
    writeFileSync(folder.paths.manifest, JSON.stringify({ manifest: folder.manifest.manifest, signature: forged.signature }));
    expect((await rejection(uploadDataset(clientOf(parties.publisher), { dir: folder.dir, agreement: collab.agreement }))).code).toBe('invalid-input');
    await expectNothingStored(collab, folder.dataset);
  });
});

describe('the OpenAPI description', () => {
  it('lists the dataset routes, signed, with the upload-offset header of a piece', async () => {
    const response = await server.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const spec = response.json();
    const routes: Record<string, string[]> = {
      '/v1/collaborations/{id}/datasets': ['get'],
      '/v1/collaborations/{id}/datasets/{dataset}': ['get', 'put'],
      '/v1/collaborations/{id}/datasets/{dataset}/upload': ['delete', 'get', 'patch'],
      '/v1/workers/me/jobs/{job}/datasets/{dataset}': ['get'],
      '/v1/workers/me/jobs/{job}/datasets/{dataset}/manifest': ['get'],
    };
    for (const [path, methods] of Object.entries(routes)) {
      expect(Object.keys(spec.paths[path] ?? {}).sort(), path).toEqual(methods);
      for (const method of methods) expect(spec.paths[path][method].security, `${method} ${path}`).toEqual([{ httpMessageSignature: [] }]);
    }
    const patchParameters = spec.paths['/v1/collaborations/{id}/datasets/{dataset}/upload'].patch.parameters as { in: string; name: string; required?: boolean }[];
    expect(patchParameters.find((p) => p.in === 'header' && p.name === 'upload-offset')).toMatchObject({ required: true });
    const putBody = spec.paths['/v1/collaborations/{id}/datasets/{dataset}'].put.requestBody.content['application/json'].schema;
    expect(Object.keys(putBody.properties).sort()).toEqual(['manifest', 'signature']);
  });
});
