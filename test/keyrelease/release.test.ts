import { randomBytes, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import {
  createSimAttester,
  evidenceBinding,
  simPlatformAttester,
  type Attester,
  type SimAttester,
  type SimCa,
} from '../../src/attestation/index.js';
import { createClient, httpWorkerPort, proposeCollaboration, registerDataKey, signCollaboration, type MalusClient } from '../../src/client/index.js';
import { fromBase64Url, fromHex, generateEncryptionKeyPair, hpkeOpen, toBase64, toBase64Url, toHex } from '../../src/crypto/index.js';
import { createWorkerIdentity, readSimCa, registerWorker, registrationSubject, type WorkerIdentity } from '../../src/engine/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { RELEASE_INFO, releaseAad, sha256Ref } from '../../src/keyrelease/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { amendment, inject, makeParties, prepare, uniqueId, type InjectResponse, type Parties, type SendOptions } from '../server/helpers.js';

// The release pipeline (docs/key-release.md) through a real server: a sim worker registered with
// evidence, a job it holds, and a release request built step by step, so that each request breaks
// exactly one of the checks. Requests go through inject(), signed against the server's settable
// clock; the set-up (agreements, the data key) goes through the client SDK over the socket.

const DAY_MS = 86_400_000;
const MEASUREMENT = 'a1'.repeat(48);
const OTHER_MEASUREMENT = 'b2'.repeat(48);
const ZERO_MEASUREMENT = '00'.repeat(48);
const NITRO_VECTOR = new Uint8Array(
  Buffer.from(readFileSync('../shared/vectors/attestation/nitro/nitro_attestation.b64', 'utf8').trim(), 'base64'),
);

/** The server's clock: real time plus an offset the tests move. */
const clock = {
  offsetMs: 0,
  get now(): Date {
    return new Date(Date.now() + this.offsetMs);
  },
};

let dataDir: string;
let server: RunningServer;
let ca: SimCa;
let parties: Parties;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'malus-release-'));
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, now: () => clock.now, simMeasurement: MEASUREMENT });
  ca = readSimCa(join(dataDir, 'sim-ca.json'));
  parties = makeParties('Release ');
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function clientOf(keys: PartyKeys): MalusClient {
  return createClient({ server: server.url, keys });
}

function send(options: SendOptions): Promise<InjectResponse> {
  return inject(server, prepare({ clock }, options));
}

// --- collaborations --------------------------------------------------------------------------

interface Collaboration {
  readonly id: string;
  readonly agreement: Agreement;
  readonly hash: string;
  readonly dataset: string;
  readonly dek: Uint8Array;
}

function signatureOf(agreement: Agreement, party: PartyKeys) {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, clock.now);
}

/** Proposes and signs an agreement to active, then the publisher registers a data key for its table. */
async function establish(options: { measurements?: string[]; validFrom?: Date } = {}): Promise<Collaboration> {
  const id = uniqueId('release');
  const agreement = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: options.validFrom ?? new Date(clock.now.getTime() - 60_000), measurements: options.measurements ?? [server.simMeasurement] },
  );
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: signatureOf(agreement, parties.advertiser) });
  const view = await signCollaboration(clientOf(parties.publisher), id, signatureOf(agreement, parties.publisher));
  expect(view.state).toBe('active');
  const dataset = `${id}-impressions`;
  const dek = new Uint8Array(randomBytes(32));
  const registered = await registerDataKey(clientOf(parties.publisher), { agreement, dataset, table: 'impressions', dataKey: dek });
  expect(registered.created).toBe(true);
  return { id, agreement, hash: agreementHash(agreement), dataset, dek };
}

// --- workers and jobs ------------------------------------------------------------------------

interface Worker {
  readonly identity: WorkerIdentity;
  readonly sim: SimAttester;
  readonly attester: Attester;
}

/** A sim enclave under the server's development CA, registered with evidence for `measurement`. */
async function newWorker(measurement = server.simMeasurement): Promise<Worker> {
  const identity = createWorkerIdentity();
  const sim = await createSimAttester(ca, clock.now);
  const attester = simPlatformAttester(sim, fromHex(measurement) ?? new Uint8Array());
  await registerWorker({ identity, attester, port: httpWorkerPort(createClient({ server: server.url, keys: identity.keys })), now: () => clock.now });
  return { identity, sim, attester };
}

