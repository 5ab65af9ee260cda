import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createSimAttester, simPlatformAttester } from '../../src/attestation/index.js';
import {
  createClient,
  getJob,
  getJobReceipt,
  httpWorkerPort,
  listJobs,
  proposeCollaboration,
  signCollaboration,
  submitQuery,
  uploadDataset,
  type MalusClient,
} from '../../src/client/index.js';
import { fromHex, toBase64Url } from '../../src/crypto/index.js';
import {
  SIMULATED_NOTICE,
  createWorkerIdentity,
  readSimCa,
  registerWorker,
  signStatement,
  statementHash,
  type ClaimedJob,
  type ResultStatement,
  type WorkerIdentity,
  type WorkerPort,
} from '../../src/engine/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { ed25519NoteVerifier, verifyReceipt } from '../../src/ledger/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { writePreparedDataset } from '../ingest/make-dataset.js';
import { expectProblem, inject, makeParties, prepare, removeDir, tempDir, uniqueId, wallClock, type InjectResponse, type Parties, type SendOptions } from './helpers.js';

// Jobs through a real server (docs/api.md, docs/enclave.md): governed queries checked and bound to
// datasets at submission, the job.started entry of a claim, failure codes and sealed results at the
// finish, and the receipt of a succeeded job. No worker has the measurement of collaboration
// "queued", so its jobs stay queued; collaboration "run" also pins the measurement of the one worker
// here, which claims each job of it the moment it is submitted.

const QUEUED_MEASUREMENT = 'c7'.repeat(48);
const RUN_MEASUREMENT = 'd8'.repeat(48);
const VIEWERS_SQL = 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS viewers FROM impressions GROUP BY campaign_id';
const clock = wallClock;

let dataDir: string;
let work: string;
let server: RunningServer;
let parties: Parties;
let outsider: PartyKeys;
let worker: { identity: WorkerIdentity; port: WorkerPort };

interface Collaboration {
  readonly id: string;
  readonly agreement: Agreement;
  /** Dataset ids uploaded, by table. */
  readonly datasets: Record<string, string[]>;
}
let queued: Collaboration;
let run: Collaboration;

const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server.url, keys });
const send = (options: SendOptions): Promise<InjectResponse> => inject(server, prepare({ clock }, options));
const jobsPath = (c: Collaboration): string => `/v1/collaborations/${c.id}/jobs`;
const submit = (c: Collaboration, json: unknown, as: PartyKeys = parties.advertiser) => send({ method: 'POST', path: jobsPath(c), json, as });
const sha256Ref = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function eventsOf(c: Collaboration): Promise<Record<string, unknown>[]> {
  return (await server.store.log.entriesOf([c.id])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as Record<string, unknown>);
}

/** The agreement pins the measurement given and the key-release service's (which no worker here has). */
async function establish(measurement: string, tables: Record<string, number>): Promise<Collaboration> {
  const id = uniqueId('jobs');
  const agreement = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - 60_000), measurements: [...new Set([measurement, QUEUED_MEASUREMENT])] },
  );
  const signature = (party: PartyKeys) => signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: signature(parties.advertiser) });
  await signCollaboration(clientOf(parties.publisher), id, signature(parties.publisher));
  const datasets: Record<string, string[]> = {};
  for (const [table, count] of Object.entries(tables)) {
    const owner = table === 'impressions' ? parties.publisher : parties.advertiser;
    for (let i = 0; i < count; i += 1) {
      const folder = await writePreparedDataset(`${work}/${id}-${table}-${i}`, { agreement, table, keys: owner, payload: randomBytes(1024) });
      await uploadDataset(clientOf(owner), { dir: folder.dir, agreement });
      (datasets[table] ??= []).push(folder.dataset);
    }
  }
  return { id, agreement, datasets };
}

beforeAll(async () => {
  dataDir = tempDir('malus-jobs-');
  work = tempDir('malus-jobs-work-');
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: QUEUED_MEASUREMENT });
  parties = makeParties('Jobs ');
  outsider = generatePartyKeys('Jobs outsider');
  queued = await establish(QUEUED_MEASUREMENT, { impressions: 2, conversions: 1 });
  run = await establish(RUN_MEASUREMENT, { impressions: 1 });
  const identity = createWorkerIdentity();
  const sim = await createSimAttester(readSimCa(`${dataDir}/sim-ca.json`), new Date());
  const port = httpWorkerPort(createClient({ server: server.url, keys: identity.keys }));
  await registerWorker({ identity, attester: simPlatformAttester(sim, fromHex(RUN_MEASUREMENT) ?? new Uint8Array()), port, now: () => new Date() });
  worker = { identity, port };
}, 60_000);

