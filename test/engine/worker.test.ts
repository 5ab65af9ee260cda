import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement, type AgreementSignature } from '../../src/agreement/index.js';
import { createSimAttester, simPlatformAttester } from '../../src/attestation/index.js';
import { createClient, getJob, httpWorkerPort, proposeCollaboration, registerDataKey, signCollaboration, submitJob, uploadDataset } from '../../src/client/index.js';
import { prepareDataset } from '../../src/ingest/index.js';
import { fromBase64Url, fromHex, toBase64Url } from '../../src/crypto/index.js';
import {
  MEASUREMENT_LABEL,
  SIMULATED_NOTICE,
  checkJob,
  createWorkerIdentity,
  measureBuild,
  pollOnce,
  readSimCa,
  registerWorker,
  runJob,
  signStatement,
  verifyStatementSignature,
  type ClaimedJob,
  type ResultStatement,
  type SignedStatement,
  type WorkerContext,
} from '../../src/engine/index.js';
import { MalusError, isMalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { keyCommitment } from '../../src/keyrelease/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { amendment, makeParties, type Parties } from '../server/helpers.js';

// The enclave worker's own checks of a job, its signed result against a real server, and the
// build measurement an agreement pins.

const DAY_MS = 86_400_000;
const MEASUREMENT = 'e5'.repeat(48);
const OTHER_MEASUREMENT = 'f6'.repeat(48);

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isMalusError(error)) return error.code;
    throw error;
  }
  return 'no error';
}

function signatureOf(agreement: Agreement, party: PartyKeys, at: Date): AgreementSignature {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, at);
}

function agreementOf(parties: Parties, id: string, validFrom: Date, measurements = [MEASUREMENT]): Agreement {
  return exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom, measurements },
  );
}

describe('checkJob', () => {
  const parties = makeParties('Check ');
  const now = new Date('2026-03-01T12:00:00.000Z');
  const v1 = agreementOf(parties, 'check-job', new Date(now.getTime() - DAY_MS));
  const bothSigned = (agreement: Agreement) => ({
    agreement,
    signatures: [signatureOf(agreement, parties.advertiser, now), signatureOf(agreement, parties.publisher, now)],
  });
  const job = (changes: Partial<ClaimedJob> = {}): ClaimedJob => ({
    id: `job-${'0'.repeat(32)}`,
    collaborationId: v1.id,
    agreementHash: agreementHash(v1),
    kind: 'key-check',
    datasets: ['pub-impressions-1'],
    submittedBy: parties.advertiser.identity.id,
    versions: [bothSigned(v1)],
    ...changes,
  });

  it('takes a key-check job under the active agreement that pins its measurement, and gives that agreement', () => {
    expect(checkJob(job(), now, MEASUREMENT)).toEqual(v1);
  });

  it('refuses a job whose agreement is not active: not fully signed, not yet valid, expired (agreement-mismatch)', () => {
    const proposed = job({ versions: [{ agreement: v1, signatures: [signatureOf(v1, parties.advertiser, now)] }] });
    expect(codeOf(() => checkJob(proposed, now, MEASUREMENT))).toBe('agreement-mismatch');
    expect(codeOf(() => checkJob(job(), new Date(now.getTime() - 2 * DAY_MS), MEASUREMENT))).toBe('agreement-mismatch');
    expect(codeOf(() => checkJob(job(), new Date(now.getTime() + 90 * DAY_MS), MEASUREMENT))).toBe('agreement-mismatch');
    expect(codeOf(() => checkJob(job({ versions: [] }), now, MEASUREMENT))).toBe('agreement-mismatch');
  });

  it('refuses a job naming a version that is not the active one (agreement-mismatch)', () => {
    const v2 = amendment(v1);
    const versions = [bothSigned(v1), bothSigned(v2)];
    expect(codeOf(() => checkJob(job({ versions }), now, MEASUREMENT))).toBe('agreement-mismatch');
    expect(checkJob(job({ versions, agreementHash: agreementHash(v2) }), now, MEASUREMENT)).toEqual(v2);
    expect(codeOf(() => checkJob(job({ agreementHash: `sha256:${'0'.repeat(64)}` }), now, MEASUREMENT))).toBe('agreement-mismatch');
  });

  it('refuses a job whose signatures are forged (agreement-mismatch)', () => {
    const forged = signatureOf(v1, parties.operator, now);
    const versions = [{ agreement: v1, signatures: [signatureOf(v1, parties.advertiser, now), { ...forged, signer: parties.publisher.identity.id }] }];
    expect(codeOf(() => checkJob(job({ versions }), now, MEASUREMENT))).toBe('agreement-mismatch');
  });

  it('refuses a job whose agreement does not pin this enclave (agreement-mismatch)', () => {
    expect(codeOf(() => checkJob(job(), now, OTHER_MEASUREMENT))).toBe('agreement-mismatch');
    const unpinned = agreementOf(parties, 'check-job', new Date(now.getTime() - DAY_MS), []);
    expect(codeOf(() => checkJob(job({ versions: [bothSigned(unpinned)], agreementHash: agreementHash(unpinned) }), now, MEASUREMENT))).toBe(
      'agreement-mismatch',
    );
  });

  it('refuses a job whose agreement is of another collaboration (agreement-mismatch)', () => {
    expect(codeOf(() => checkJob(job({ collaborationId: 'another-collaboration' }), now, MEASUREMENT))).toBe('agreement-mismatch');
  });

  it('refuses a kind it does not run, and a job with no dataset (invalid-input)', () => {
    expect(codeOf(() => checkJob(job({ kind: 'sql' }), now, MEASUREMENT))).toBe('invalid-input');
    expect(codeOf(() => checkJob(job({ datasets: [] }), now, MEASUREMENT))).toBe('invalid-input');
  });
});