/** The job each worker holds: a worker asking again while it holds one is given that one again. */
const held = new Map<Worker, string>();

/** Queues a key-check job as the advertiser and has `worker` claim it (ending the one it held first). */
async function runningJob(collaboration: Collaboration, worker: Worker): Promise<string> {
  const previous = held.get(worker);
  if (previous !== undefined) {
    await send({ method: 'POST', path: `/v1/workers/me/jobs/${previous}/finish`, json: { error: 'invalid-input: the test is done with it' }, as: worker.identity.keys });
    held.delete(worker);
  }
  const submitted = await send({
    method: 'POST',
    path: `/v1/collaborations/${collaboration.id}/jobs`,
    json: { kind: 'key-check', datasets: [collaboration.dataset] },
    as: parties.advertiser,
  });
  expect(submitted.statusCode, submitted.body).toBe(201);
  const jobId = (submitted.json() as { id: string }).id;
  const claimed = await send({ method: 'POST', path: '/v1/workers/me/claim', as: worker.identity.keys });
  expect(claimed.statusCode, claimed.body).toBe(200);
  expect((claimed.json() as { job: { id: string } | null }).job?.id).toBe(jobId);
  held.set(worker, jobId);
  return jobId;
}

async function challengeFor(worker: Worker): Promise<string> {
  const response = await send({ method: 'POST', path: '/v1/kms/challenges', as: worker.identity.keys });
  expect(response.statusCode, response.body).toBe(201);
  return (response.json() as { challenge: string }).challenge;
}

// --- release requests ------------------------------------------------------------------------

interface Presentation {
  /** The challenge bound and presented; a fresh one by default. */
  readonly challenge?: string;
  /** The agreement hash bound into the evidence; the collaboration's by default. */
  readonly boundAgreement?: string;
  /** The key bound into the evidence; the worker's encryption key by default. */
  readonly boundKey?: Uint8Array;
  /** The key presented in the body; the worker's encryption key by default. */
  readonly presentedKey?: Uint8Array;
  readonly attester?: Attester;
  readonly evidenceAt?: Date;
  /** Replaces the evidence made from the binding. */
  readonly evidence?: (binding: Uint8Array, made: Uint8Array) => Uint8Array;
  readonly platform?: string;
}

interface Sent {
  readonly response: InjectResponse;
  readonly evidence: Uint8Array;
  readonly challenge: string;
}

async function requestRelease(worker: Worker, collaborationId: string, jobId: string, hash: string, p: Presentation = {}): Promise<Sent> {
  const challenge = p.challenge ?? (await challengeFor(worker));
  const ownKey = worker.identity.encryption.publicKey;
  const binding = evidenceBinding({
    enclavePublicKey: p.boundKey ?? ownKey,
    challenge: fromBase64Url(challenge) ?? new Uint8Array(),
    agreementHash: p.boundAgreement ?? hash,
  });
  const made = (await (p.attester ?? worker.attester).attest({ binding, publicKey: ownKey, now: p.evidenceAt ?? clock.now })).evidence;
  const evidence = p.evidence?.(binding, made) ?? made;
  const response = await send({
    method: 'POST',
    path: `/v1/kms/collaborations/${collaborationId}/releases`,
    json: {
      job: jobId,
      challenge,
      platform: p.platform ?? 'sim',
      evidence: toBase64Url(evidence),
      certificates: [],
      encryptionKey: toBase64Url(p.presentedKey ?? ownKey),
    },
    as: worker.identity.keys,
  });
  return { response, evidence, challenge };
}

interface LoggedEvent {
  readonly type: string;
  readonly job?: string | null;
  readonly agreement?: string | null;
  readonly evidence?: string | null;
  readonly reasons?: string[];
  readonly datasets?: string[];
  readonly enclave?: { platform: string; measurement: string; evidence: string; encryptionKey: string };
}

async function eventsOf(collaborationId: string): Promise<LoggedEvent[]> {
  const entries = await server.store.log.entriesOf([collaborationId]);
  return entries.map((e) => JSON.parse(new TextDecoder().decode(e.data)) as LoggedEvent);
}

/** Every encoding of the key a careless response or entry could carry. */
function keyEncodings(dek: Uint8Array): string[] {
  return [toBase64Url(dek), toBase64(dek), toHex(dek)];
}