afterAll(async () => {
  await server.close();
  removeDir(dataDir);
  removeDir(work);
});

/** Submits to "run" and has the worker claim the job. */
async function claimed(json: unknown): Promise<ClaimedJob> {
  const submitted = await submit(run, json);
  expect(submitted.statusCode, submitted.body).toBe(201);
  const job = await worker.port.claim();
  expect(job?.id).toBe((submitted.json() as { id: string }).id);
  return job as ClaimedJob;
}

/** A statement about the job, signed by the worker, with the output given. */
function statementFor(job: ClaimedJob, output: Record<string, unknown>) {
  const statement: ResultStatement = {
    format: 'malus.job-result/v1',
    job: job.id,
    collaboration: job.collaborationId,
    agreement: job.agreementHash,
    kind: job.kind,
    output,
    enclave: { platform: 'sim', measurement: RUN_MEASUREMENT, signingKey: worker.identity.id, evidence: [] },
    notice: SIMULATED_NOTICE,
    time: new Date().toISOString(),
  };
  return signStatement(statement, worker.identity.signing.secretKey);
}

/** A sealed result the server can check but not open (it never can), and the statement's output naming it. */
function sealedResult(receivers: string[], bytes = 64) {
  const ciphertext = randomBytes(bytes);
  const sealed = {
    format: 'malus.sealed-result/v1' as const,
    nonce: toBase64Url(randomBytes(12)),
    ciphertext: toBase64Url(ciphertext),
    recipients: receivers.map((party) => ({ party, enc: toBase64Url(randomBytes(32)), key: toBase64Url(randomBytes(48)) })),
  };
  const result = { sha256: sha256Ref(randomBytes(8)), ciphertext: sha256Ref(ciphertext), rows: 2, columns: ['campaign_id', 'viewers'], receivers };
  return { sealed, result };
}

const finish = (jobId: string, json: unknown) => send({ method: 'POST', path: `/v1/workers/me/jobs/${jobId}/finish`, json, as: worker.identity.keys });

describe('submitting a query', () => {
  it("queues an analyst's allowed SQL over the newest dataset of each table it reads, and logs job.submitted", async () => {
    const before = (await eventsOf(queued)).length;
    const response = await submit(queued, { kind: 'query', sql: VIEWERS_SQL });
    expect(response.statusCode, response.body).toBe(201);
    const job = response.json() as { id: string; kind: string; state: string; datasets: string[] };
    const impressions = (await server.store.datasets.list(queued.id)).filter((d) => d.table === 'impressions');
    const newest = impressions.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).map((d) => d.datasetId).slice(0, 1);
    expect(job).toMatchObject({ kind: 'query', state: 'queued' });
    expect(newest).toContain(job.datasets[0]);
    expect((await server.store.jobs.get(job.id))?.spec).toEqual({ kind: 'query', query: { sql: VIEWERS_SQL }, tables: { impressions: job.datasets[0] } });
    const events = await eventsOf(queued);
    expect(events).toHaveLength(before + 1);
    expect(events[before]).toMatchObject({ type: 'job.submitted', job: job.id, kind: 'query', datasets: job.datasets });
  });

  it('refuses a denied query with 422 query-denied and its violations, queuing and logging nothing', async () => {
    const [jobs, events] = [(await listJobs(clientOf(parties.advertiser), queued.id)).length, (await eventsOf(queued)).length];
    const response = await submit(queued, { kind: 'query', sql: 'SELECT email_hash FROM impressions' });
    expect(response.statusCode, response.body).toBe(422);
    const body = response.json() as { code: string; violations: { code: string; message: string; position: number | null }[] };
    expect(body.code).toBe('query-denied');
    expect(body.violations.length).toBeGreaterThan(0);
    for (const v of body.violations) expect(Object.keys(v).sort()).toEqual(['code', 'message', 'position']);
    expect((await listJobs(clientOf(parties.advertiser), queued.id)).length).toBe(jobs);
    expect((await eventsOf(queued)).length).toBe(events);
  });

  it('refuses a provider that is not an analyst (403), and a non-member (404)', async () => {
    expectProblem(await submit(queued, { kind: 'query', sql: VIEWERS_SQL }, parties.publisher), 403, 'forbidden');
    expectProblem(await submit(queued, { kind: 'query', sql: VIEWERS_SQL }, outsider), 404, 'not-found');
  });

  it('refuses an unknown dataset, a dataset of another table, and a table without a dataset (409 naming them), and a table the query does not read (400)', async () => {
    const conversions = queued.datasets.conversions?.[0] ?? '';
    expectProblem(await submit(queued, { kind: 'query', sql: VIEWERS_SQL, datasets: { impressions: 'no-such-dataset' } }), 409, 'conflict', 'no-such-dataset');
    expectProblem(await submit(queued, { kind: 'query', sql: VIEWERS_SQL, datasets: { impressions: conversions } }), 409, 'conflict', `is of table conversions`);
    const stray = expectProblem(await submit(queued, { kind: 'query', sql: VIEWERS_SQL, datasets: { conversions } }), 400, 'invalid-input');
    expect(stray.issues).toEqual([{ path: 'body.datasets.conversions', message: 'the query does not read table conversions' }]);
    const empty = await establish(QUEUED_MEASUREMENT, {});
    expectProblem(await submit(empty, { kind: 'query', sql: VIEWERS_SQL }), 409, 'conflict', 'table impressions');
  });

  it('accepts a template with its parameters, through the SDK, binding the datasets named', async () => {
    const [older] = queued.datasets.impressions ?? [];
    const job = await submitQuery(clientOf(parties.advertiser), queued.id, {
      template: 'reach_and_conversions',
      parameters: { since: '2026-01-01' },
      datasets: { impressions: older ?? '' },
    });
    expect(job).toMatchObject({ kind: 'query', state: 'queued' });
    expect((await server.store.jobs.get(job.id))?.spec).toEqual({
      kind: 'query',
      query: { template: 'reach_and_conversions', parameters: { since: '2026-01-01' } },
      tables: { conversions: queued.datasets.conversions?.[0], impressions: older },
    });
  });
});

