import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgreement, parseAgreementText, type Agreement } from '../../src/agreement/index.js';
import { createClient, getLogEntries, httpWorkerPort, registerDataKey, submitJob, waitForJob } from '../../src/client/index.js';
import { createSimAttester, produceSimEvidence } from '../../src/attestation/index.js';
import { createWorkerIdentity, measureBuild, readSimCa, verifyStatementSignature } from '../../src/engine/index.js';
import { readKeyFile } from '../../src/identity/index.js';
import { keyCommitment } from '../../src/keyrelease/index.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startDaemon, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus enclave`, `malus enclave measure` and `malus kms serve` as real processes beside a real
// `malus serve --no-worker`: the worker process takes the job, and a party's own key-release
// service releases its key and records the decision in the collaboration's log.

let dir: string;
let server: ServerProcess | undefined;
let kms: ServerProcess | undefined;
let enclave: ServerProcess | undefined;
let agreement: Agreement;
const run = (args: string[]) => malus(args, { cwd: dir });

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  for (const name of ['adv', 'pub', 'op']) expect((await run(['keygen', '--name', `${name} party`, '--out', `${name}.json`])).code).toBe(0);
  server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
  kms = await startDaemon(['kms', 'serve', '--data-dir', join(dir, 'kms'), '--server', server.url, '--key', 'pub.json', '--listen', '127.0.0.1:0'], dir, /on (http:\/\/\S+), following/);
  expect((await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  // The publisher keeps its keys on its own premises: the agreement names its service.
  const publisher = readKeyFile(join(dir, 'pub.json')).identity.id;
  const text = readFileSync(join(dir, 'a.yaml'), 'utf8').replace('endpoints: []', `endpoints: [{ owner: "${publisher}", url: "${kms.url}" }]`);
  writeFileSync(join(dir, 'a.yaml'), text);
  agreement = assertAgreement(parseAgreementText(text), 'test agreement');
  expect((await run(['collab', 'propose', 'a.yaml', '--server', server.url, '--key', 'adv.json'])).code).toBe(0);
  expect((await run(['collab', 'sign', agreement.id, '--agreement', 'a.yaml', '--server', server.url, '--key', 'pub.json'])).code).toBe(0);
}, 60_000);

afterAll(async () => {
  await Promise.all([enclave?.kill(), kms?.kill(), server?.kill()]);
  removeDir(dir);
});

describe('malus enclave measure', () => {
  it('prints the build measurement that agreement init pins', async () => {
    const measured = await run(['enclave', 'measure']);
    expect(measured.code).toBe(0);
    expect(measured.stdout).toBe(`${measureBuild().measurement}\n`);
    expect(agreement.enclave.measurements).toEqual([measureBuild().measurement]);
    const json = JSON.parse((await run(['enclave', 'measure', '--json'])).stdout) as { measurement: string; files: number };
    expect(json.measurement).toBe(measureBuild().measurement);
    expect(json.files).toBeGreaterThan(50);
  });
});