describe('runJob against a real server', () => {
  let dataDir: string;
  let server: RunningServer;
  let ctx: WorkerContext;
  const parties = makeParties('Worker ');
  let agreement: Agreement;
  const dataset = 'worker-test-impressions';
  const dek = new Uint8Array(randomBytes(32));
  let signed: SignedStatement;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'malus-worker-'));
    server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: MEASUREMENT });
    const identity = createWorkerIdentity();
    const sim = await createSimAttester(readSimCa(join(dataDir, 'sim-ca.json')), new Date());
    ctx = {
      identity,
      attester: simPlatformAttester(sim, fromHex(server.simMeasurement) ?? new Uint8Array()),
      port: httpWorkerPort(createClient({ server: server.url, keys: identity.keys })),
      now: () => new Date(),
    };
    await registerWorker(ctx);
    agreement = agreementOf(parties, 'worker-test', new Date(Date.now() - 60_000), [server.simMeasurement]);
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const publisher = createClient({ server: server.url, keys: parties.publisher });
    await proposeCollaboration(advertiser, { agreement, signature: signatureOf(agreement, parties.advertiser, new Date()) });
    await signCollaboration(publisher, agreement.id, signatureOf(agreement, parties.publisher, new Date()));
    await registerDataKey(publisher, { agreement, dataset, table: 'impressions', dataKey: dek });
  });

  afterAll(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('produces a statement over the commitment to the registered key, signed by the worker', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: [dataset] });
    const claimed = await ctx.port.claim();
    expect(claimed?.id).toBe(submitted.id);
    signed = await runJob(ctx, claimed as ClaimedJob);
    expect(signed.statement).toMatchObject({
      format: 'malus.job-result/v1',
      job: submitted.id,
      collaboration: agreement.id,
      agreement: agreementHash(agreement),
      kind: 'key-check',
      output: { datasets: [{ dataset, keyCommitment: keyCommitment(dek, agreement.id, dataset) }] },
      enclave: { platform: 'sim', measurement: server.simMeasurement, signingKey: ctx.identity.id },
      notice: SIMULATED_NOTICE,
    });
    expect(signed.statement.enclave.evidence).toHaveLength(1);
    expect(verifyStatementSignature(signed)).toBe(true);
    // The server checks it too, and the job ends with it.
    await ctx.port.finish(submitted.id, { result: signed });
    const done = await getJob(advertiser, agreement.id, submitted.id);
    expect(done).toMatchObject({ state: 'succeeded', result: signed });
  });

  it('has the server refuse a result, signed by the worker itself, that drops the sim notice or claims another platform', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    for (const forged of [
      (statement: ResultStatement): ResultStatement => (({ notice: _notice, ...rest }) => rest)(statement),
      (statement: ResultStatement): ResultStatement => ({ ...statement, enclave: { ...statement.enclave, platform: 'nitro' } }),
    ]) {
      const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: [dataset] });
      const claimed = await ctx.port.claim();
      const honest = await runJob(ctx, claimed as ClaimedJob);
      const result = signStatement(forged(honest.statement), ctx.identity.signing.secretKey);
      expect(verifyStatementSignature(result)).toBe(true);
      const refused = await ctx.port.finish(submitted.id, { result }).then(() => undefined, (error: unknown) => error);
      expect(refused).toMatchObject({ code: 'signature-invalid' });
      expect((await getJob(advertiser, agreement.id, submitted.id)).state).toBe('running');
      // As pollOnce does after a refused result: the job ends, and the worker holds nothing.
      await ctx.port.finish(submitted.id, { error: 'result-undelivered: the server refused the result' });
      expect((await getJob(advertiser, agreement.id, submitted.id)).state).toBe('failed');
    }
  });

  it('gives a statement whose signature fails once any field changes', () => {
    const s = signed.statement;
    const changed = [
      { ...s, job: `job-${'1'.repeat(32)}` },
      { ...s, collaboration: 'another' },
      { ...s, agreement: `sha256:${'0'.repeat(64)}` },
      { ...s, kind: 'sql' },
      { ...s, output: { datasets: [{ dataset, keyCommitment: `sha256:${'0'.repeat(64)}` }] } },
      { ...s, output: {} },
      { ...s, enclave: { ...s.enclave, platform: 'nitro' } },
      { ...s, enclave: { ...s.enclave, measurement: OTHER_MEASUREMENT } },
      { ...s, enclave: { ...s.enclave, evidence: [] } },
      { ...s, enclave: { ...s.enclave, signingKey: createWorkerIdentity().id } },
      { ...s, time: new Date(0).toISOString() },
      (({ notice: _notice, ...rest }) => rest)(s),
    ];
    for (const statement of changed) {
      expect(verifyStatementSignature({ statement, signature: signed.signature }), JSON.stringify(statement)).toBe(false);
    }
    const signature = fromBase64Url(signed.signature) ?? new Uint8Array();
    signature[0] = (signature[0] ?? 0) ^ 0x01;
    expect(verifyStatementSignature({ statement: s, signature: toBase64Url(signature) })).toBe(false);
    expect(verifyStatementSignature({ statement: s, signature: 'not base64url!' })).toBe(false);
    // Key order does not matter: the signature is over the canonical form.
    const reordered = Object.fromEntries(Object.entries(s).reverse()) as typeof s;
    expect(verifyStatementSignature({ statement: reordered, signature: signed.signature })).toBe(true);
  });

  it('decrypts an uploaded dataset into DuckDB and signs its row count (dataset-check); a flipped byte on the server fails the job', async () => {
    const publisher = createClient({ server: server.url, keys: parties.publisher });
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const input = join(dataDir, 'impressions-input.csv');
    const lines = ['email_hash,campaign_id,shown_at,placement,device_type'];
    for (let i = 0; i < 500; i += 1) lines.push(`E${i % 70},cmp-${i % 3},2026-11-0${1 + (i % 9)} 10:00:00,homepage,mobile`);
    writeFileSync(input, `${lines.join('\n')}\n`);
    const prepared = await prepareDataset({
      agreement,
      agreementHash: agreementHash(agreement),
      table: 'impressions',
      input,
      keys: parties.publisher,
      out: join(dataDir, 'prepared-impressions'),
      dataset: 'worker-test-uploaded',
      joinSecret: randomBytes(32),
    });
    await uploadDataset(publisher, { dir: prepared.dir, agreement });
    const submitted = await submitJob(advertiser, agreement.id, { kind: 'dataset-check', datasets: ['worker-test-uploaded'] });
    const claimed = await ctx.port.claim();
    expect(claimed?.id).toBe(submitted.id);
    const result = await runJob(ctx, claimed as ClaimedJob);
    expect(result.statement.output).toEqual({
      datasets: [{ dataset: 'worker-test-uploaded', keyCommitment: prepared.signed.manifest.keyCommitment, rows: 500, ciphertext: prepared.signed.manifest.ciphertext.sha256 }],
    });
    await ctx.port.finish(submitted.id, { result });

    // The operator's disk is not trusted: one flipped byte and the enclave refuses the dataset.
    const stored = join(dataDir, 'datasets', agreement.id, 'worker-test-uploaded.mds');
    const bytes = readFileSync(stored);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 1;
    writeFileSync(stored, bytes);
    const again = await submitJob(advertiser, agreement.id, { kind: 'dataset-check', datasets: ['worker-test-uploaded'] });
    expect(await pollOnce(ctx)).toBe(true);
    const failed = await getJob(advertiser, agreement.id, again.id);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(/^invalid-input: (chunk \d+ at offset \d+ does not authenticate|dataset worker-test-uploaded: the ciphertext is not the one its owner signed)/);
  });

  it('fails a job whose result the server refused with result-undelivered, never with the code the server answered (pollOnce)', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: [dataset] });
    // The result leaves the enclave with a flipped signature byte: the server answers
    // signature-invalid, and the worker must not pass that on as the job's failure.
    const refusedBy: unknown[] = [];
    const tampering: WorkerContext = {
      ...ctx,
      port: {
        ...ctx.port,
        finish: async (jobId, outcome) => {
          if (!('result' in outcome)) return ctx.port.finish(jobId, outcome);
          const signature = fromBase64Url(outcome.result.signature) ?? new Uint8Array();
          signature[0] = (signature[0] ?? 0) ^ 0x01;
          return ctx.port.finish(jobId, { result: { ...outcome.result, signature: toBase64Url(signature) } }).catch((error: unknown) => {
            refusedBy.push(error);
            throw error;
          });
        },
      },
    };
    expect(await pollOnce(tampering)).toBe(true);
    expect(refusedBy).toHaveLength(1);
    expect(refusedBy[0]).toMatchObject({ code: 'signature-invalid' });
    const done = await getJob(advertiser, agreement.id, submitted.id);
    expect(done.state).toBe('failed');
    expect(done.error).toMatch(/^result-undelivered: the server did not accept the result \(signature-invalid: /);
  });

  it('delivers a result again after a dropped connection, and the server takes the repeat of one that got through as delivered', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    // The faults are a connection that breaks before the request leaves, and one that breaks after
    // the server has taken it (the answer lost); the server itself is the real one.
    for (const reaches of [false, true]) {
      const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: [dataset] });
      let broken = false;
      const dropping: WorkerContext = {
        ...ctx,
        failureReportDelaysMs: [1, 1, 1],
        port: {
          ...ctx.port,
          finish: async (jobId, outcome) => {
            if (!('result' in outcome) || broken) return ctx.port.finish(jobId, outcome);
            broken = true;
            if (reaches) await ctx.port.finish(jobId, outcome);
            throw new MalusError('server-unreachable', 'the connection was reset');
          },
        },
      };
      expect(await pollOnce(dropping)).toBe(true);
      const done = await getJob(advertiser, agreement.id, submitted.id);
      expect([reaches, done.state, done.error]).toEqual([reaches, 'succeeded', null]);
    }
  });

  it('reports a failure again after a dropped connection, and the server takes the repeat of one that got through as delivered', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: ['worker-test-unregistered'] });
    let broken = false;
    const warnings: string[] = [];
    const dropping: WorkerContext = {
      ...ctx,
      failureReportDelaysMs: [1, 1, 1],
      log: (_level, message) => warnings.push(message),
      port: {
        ...ctx.port,
        finish: async (jobId, outcome) => {
          if (broken) return ctx.port.finish(jobId, outcome);
          broken = true;
          await ctx.port.finish(jobId, outcome);
          throw new MalusError('server-unreachable', 'the connection was reset');
        },
      },
    };
    expect(await pollOnce(dropping)).toBe(true);
    const done = await getJob(advertiser, agreement.id, submitted.id);
    expect(done.state).toBe('failed');
    expect(done.error).toMatch(/^key-release-denied: /);
    expect(warnings).not.toContain('job ended by the server before its failure was reported');
  });

  it('fails a job whose key no service holds, with the code and no key bytes (pollOnce)', async () => {
    const advertiser = createClient({ server: server.url, keys: parties.advertiser });
    const submitted = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: ['worker-test-unregistered'] });
    expect(await pollOnce(ctx)).toBe(true);
    const done = await getJob(advertiser, agreement.id, submitted.id);
    expect(done.state).toBe('failed');
    expect(done.error).toMatch(/^key-release-denied: /);
    expect(await pollOnce(ctx)).toBe(false);
  });
});