describe('running a job', () => {
  it('gives the worker the submitter, and logs job.started with the worker in the claim', async () => {
    const job = await claimed({ kind: 'key-check', datasets: ['some-dataset'] });
    expect(job).toMatchObject({ kind: 'key-check', submittedBy: parties.advertiser.identity.id });
    expect(job.query).toBeUndefined();
    expect((await eventsOf(run)).at(-1)).toMatchObject({
      type: 'job.started',
      job: job.id,
      actor: { kind: 'server' },
      worker: worker.identity.id,
      platform: 'sim',
      measurement: RUN_MEASUREMENT,
    });
    await finish(job.id, { error: 'invalid-input: done with it' });
  });

  it('gives a worker the job it holds again when it asks anew (the answer to its claim was lost), with no second job.started', async () => {
    const job = await claimed({ kind: 'key-check', datasets: ['some-dataset'] });
    const started = (await eventsOf(run)).filter((e) => e.type === 'job.started' && e.job === job.id);
    expect(started).toHaveLength(1);
    const next = await submit(run, { kind: 'key-check', datasets: ['some-dataset'] });
    expect(next.statusCode).toBe(201);
    expect((await worker.port.claim())?.id).toBe(job.id);
    expect((await eventsOf(run)).filter((e) => e.type === 'job.started' && e.job === job.id)).toHaveLength(1);
    await finish(job.id, { error: 'invalid-input: done with it' });
    // Once it has ended, the next claim takes the next job.
    expect((await worker.port.claim())?.id).toBe((next.json() as { id: string }).id);
    await finish((next.json() as { id: string }).id, { error: 'invalid-input: done with it' });
  });

  it('logs the code of a failure it knows, and enclave-error for any other text', async () => {
    for (const [error, code] of [
      ['query-timeout: the query took too long', 'query-timeout'],
      ['Alice Smith: 42', 'enclave-error'],
    ]) {
      const job = await claimed({ kind: 'key-check', datasets: ['some-dataset'] });
      expect((await finish(job.id, { error })).statusCode).toBe(200);
      expect((await eventsOf(run)).at(-1)).toEqual(expect.objectContaining({ type: 'job.finished', job: job.id, outcome: 'failed', result: null, code }));
    }
  });

  it('gives a query job its query and tables, refuses a sealed result whose ciphertext is not the one signed, and keeps a good one', async () => {
    const job = await claimed({ kind: 'query', sql: VIEWERS_SQL });
    expect(job).toMatchObject({ query: { sql: VIEWERS_SQL }, tables: { impressions: run.datasets.impressions?.[0] } });
    const receivers = run.agreement.receivers;
    // 3 MiB: over the server's default body limit, which the finish route raises.
    const { sealed, result } = sealedResult(receivers, 3 * 1024 * 1024);
    const other = sealedResult(receivers);
    const forged = await finish(job.id, { result: { ...statementFor(job, { result: other.result }), sealed } });
    expectProblem(forged, 422, 'signature-invalid', 'ciphertext');
    const stranger = await finish(job.id, { result: { ...statementFor(job, { result }), sealed: { ...sealed, recipients: [...sealed.recipients, { ...sealed.recipients[0], party: parties.publisher.identity.id }] } } });
    expectProblem(stranger, 422, 'signature-invalid', 'receivers');
    expectProblem(await finish(job.id, { result: statementFor(job, { result }) }), 422, 'signature-invalid', 'sealed result');
    const good = { ...statementFor(job, { result }), sealed };
    expect((await finish(job.id, { result: good })).statusCode).toBe(200);
    const advertiser = clientOf(parties.advertiser);
    expect(await getJob(advertiser, run.id, job.id)).toMatchObject({ state: 'succeeded', result: good });
    // Listings leave the sealed rows out: GET job gives them.
    expect((await listJobs(advertiser, run.id)).find((j) => j.id === job.id)?.result).toEqual({ statement: good.statement, signature: good.signature });
  });
});