/**
 * A 403 key-release-denied whose reasons are exactly `codes`, naming neither the dataset nor the
 * key, and a key.denied entry with those codes as the newest entry of the collaboration.
 */
async function expectDenied(sent: Sent, collaboration: Collaboration, codes: string[], expected: { job: string | null; agreement: string | null }) {
  const { response } = sent;
  expect(response.statusCode, response.body).toBe(403);
  const body = response.json() as { code: string; reasons?: { code: string }[] };
  expect(body.code).toBe('key-release-denied');
  expect(body.reasons?.map((r) => r.code)).toEqual(codes);
  expect(response.body).not.toContain(collaboration.dataset);
  for (const encoding of keyEncodings(collaboration.dek)) expect(response.body).not.toContain(encoding);

  const events = await eventsOf(collaboration.id);
  const last = events.at(-1);
  expect(last).toMatchObject({ type: 'key.denied', reasons: codes, job: expected.job, agreement: expected.agreement, evidence: sha256Ref(sent.evidence) });
  const text = JSON.stringify(last);
  expect(text).not.toContain(collaboration.dataset);
  for (const encoding of keyEncodings(collaboration.dek)) expect(text).not.toContain(encoding);
}

/** A Nitro-shaped document signed with the sim attester's leaf key, with the PCRs given. */
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
function signedSimDocument(sim: SimAttester, input: { pcrs: Uint8Array[]; userData: Uint8Array; publicKey: Uint8Array; now: Date }): Uint8Array {
  const payload = new Map<string, unknown>([
    ['module_id', sim.moduleId],
    ['digest', 'SHA384'],
    ['timestamp', input.now.getTime()],
    ['pcrs', new Map(input.pcrs.map((value, index) => [index, value]))],
    ['certificate', sim.leafCertificate],
    ['cabundle', [sim.caCertificate]],
    ['public_key', input.publicKey],
    ['user_data', input.userData],
    ['nonce', null],
  ]);
  const protectedBytes = cbor.encode(new Map([[1, -35]]));
  const payloadBytes = cbor.encode(payload);
  const toBeSigned = cbor.encode(['Signature1', protectedBytes, new Uint8Array(0), payloadBytes]);
  const signature = nodeSign('sha384', toBeSigned, { key: sim.leafKey, dsaEncoding: 'ieee-p1363' });
  return new Uint8Array(cbor.encode([protectedBytes, new Map(), payloadBytes, new Uint8Array(signature)]));
}

// --- the tests -------------------------------------------------------------------------------

