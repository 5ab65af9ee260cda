import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createSimAttester, evidenceBinding, simPlatformAttester } from '../attestation/index.js';
import { appraiseKeyReleaseService, createClient, getLogEntries, httpWorkerPort, submitJob, waitForJob } from '../client/index.js';
import { fromBase64Url } from '../crypto/index.js';
import { createWorkerIdentity, readSimCa, registerWorker, verifyStatementSignature } from '../engine/index.js';
import { MalusError, isMalusError } from '../errors/index.js';
import { keyCommitment } from '../keyrelease/index.js';
import { need, short } from './narration.js';
import type { Step } from './scenario.js';
import type { DemoContext } from './context.js';

// The confidential-compute part of the story: each party checks the clean room's evidence before
// trusting it, the providers register their data keys sealed to the attested key-release service,
// an enclave proves it received exactly those keys, and a worker running other code is refused.

export const partiesCheckTheCleanRoom: Step<DemoContext> = {
  title: "Each party verifies the clean room's attestation before trusting it",
  why:
    "A data owner never takes the server's word. It sends a fresh nonce; the key-release service answers with evidence " +
    'that binds its encryption key, that nonce and the agreement hash, signed by the platform. The party checks it against ' +
    'the enclave policy of the agreement it signed itself: platform allowed, measurement pinned, not debug, fresh.',
  run: async (ctx, n) => {
    const clients = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    for (const [name, client] of [
      ['advertiser', clients.advertiser],
      ['publisher', clients.publisher],
    ] as const) {
      const service = await appraiseKeyReleaseService(client, { agreement });
      n.say(`${name}: ${service.attestation.platform} evidence verified; measurement ${short(service.measurement)} is pinned by the agreement`);
    }
    n.say('platform sim: SIMULATED TEE: NOT CONFIDENTIAL (a development CA signs the evidence; real platforms: nitro, sev-snp, tdx)');
  },
};

export const enclaveReceivesKeys: Step<DemoContext> = {
  title: 'An enclave decrypts both datasets with exactly those keys (a dataset-check job)',
  why:
    'The enclave worker takes the job, re-checks it against the agreement itself, asks for a single-use challenge, presents ' +
    'evidence binding its own key and that challenge, and receives the keys sealed to it. It signs commitments to the keys it ' +
    'holds; each owner compares them with its own. It decrypts every chunk straight into an in-memory DuckDB, checking each ' +
    "chunk's tag and the ciphertext hash its owner signed, and signs the row counts. Neither keys nor rows touch a disk.",
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const dataKeys = need(ctx.dataKeys, 'the data keys');
    const job = await submitJob(advertiser, agreement.id, { kind: 'dataset-check', datasets: Object.keys(dataKeys) });
    const done = await waitForJob(advertiser, agreement.id, job.id);
    if (done.state !== 'succeeded' || done.result === null) throw new MalusError('internal', `the dataset-check job ${done.state}: ${done.error ?? ''}`);
    if (!verifyStatementSignature(done.result)) throw new MalusError('signature-invalid', 'the enclave statement does not verify');
    const output = done.result.statement.output as { datasets?: { dataset: string; keyCommitment: string; rows?: number }[] };
    for (const [dataset, key] of Object.entries(dataKeys)) {
      const claimed = output.datasets?.find((d) => d.dataset === dataset);
      if (claimed?.keyCommitment !== keyCommitment(key, agreement.id, dataset)) throw new MalusError('signature-invalid', `the enclave holds another key for ${dataset}`);
      n.say(`${dataset}: the enclave's commitment matches the owner's key; ${(claimed.rows ?? 0).toLocaleString('en-US')} rows decrypted into DuckDB`);
    }
    n.say(`job ${done.id} signed by enclave ${short(done.result.statement.enclave.signingKey)} (${done.result.statement.notice ?? 'attested'})`);
    const granted = (await getLogEntries(advertiser, agreement.id)).filter((e) => e.entry.includes('"type":"key.granted"'));
    n.say(`log entry ${granted[granted.length - 1]?.index ?? '?'}: key.granted to measurement ${short(done.result.statement.enclave.measurement)}`);
  },
};

export const rogueWorkerDenied: Step<DemoContext> = {
  title: 'A worker running different code is refused, even when the operator hands it the job',
  why:
    'The operator controls the queue, so it could give a job to a modified worker. The key-release service does not care who ' +
    "dispatched the job: the worker's evidence shows a measurement the agreement does not pin, and the release is denied, " +
    'with the reason in the log and nothing said about which keys exist.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const dataKeys = need(ctx.dataKeys, 'the data keys');
    const now = ctx.now();
    // A worker built from other code: same development CA (it is sim), another measurement.
    const rogue = createWorkerIdentity();
    const attester = simPlatformAttester(await createSimAttester(readSimCa(join(ctx.dataDir, 'sim-ca.json')), now), randomBytes(48));
    const port = httpWorkerPort(createClient({ server: ctx.server.url, keys: rogue.keys }));
    await registerWorker({ identity: rogue, attester, port, now: ctx.now });
    n.say(`a worker with measurement ${short(attester.measurement)} registers (its evidence is authentic sim evidence)`);
    // The operator writes the job straight into its queue, held by the rogue worker.
    const active = need(ctx.hash, 'the hash');
    const jobId = `job-${randomBytes(16).toString('hex')}`;
    await ctx.server.store.jobs.create({
      id: jobId,
      collaborationId: agreement.id,
      agreementHash: active,
      kind: 'key-check',
      spec: { kind: 'key-check', datasets: Object.keys(dataKeys) },
      datasets: Object.keys(dataKeys),
      measurements: [attester.measurement],
      state: 'running',
      submittedBy: need(ctx.parties, 'the identities').operator.identity.id,
      workerId: rogue.id,
      result: null,
      error: null,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    });
    const challenge = await port.releaseChallenge(undefined);
    const binding = evidenceBinding({ enclavePublicKey: rogue.encryption.publicKey, challenge: fromBase64Url(challenge) ?? new Uint8Array(), agreementHash: active });
    const { evidence, certificates } = await attester.attest({ binding, publicKey: rogue.encryption.publicKey, now: ctx.now() });
    try {
      await port.release(undefined, { collaborationId: agreement.id, jobId, challenge, platform: 'sim', evidence, certificates, encryptionKey: rogue.encryption.publicKey });
      throw new MalusError('internal', 'the rogue worker was given keys');
    } catch (error) {
      if (!isMalusError(error, 'key-release-denied')) throw error;
      n.say(`key release denied: ${error.reasons.map((r) => r.code).join(', ')}`);
    }
    const denied = (await getLogEntries(advertiser, agreement.id)).filter((e) => e.entry.includes('"type":"key.denied"'));
    n.say(`log entry ${denied[denied.length - 1]?.index ?? '?'}: key.denied, visible to every party`);
  },
};