describe('measureBuild', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A tiny package: dist/a.js, dist/sub/b.json, a README, and package-lock.json. */
  function fakePackage(): string {
    const root = mkdtempSync(join(tmpdir(), 'malus-measure-'));
    dirs.push(root);
    mkdirSync(join(root, 'dist', 'sub'), { recursive: true });
    writeFileSync(join(root, 'dist', 'a.js'), 'export const a = 1;\n');
    writeFileSync(join(root, 'dist', 'sub', 'b.json'), '{"b":2}\n');
    writeFileSync(join(root, 'README.md'), 'not measured\n');
    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3}\n');
    return root;
  }

  const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

  it('is the documented SHA-384 over the sorted paths and file hashes', () => {
    const root = fakePackage();
    const expected = createHash('sha384')
      .update(MEASUREMENT_LABEL)
      .update(`dist/a.js\0${sha256Hex('export const a = 1;\n')}\n`)
      .update(`dist/sub/b.json\0${sha256Hex('{"b":2}\n')}\n`)
      .update(`package-lock.json\0${sha256Hex('{"lockfileVersion":3}\n')}\n`)
      .digest('hex');
    expect(measureBuild(root)).toEqual({ measurement: expected, files: 3 });
  });

  it('is deterministic', () => {
    const root = fakePackage();
    expect(measureBuild(root)).toEqual(measureBuild(root));
    expect(measureBuild(fakePackage())).toEqual(measureBuild(root));
  });

  it('changes when a measured file changes, is added or is renamed, and not for other files', () => {
    const root = fakePackage();
    const seen = new Set([measureBuild(root).measurement]);
    /** Measures again: a new value exactly when `measured` files changed. */
    const remeasure = (measured: boolean): void => {
      const { measurement } = measureBuild(root);
      expect(seen.has(measurement)).toBe(!measured);
      seen.add(measurement);
    };
    writeFileSync(join(root, 'dist', 'a.js'), 'export const a = 2;\n');
    remeasure(true);
    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":2}\n');
    remeasure(true);
    writeFileSync(join(root, 'dist', 'c.js'), '');
    remeasure(true);
    renameSync(join(root, 'dist', 'sub', 'b.json'), join(root, 'dist', 'sub', 'b2.json'));
    remeasure(true);
    writeFileSync(join(root, 'dist', 'notes.txt'), 'ignored\n');
    remeasure(false);
    writeFileSync(join(root, 'README.md'), 'still not measured\n');
    remeasure(false);
  });

  it('refuses a tree without dist/ or without the lockfile (file-unreadable)', () => {
    const noDist = fakePackage();
    rmSync(join(noDist, 'dist'), { recursive: true });
    expect(codeOf(() => measureBuild(noDist))).toBe('file-unreadable');
    const noLock = fakePackage();
    rmSync(join(noLock, 'package-lock.json'));
    expect(codeOf(() => measureBuild(noLock))).toBe('file-unreadable');
  });
});