describe('key release through the server', () => {
  let main: Collaboration;
  let worker: Worker;

  beforeAll(async () => {
    main = await establish();
    worker = await newWorker();
  });

  it('grants a fresh, bound, pinned enclave the registered key, sealed to it, and logs the measurement', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash);
    expect(sent.response.statusCode, sent.response.body).toBe(200);
    const body = sent.response.json() as { agreement: string; keys: { dataset: string; sealedKey: { enc: string; ciphertext: string } }[] };
    expect(body.agreement).toBe(main.hash);
    expect(body.keys.map((k) => k.dataset)).toEqual([main.dataset]);
    for (const encoding of keyEncodings(main.dek)) expect(sent.response.body).not.toContain(encoding);
    const [released] = body.keys;
    const opened = await hpkeOpen(
      worker.identity.encryption.secretKey,
      { enc: fromBase64Url(released?.sealedKey.enc ?? '') ?? new Uint8Array(), ciphertext: fromBase64Url(released?.sealedKey.ciphertext ?? '') ?? new Uint8Array() },
      RELEASE_INFO,
      releaseAad({ jobId, datasetId: main.dataset, agreementHash: main.hash }),
    );
    expect(opened).toEqual(main.dek);

    const granted = (await eventsOf(main.id)).at(-1);
    expect(granted).toMatchObject({
      type: 'key.granted',
      job: jobId,
      agreement: main.hash,
      datasets: [main.dataset],
      enclave: {
        platform: 'sim',
        measurement: server.simMeasurement,
        evidence: sha256Ref(sent.evidence),
        encryptionKey: sha256Ref(worker.identity.encryption.publicKey),
      },
    });
    for (const encoding of keyEncodings(main.dek)) expect(JSON.stringify(granted)).not.toContain(encoding);
  });

  it('refuses a challenge presented a second time (challenge-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const first = await requestRelease(worker, main.id, jobId, main.hash);
    expect(first.response.statusCode, first.response.body).toBe(200);
    const second = await requestRelease(worker, main.id, jobId, main.hash, { challenge: first.challenge });
    await expectDenied(second, main, ['challenge-invalid'], { job: jobId, agreement: null });
  });

  it('refuses a challenge it never issued (challenge-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { challenge: toBase64Url(randomBytes(32)) });
    await expectDenied(sent, main, ['challenge-invalid'], { job: jobId, agreement: null });
  });

  it('refuses evidence of a measurement the agreement does not pin (measurement-not-pinned)', async () => {
    const jobId = await runningJob(main, worker);
    const attester = simPlatformAttester(worker.sim, fromHex(OTHER_MEASUREMENT) ?? new Uint8Array());
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { attester });
    await expectDenied(sent, main, ['measurement-not-pinned'], { job: jobId, agreement: main.hash });
  });

  it('refuses a debug enclave, PCR0, PCR1 and PCR2 all zero, even with its measurement pinned (debug-enclave)', async () => {
    const collaboration = await establish({ measurements: [server.simMeasurement, ZERO_MEASUREMENT] });
    const jobId = await runningJob(collaboration, worker);
    const zero = new Uint8Array(48);
    const sent = await requestRelease(worker, collaboration.id, jobId, collaboration.hash, {
      evidence: (binding) =>
        signedSimDocument(worker.sim, { pcrs: [zero, zero, zero], userData: binding, publicKey: worker.identity.encryption.publicKey, now: clock.now }),
    });
    await expectDenied(sent, collaboration, ['debug-enclave'], { job: jobId, agreement: collaboration.hash });
  });

  it('accepts the hand-signed document when its PCRs are not all zero (the debug test above tests only debug)', async () => {
    const collaboration = await establish({ measurements: [server.simMeasurement, ZERO_MEASUREMENT] });
    const jobId = await runningJob(collaboration, worker);
    const zero = new Uint8Array(48);
    const sent = await requestRelease(worker, collaboration.id, jobId, collaboration.hash, {
      evidence: (binding) =>
        signedSimDocument(worker.sim, {
          pcrs: [zero, new Uint8Array(48).fill(1), zero],
          userData: binding,
          publicKey: worker.identity.encryption.publicKey,
          now: clock.now,
        }),
    });
    expect(sent.response.statusCode, sent.response.body).toBe(200);
  });

  it('refuses evidence older than the agreement allows (evidence-stale)', async () => {
    const jobId = await runningJob(main, worker);
    const maxAge = main.agreement.enclave.maxEvidenceAgeSeconds;
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { evidenceAt: new Date(clock.now.getTime() - (maxAge + 100) * 1000) });
    await expectDenied(sent, main, ['evidence-stale'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence dated more than a minute ahead of the service (evidence-stale)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { evidenceAt: new Date(clock.now.getTime() + 120_000) });
    await expectDenied(sent, main, ['evidence-stale'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence that binds one key while the request presents another (binding-mismatch)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { presentedKey: generateEncryptionKeyPair().publicKey });
    await expectDenied(sent, main, ['binding-mismatch'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence that binds another key than the one presented, the other way round (binding-mismatch)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { boundKey: generateEncryptionKeyPair().publicKey });
    await expectDenied(sent, main, ['binding-mismatch'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence bound to another agreement (binding-mismatch)', async () => {
    const other = await establish();
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { boundAgreement: other.hash });
    await expectDenied(sent, main, ['binding-mismatch'], { job: jobId, agreement: main.hash });
  });

  it('refuses a job of another collaboration presented under this one (job-mismatch)', async () => {
    const other = await establish();
    const otherJob = await runningJob(other, worker);
    const sent = await requestRelease(worker, main.id, otherJob, main.hash);
    await expectDenied(sent, main, ['job-mismatch'], { job: otherJob, agreement: null });
    // And nothing was said under the other collaboration.
    expect((await eventsOf(other.id)).map((e) => e.type)).not.toContain('key.denied');
  });

  it('refuses a job another worker holds (job-mismatch)', async () => {
    const holder = await newWorker();
    const jobId = await runningJob(main, holder);
    const sent = await requestRelease(worker, main.id, jobId, main.hash);
    await expectDenied(sent, main, ['job-mismatch'], { job: jobId, agreement: null });
  });

  it('refuses truncated evidence (evidence-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { evidence: (_b, made) => made.subarray(0, Math.floor(made.length / 2)) });
    await expectDenied(sent, main, ['evidence-invalid'], { job: jobId, agreement: main.hash });
  });

  it('refuses bytes that are not CBOR of a COSE_Sign1 (evidence-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { evidence: () => Uint8Array.from([0x84, 0x5f, 0xff, 0x00, 0x1c, 0x99, 0xfe]) });
    await expectDenied(sent, main, ['evidence-invalid'], { job: jobId, agreement: main.hash });
  });

  it('refuses a signed document with one byte flipped (evidence-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, {
      evidence: (_b, made) => {
        const copy = Uint8Array.from(made);
        copy[copy.length - 10] = (copy[copy.length - 10] ?? 0) ^ 0x01;
        return copy;
      },
    });
    await expectDenied(sent, main, ['evidence-invalid'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence over 64 KiB that the body schema still admits (evidence-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, {
      evidence: (_b, made) => {
        const padded = new Uint8Array(64 * 1024 + 1);
        padded.set(made);
        return padded;
      },
    });
    await expectDenied(sent, main, ['evidence-invalid'], { job: jobId, agreement: main.hash });
  });

  it('refuses evidence beyond the body schema with 400 invalid-input, logging nothing', async () => {
    const jobId = await runningJob(main, worker);
    const before = await server.store.log.size();
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { evidence: () => new Uint8Array(70_000).fill(7) });
    expect(sent.response.statusCode, sent.response.body).toBe(400);
    expect((sent.response.json() as { code: string }).code).toBe('invalid-input');
    expect(await server.store.log.size()).toBe(before);
  });

  it('refuses a platform the agreement does not list, before verifying anything (platform-not-allowed)', async () => {
    const jobId = await runningJob(main, worker);
    const sent = await requestRelease(worker, main.id, jobId, main.hash, { platform: 'nitro', evidence: () => NITRO_VECTOR });
    await expectDenied(sent, main, ['platform-not-allowed'], { job: jobId, agreement: main.hash });
  });

  it('refuses an amended agreement: the job was queued under the version now superseded (agreement-superseded)', async () => {
    const collaboration = await establish();
    const jobId = await runningJob(collaboration, worker);
    const v2 = amendment(collaboration.agreement);
    await proposeCollaboration(clientOf(parties.advertiser), { agreement: v2, signature: signatureOf(v2, parties.advertiser) });
    expect((await signCollaboration(clientOf(parties.publisher), v2.id, signatureOf(v2, parties.publisher))).state).toBe('active');
    const v2Hash = agreementHash(v2);
    // Evidence bound to either version is refused: the job names v1.
    for (const bound of [collaboration.hash, v2Hash]) {
      const sent = await requestRelease(worker, collaboration.id, jobId, bound);
      await expectDenied(sent, collaboration, ['agreement-superseded'], { job: jobId, agreement: v2Hash });
    }
  });

  it('releases a key registered under v1 to a job under v2 that every signer of v1 signed (the lineage holds)', async () => {
    const collaboration = await establish();
    const v2 = amendment(collaboration.agreement);
    await proposeCollaboration(clientOf(parties.advertiser), { agreement: v2, signature: signatureOf(v2, parties.advertiser) });
    expect((await signCollaboration(clientOf(parties.publisher), v2.id, signatureOf(v2, parties.publisher))).state).toBe('active');
    const jobId = await runningJob(collaboration, worker);
    const sent = await requestRelease(worker, collaboration.id, jobId, agreementHash(v2));
    expect(sent.response.statusCode, sent.response.body).toBe(200);
  });

  it('ignores an amendment the operator writes into its store with signers of its own: v1 stays in force', async () => {
    const collaboration = await establish();
    // The operator makes itself the only signer of a v2 that pins its own measurement, and signs it.
    const hijack = amendment(collaboration.agreement, {
      parties: [
        ...collaboration.agreement.parties.map((p) => ({ ...p, roles: p.roles.filter((r) => r !== 'signer') })).filter((p) => p.id !== parties.operator.identity.id),
        { ...collaboration.agreement.parties.find((p) => p.id === parties.operator.identity.id)!, roles: ['signer', 'auditor'] as const },
      ],
      enclave: { ...collaboration.agreement.enclave, measurements: [OTHER_MEASUREMENT] },
    });
    const hash = agreementHash(hijack);
    const at = clock.now.toISOString();
    const signature = signatureOf(hijack, parties.operator);
    await server.store.collaborations.insertAgreement({
      agreement: { hash, collaborationId: hijack.id, version: 2, previous: collaboration.hash, document: hijack, proposedBy: parties.operator.identity.id, createdAt: at },
      members: hijack.parties.map((p) => p.id),
      signature: { agreementHash: hash, partyId: parties.operator.identity.id, signature: signature.signature, signedAt: at },
    });
    // A worker with the operator's measurement gets nothing: the hijack is not active, v1 is.
    const rogue = await newWorker(OTHER_MEASUREMENT);
    const claimed = await send({ method: 'POST', path: '/v1/workers/me/claim', as: rogue.identity.keys });
    expect((claimed.json() as { job: unknown }).job).toBeNull();
    const jobId = await runningJob(collaboration, worker);
    const granted = await requestRelease(worker, collaboration.id, jobId, collaboration.hash);
    expect(granted.response.statusCode, granted.response.body).toBe(200);
  });

  it("refuses to register an enclave's evidence under a host's own signing key (binding-mismatch)", async () => {
    const enclave = createWorkerIdentity();
    const host = createWorkerIdentity();
    const port = httpWorkerPort(createClient({ server: server.url, keys: host.keys }));
    const challenge = await port.registrationChallenge();
    // The enclave binds its own signing key; the host posts that evidence signed with another.
    const binding = evidenceBinding({
      enclavePublicKey: enclave.encryption.publicKey,
      challenge: fromBase64Url(challenge) ?? new Uint8Array(),
      agreementHash: registrationSubject(enclave.id),
    });
    const { evidence } = await worker.attester.attest({ binding, publicKey: enclave.encryption.publicKey, now: clock.now });
    const refused = await port
      .register({ platform: 'sim', evidence, certificates: [], encryptionKey: enclave.encryption.publicKey, challenge })
      .then(() => undefined, (error: unknown) => error);
    expect(refused).toMatchObject({ code: 'attestation-refused', reasons: [expect.objectContaining({ code: 'binding-mismatch' })] });
    expect(await server.store.workers.get(host.id)).toBeUndefined();
  });

  it('refuses a worker that is not registered, with 403 forbidden, and logs nothing', async () => {
    const jobId = await runningJob(main, worker);
    const stranger: Worker = { ...worker, identity: createWorkerIdentity() };
    const before = await server.store.log.size();
    const asked = await send({ method: 'POST', path: '/v1/kms/challenges', as: stranger.identity.keys });
    expect(asked.statusCode, asked.body).toBe(403);
    expect((asked.json() as { code: string }).code).toBe('forbidden');
    // A valid challenge (the registered worker's) does not help either.
    const sent = await requestRelease(stranger, main.id, jobId, main.hash, { challenge: await challengeFor(worker) });
    expect(sent.response.statusCode, sent.response.body).toBe(403);
    expect((sent.response.json() as { code: string }).code).toBe('forbidden');
    expect(sent.response.body).not.toContain(main.dataset);
    expect(await server.store.log.size()).toBe(before);
  });

  // These move the server's clock; they come last and put it back.
  it('refuses a challenge older than 60 s (challenge-invalid)', async () => {
    const jobId = await runningJob(main, worker);
    const challenge = await challengeFor(worker);
    clock.offsetMs += 61_000;
    try {
      const sent = await requestRelease(worker, main.id, jobId, main.hash, { challenge });
      await expectDenied(sent, main, ['challenge-invalid'], { job: jobId, agreement: null });
    } finally {
      clock.offsetMs -= 61_000;
    }
  });

  it('refuses once the agreement has expired (agreement-not-active)', async () => {
    // The example's window is 90 days: start it so that it ends ten minutes from now.
    const collaboration = await establish({ validFrom: new Date(clock.now.getTime() - 90 * DAY_MS + 10 * 60_000) });
    const jobId = await runningJob(collaboration, worker);
    clock.offsetMs += 20 * 60_000;
    try {
      const sent = await requestRelease(worker, collaboration.id, jobId, collaboration.hash);
      await expectDenied(sent, collaboration, ['agreement-not-active'], { job: jobId, agreement: null });
    } finally {
      clock.offsetMs -= 20 * 60_000;
    }
  });
});