describe('malus enclave', () => {
  it('refuses bad usage with exit 2 and no stack trace', async () => {
    const simCa = join(dir, 'data', 'sim-ca.json');
    for (const [args, message] of [
      [['enclave', '--sim-ca', simCa], '--server is required'],
      [['enclave', '--server', 'http://127.0.0.1:1', '--platform', 'nitro', '--sim-ca', simCa], 'produces evidence only for sim'],
      [['enclave', '--server', 'http://127.0.0.1:1'], '--sim-ca is required'],
      [['enclave', '--server', 'http://127.0.0.1:1', '--sim-ca', simCa, '--measurement', 'abc'], '--measurement must be 96'],
      [['enclave', '--server', 'http://127.0.0.1:1', '--sim-ca', simCa, '--poll-ms', 'soon'], '--poll-ms must be'],
      [['enclave', '--server', 'http://127.0.0.1:1', '--sim-ca', join(dir, 'missing.json')], 'cannot read the sim CA'],
    ] as const) {
      const result = await run([...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(message);
      expect(hasStackTrace(result.stderr)).toBe(false);
    }
  });

  it("runs as its own process, takes the job, and gets the key from the publisher's own service", async () => {
    if (server === undefined || kms === undefined) throw new Error('setup failed');
    enclave = await startDaemon(['enclave', '--server', server.url, '--sim-ca', join(dir, 'data', 'sim-ca.json'), '--poll-ms', '50'], dir, /SIMULATED TEE: NOT CONFIDENTIAL/);
    expect(enclave.stderr()).toMatch(/enclave worker [A-Za-z0-9_-]{43} registered with /);
    const publisher = readKeyFile(join(dir, 'pub.json'));
    const advertiser = createClient({ server: server.url, keys: readKeyFile(join(dir, 'adv.json')) });
    const dataKey = randomBytes(32);
    const table = agreement.tables.find((t) => t.owner === publisher.identity.id)?.name ?? '';
    const registered = await registerDataKey(createClient({ server: kms.url, keys: publisher }), { agreement, dataset: 'impressions-1', table, dataKey });
    expect(registered.created).toBe(true);

    const job = await submitJob(advertiser, agreement.id, { kind: 'key-check', datasets: ['impressions-1'] });
    const done = await waitForJob(advertiser, agreement.id, job.id, { timeoutMs: 20_000 });
    expect(done.state, done.error ?? '').toBe('succeeded');
    if (done.result === null) throw new Error('no result');
    expect(verifyStatementSignature(done.result)).toBe(true);
    expect(done.result.statement.output).toEqual({ datasets: [{ dataset: 'impressions-1', keyCommitment: keyCommitment(dataKey, agreement.id, 'impressions-1') }] });
    expect(done.result.statement.notice).toBe('SIMULATED TEE: NOT CONFIDENTIAL');

    // The publisher's service recorded its registration and its grant, as the publisher.
    const entries = (await getLogEntries(advertiser, agreement.id)).map((e) => JSON.parse(e.entry) as { type: string; actor: { id: string }; reasons?: string[] });
    const byPublisher = entries.filter((e) => e.actor.id === publisher.identity.id).map((e) => e.type);
    expect(byPublisher).toEqual(expect.arrayContaining(['key.registered', 'key.granted']));
    // The embedded service holds no key for the job, so it was not asked: no denial clutters the log.
    expect(entries.filter((e) => e.type === 'key.denied')).toEqual([]);

    // SIGTERM: the worker finishes and says so.
    enclave.child.kill('SIGTERM');
    const exit = await enclave.exited;
    expect(exit.code).toBe(0);
    expect(enclave.stderr()).toContain('stopped\n');
  }, 40_000);
});

describe('malus attest verify --format sim', () => {
  it('verifies sim evidence under the server development CA, and not as nitro', async () => {
    const ca = readSimCa(join(dir, 'data', 'sim-ca.json'));
    const attester = await createSimAttester(ca, new Date());
    const measurement = randomBytes(48);
    writeFileSync(join(dir, 'sim.cose'), produceSimEvidence(attester, { measurement, userData: new Uint8Array(32).fill(7), now: new Date() }));
    writeFileSync(join(dir, 'sim-root.der'), ca.certificate);
    const ok = await run(['attest', 'verify', '--evidence', 'sim.cose', '--format', 'sim', '--root', 'sim-root.der', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const verdict = JSON.parse(ok.stdout) as { ok: boolean; platform: string; measurement: string; claims: { userData: string } };
    expect(verdict).toMatchObject({ ok: true, platform: 'sim', measurement: measurement.toString('hex') });
    expect(verdict.claims.userData).toBe('07'.repeat(32));
    const asNitro = await run(['attest', 'verify', '--evidence', 'sim.cose', '--json']);
    expect(asNitro.code).toBe(1);
    expect((JSON.parse(asNitro.stdout) as { reasons: { code: string }[] }).reasons[0]?.code).toBe('untrusted-root');
    const noRoot = await run(['attest', 'verify', '--evidence', 'sim.cose', '--format', 'sim', '--json']);
    expect(noRoot.code).toBe(1);
  });
});

describe('malus kms serve', () => {
  it('refuses, unlogged, a release request from a caller that holds no running job', async () => {
    if (server === undefined || kms === undefined) throw new Error('setup failed');
    const advertiser = createClient({ server: server.url, keys: readKeyFile(join(dir, 'adv.json')) });
    const before = (await getLogEntries(advertiser, agreement.id)).length;
    const stranger = createWorkerIdentity();
    const port = httpWorkerPort(createClient({ server: server.url, keys: stranger.keys }));
    const challenge = await port.releaseChallenge(kms.url);
    const refused = await port
      .release(kms.url, {
        collaborationId: agreement.id,
        jobId: `job-${'0'.repeat(32)}`,
        challenge,
        platform: 'sim',
        evidence: new Uint8Array(64),
        certificates: [],
        encryptionKey: stranger.encryption.publicKey,
      })
      .then(() => undefined, (error: unknown) => error);
    expect(refused).toMatchObject({ code: 'forbidden' });
    expect((await getLogEntries(advertiser, agreement.id)).length).toBe(before);
  });

  it('publishes its development CA and refuses to start without its party key', async () => {
    if (kms === undefined) throw new Error('setup failed');
    const root = (await (await fetch(`${kms.url}/v1/attestation/sim-root`)).json()) as { fingerprint: string };
    expect(root.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const noKey = await run(['kms', 'serve', '--data-dir', join(dir, 'kms2'), '--server', 'http://127.0.0.1:1', '--key', 'missing.json']);
    expect(noKey.code).toBe(2);
    expect(hasStackTrace(noKey.stderr)).toBe(false);
    const noServer = await run(['kms', 'serve', '--data-dir', join(dir, 'kms3'), '--server', 'http://127.0.0.1:1', '--key', 'pub.json']);
    expect(noServer.code).toBe(3);
    expect(noServer.stderr).toContain('needs it to read agreements');
  });
});