describe('a worker that registers again after its claim', () => {
  it('has its result refused when it now reports a measurement the job was not queued for', async () => {
    const identity = createWorkerIdentity();
    const sim = await createSimAttester(readSimCa(`${dataDir}/sim-ca.json`), new Date());
    const port = httpWorkerPort(createClient({ server: server.url, keys: identity.keys }));
    await registerWorker({ identity, attester: simPlatformAttester(sim, fromHex(RUN_MEASUREMENT) ?? new Uint8Array()), port, now: () => new Date() });
    const submitted = await submit(run, { kind: 'key-check', datasets: ['some-dataset'] });
    const job = await port.claim();
    expect(job?.id).toBe((submitted.json() as { id: string }).id);
    const elsewhere = 'e9'.repeat(48);
    await registerWorker({ identity, attester: simPlatformAttester(sim, fromHex(elsewhere) ?? new Uint8Array()), port, now: () => new Date() });
    const statement: ResultStatement = {
      format: 'malus.job-result/v1',
      job: job?.id ?? '',
      collaboration: job?.collaborationId ?? '',
      agreement: job?.agreementHash ?? '',
      kind: 'key-check',
      output: {},
      enclave: { platform: 'sim', measurement: elsewhere, signingKey: identity.id, evidence: [] },
      notice: SIMULATED_NOTICE,
      time: new Date().toISOString(),
    };
    const refused = await send({ method: 'POST', path: `/v1/workers/me/jobs/${job?.id ?? ''}/finish`, json: { result: signStatement(statement, identity.signing.secretKey) }, as: identity.keys });
    expectProblem(refused, 422, 'signature-invalid', 'the worker now reports a platform and measurement the job was not queued for');
    await port.finish(job?.id ?? '', { error: 'invalid-input: done with it' });
  });
});

describe('job receipts', () => {
  it('answers 409 until the job succeeded, then a receipt of its job.finished entry that verifies offline', async () => {
    const job = await claimed({ kind: 'key-check', datasets: ['some-dataset'] });
    const path = `${jobsPath(run)}/${job.id}/receipt`;
    expectProblem(await send({ method: 'GET', path, as: parties.publisher }), 409, 'conflict');
    const signed = statementFor(job, { datasets: [] });
    expect((await finish(job.id, { result: signed })).statusCode).toBe(200);

    const receipt = await getJobReceipt(clientOf(parties.publisher), run.id, job.id);
    const { statement, enclave, agreement, ...logReceipt } = receipt;
    const verdict = verifyReceipt(logReceipt, { log: ed25519NoteVerifier(server.log.origin, server.log.publicKey) });
    expect(verdict).toMatchObject({ ok: true, event: { type: 'job.finished', job: job.id, outcome: 'succeeded', result: statementHash(signed.statement) } });
    expect(statement).toEqual(signed);
    expect(agreement).toEqual(run.agreement);
    const registered = await server.store.workers.get(worker.identity.id);
    expect(enclave).toEqual({
      platform: 'sim',
      evidence: registered?.evidence,
      certificates: registered?.certificates,
      encryptionKey: toBase64Url(worker.identity.encryption.publicKey),
      challenge: registered?.challenge,
    });
    expectProblem(await send({ method: 'GET', path, as: outsider }), 404, 'not-found');
  });
});
