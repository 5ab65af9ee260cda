// Attestation benchmarks (`npm run bench:attestation`). Each figure is printed next to a baseline
// measured in the same run; nothing here is asserted beyond every verification succeeding.
//
//   1. verifyEvidence per document, on the real Nitro, SEV-SNP and TDX vectors in
//      ../shared/vectors/attestation (at the times their README gives) and on fresh sim evidence,
//      against the bare signature verifications that document needs: the same signatures checked
//      with node:crypto over pre-parsed certificates, keys and signed bytes. The ratio is what
//      parsing and checking cost above the cryptography.
//   2. A release round trip on loopback through a real server: challenge, evidence, release, and
//      opening the released key, against that round trip's bare cryptography done locally.
import { X509Certificate, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Decoder, Encoder } from 'cbor-x';
import { agreementHash, exampleAgreement, signAgreement } from '../src/agreement/index.js';
import {
  createSimAttester,
  createSimCa,
  evidenceBinding,
  produceSimEvidence,
  readCertificates,
  simCaFingerprint,
  simPlatformAttester,
  verifyEvidence,
  type VerifyEvidenceOptions,
} from '../src/attestation/index.js';
import { createClient, httpWorkerPort, proposeCollaboration, registerDataKey, signCollaboration } from '../src/client/index.js';
import { equalBytes, fromBase64Url, fromHex, hpkeOpen, hpkeSeal, signEd25519, verifyEd25519 } from '../src/crypto/index.js';
import { SIM_CA_FILE, createWorkerIdentity, readSimCa, registerWorker } from '../src/engine/index.js';
import { generatePartyKeys } from '../src/identity/index.js';
import { RELEASE_INFO, releaseAad } from '../src/keyrelease/index.js';
import { startServer } from '../src/server/index.js';
import type { JobRecord } from '../src/store/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const WARMUP_SECONDS = 0.25;
const ROUND_TRIP_WARMUP = 20;
const ROUND_TRIP_MIN = 200;
const VECTORS = new URL('../../shared/vectors/attestation/', import.meta.url);

const vector = (path: string): Uint8Array => new Uint8Array(readFileSync(new URL(path, VECTORS)));

// ---------------------------------------------------------------------------------------------
// Timing and printing

interface Rate {
  readonly ops: number;
  readonly seconds: number;
}

const perSecond = (rate: Rate): number => rate.ops / rate.seconds;
const microsPerOp = (rate: Rate): number => (rate.seconds * 1e6) / rate.ops;

/** Runs `op` for the warm-up, then in batches until SECONDS have passed; the batch keeps clock reads rare. */
async function measure(op: () => unknown, batch = 8): Promise<Rate> {
  const run = async (seconds: number): Promise<Rate> => {
    let ops = 0;
    const started = performance.now();
    let elapsed = 0;
    while (elapsed < seconds * 1000) {
      for (let i = 0; i < batch; i++) await op();
      ops += batch;
      elapsed = performance.now() - started;
    }
    return { ops, seconds: elapsed / 1000 };
  };
  await run(WARMUP_SECONDS);
  return run(SECONDS);
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

const grouped = (n: number): string => Math.round(n).toLocaleString('en');

function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

// ---------------------------------------------------------------------------------------------
// 1. Evidence verification against its bare signatures

/** One signature check, everything it needs parsed beforehand. */
type Check = () => boolean;

interface Case {
  readonly name: string;
  readonly evidence: Uint8Array;
  readonly options: VerifyEvidenceOptions;
  /** What the baseline verifies, for the table. */
  readonly signatures: string;
  readonly checks: readonly Check[];
}

const ecdsa =
  (hash: 'sha256' | 'sha384', data: Uint8Array, key: KeyObject, signature: Uint8Array): Check =>
  () =>
    verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);

/** Orders certificates root (self-issued) first, each followed by the one it issued. */
function rootFirst(certs: readonly X509Certificate[]): X509Certificate[] {
  const chain = certs.filter((c) => c.checkIssued(c)).slice(0, 1);
  const rest = certs.filter((c) => !chain.includes(c));
  while (rest.length > 0) {
    const top = chain[chain.length - 1];
    const next = rest.findIndex((c) => top !== undefined && c.checkIssued(top));
    if (next < 0) throw new Error('the certificates do not form one chain');
    chain.push(...rest.splice(next, 1));
  }
  return chain;
}

/** Every certificate's signature under its issuer's key, the root's under its own, as the verifiers check them. */
function chainChecks(chain: readonly X509Certificate[]): Check[] {
  return chain.map((cert, i) => {
    const issuerKey = (chain[i - 1] ?? cert).publicKey;
    return () => cert.verify(issuerKey);
  });
}

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
const cborOut = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });

/** Nitro and sim: the ES384 signature over the COSE Sig_structure and each certificate of cabundle + leaf. */
function coseChecks(document: Uint8Array): Check[] {
  const [protectedBytes, , payloadBytes, signature] = cbor.decode(document) as [Uint8Array, unknown, Uint8Array, Uint8Array];
  const payload = cbor.decode(payloadBytes) as Map<string, unknown>;
  const cabundle = payload.get('cabundle') as Uint8Array[];
  const chain = [...cabundle, payload.get('certificate') as Uint8Array].map((der) => new X509Certificate(der));
  // RFC 9052 §4.4: Sig_structure = ["Signature1", protected, external_aad = h'', payload].
  const toBeSigned = cborOut.encode(['Signature1', protectedBytes, new Uint8Array(0), payloadBytes]);
  const leafKey = (chain[chain.length - 1] as X509Certificate).publicKey;
  return [ecdsa('sha384', toBeSigned, leafKey, signature), ...chainChecks(chain)];
}

function nitroCase(): Case {
  const evidence = new Uint8Array(Buffer.from(Buffer.from(vector('nitro/nitro_attestation.b64')).toString('latin1').trim(), 'base64'));
  const checks = coseChecks(evidence);
  return {
    name: 'nitro',
    evidence,
    options: { format: 'nitro', at: new Date('2024-09-07T14:37:39.545Z') },
    signatures: `ES384 COSE + ${checks.length - 1} certs`,
    checks,
  };
}

/** SEV-SNP: ECDSA P-384 over bytes 0x000-0x29F under the VCEK, and the ARK -> ASK -> VCEK chain. */
function sevSnpCase(): Case {
  const report = vector('sev-snp/attestation.bin');
  const certificates = [...readCertificates(vector('sev-snp/vcek.der')), ...readCertificates(vector('sev-snp/ask_ark_milan.pem'))];
  const chain = rootFirst(certificates.map((der) => new X509Certificate(der)));
  // r and s are 72-byte little-endian integers at 0x2A0 and 0x2E8; P1363 wants 48 big-endian bytes each.
  const bigEndian = (at: number): Buffer => Buffer.from(report.subarray(at, at + 48)).reverse();
  const signature = Buffer.concat([bigEndian(0x2a0), bigEndian(0x2e8)]);
  const vcekKey = (chain[chain.length - 1] as X509Certificate).publicKey;
  return {
    name: 'sev-snp',
    evidence: report,
    options: { format: 'sev-snp', at: new Date('2024-01-01T00:00:00Z'), certificates },
    signatures: `P-384 report + ${chain.length} certs`,
    checks: [ecdsa('sha384', report.subarray(0, 0x2a0), vcekKey, signature), ...chainChecks(chain)],
  };
}

/** TDX v4: the quote under the attestation key, the QE report under the PCK, and the PCK chain. */
function tdxCase(): Case {
  const quote = vector('tdx/tdx_prod_quote_SPR_E4.dat');
  const b = Buffer.from(quote);
  if (b.readUInt16LE(0) !== 4) throw new Error('expected a version 4 quote');
  // Header (48) and TD report (584) are signed; then the signature data length (u32), the quote
  // signature (64), the attestation key (64), certification data type and size (6), the QE report.
  const signedEnd = 48 + 584;
  const sigStart = signedEnd + 4;
  const quoteSignature = b.subarray(sigStart, sigStart + 64);
  const keyRaw = b.subarray(sigStart + 64, sigStart + 128);
  const qeStart = sigStart + 128 + 6;
  const qeReport = b.subarray(qeStart, qeStart + 384);
  const qeSignature = b.subarray(qeStart + 384, qeStart + 448);
  const attestationKey = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: keyRaw.subarray(0, 32).toString('base64url'), y: keyRaw.subarray(32).toString('base64url') },
    format: 'jwk',
  });
  // The PCK chain is PEM inside the certification data: the PEM scan finds it in the whole quote.
  const chain = rootFirst(readCertificates(quote).map((der) => new X509Certificate(der)));
  const pckKey = (chain[chain.length - 1] as X509Certificate).publicKey;
  return {
    name: 'tdx',
    evidence: quote,
    options: { format: 'tdx', at: new Date('2023-07-01T00:00:00Z') },
    signatures: `2 P-256 + ${chain.length} certs`,
    checks: [ecdsa('sha256', b.subarray(0, signedEnd), attestationKey, quoteSignature), ecdsa('sha256', qeReport, pckKey, qeSignature), ...chainChecks(chain)],
  };
}

async function simCase(): Promise<Case> {
  const now = new Date();
  const ca = await createSimCa(now);
  const attester = await createSimAttester(ca, now);
  const evidence = produceSimEvidence(attester, { measurement: randomBytes(48), userData: randomBytes(32), publicKey: randomBytes(32), now });
  const checks = coseChecks(evidence);
  return {
    name: 'sim',
    evidence,
    options: { format: 'sim', at: now, rootFingerprints: [simCaFingerprint(ca)] },
    signatures: `ES384 COSE + ${checks.length - 1} certs`,
    checks,
  };
}

function verifiedOrThrow(c: Pick<Case, 'name' | 'evidence' | 'options'>): void {
  const verdict = verifyEvidence(c.evidence, c.options);
  if ('error' in verdict || !verdict.ok) throw new Error(`${c.name} evidence does not verify: ${JSON.stringify(verdict)}`);
}

async function evidenceBenchmark(): Promise<void> {
  const cases = [nitroCase(), sevSnpCase(), tdxCase(), await simCase()];
  const rows: string[][] = [];
  for (const c of cases) {
    verifiedOrThrow(c);
    if (!c.checks.every((check) => check())) throw new Error(`a ${c.name} baseline signature does not verify`);
    const full = await measure(() => {
      verifiedOrThrow(c);
    });
    const bare = await measure(() => {
      for (const check of c.checks) if (!check()) throw new Error(`a ${c.name} baseline signature failed`);
    });
    rows.push([
      c.name,
      grouped(perSecond(full)),
      microsPerOp(full).toFixed(1),
      c.signatures,
      grouped(perSecond(bare)),
      microsPerOp(bare).toFixed(1),
      `${(microsPerOp(full) / microsPerOp(bare)).toFixed(2)}x`,
    ]);
  }
  console.log(`\nEvidence verification per document (verifyEvidence), against its bare signatures (node:crypto, pre-parsed); ${SECONDS} s each`);
  printTable(['platform', 'verify/s', 'µs/verify', 'baseline = bare signatures', 'bare/s', 'µs/bare', 'verify/bare'], rows);
}

// ---------------------------------------------------------------------------------------------
// 2. Challenge -> evidence -> release -> open, through a real server on loopback

async function roundTripBenchmark(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'malus-bench-'));
  const server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false });
  try {
    // Parties, an active agreement pinning the server's sim measurement, and one registered data key.
    const adv = generatePartyKeys('bench advertiser');
    const pub = generatePartyKeys('bench publisher');
    const op = generatePartyKeys('bench operator');
    const agreement = exampleAgreement(
      { advertiser: adv.identity, publisher: pub.identity, operator: op.identity },
      { validFrom: new Date(Date.now() - 60_000), measurements: [server.simMeasurement] },
    );
    const hash = agreementHash(agreement);
    const advClient = createClient({ server: server.url, keys: adv });
    const pubClient = createClient({ server: server.url, keys: pub });
    const sign = (keys: typeof adv): ReturnType<typeof signAgreement> =>
      signAgreement(agreement, hash, { partyId: keys.identity.id, signingSecret: keys.signingSecret }, new Date());
    await proposeCollaboration(advClient, { agreement, signature: sign(adv) });
    await signCollaboration(pubClient, agreement.id, sign(pub));
    const table = agreement.tables.find((t) => t.owner === pub.identity.id);
    if (table === undefined) throw new Error('the example agreement has no publisher table');
    const dataset = 'bench-impressions';
    const dataKey = randomBytes(32);
    await registerDataKey(pubClient, { agreement, dataset, table: table.name, dataKey });

    // An enclave worker registered with evidence from the server's own development CA.
    const identity = createWorkerIdentity();
    const measurement = fromHex(server.simMeasurement);
    if (measurement === undefined) throw new Error('the server measurement is not hex');
    const simCa = readSimCa(join(dataDir, SIM_CA_FILE));
    const attester = simPlatformAttester(await createSimAttester(simCa, new Date()), measurement);
    const port = httpWorkerPort(createClient({ server: server.url, keys: identity.keys }));
    await registerWorker({ identity, attester, port, now: () => new Date() });

    const runningJob = async (): Promise<JobRecord> => {
      const now = new Date().toISOString();
      const job: JobRecord = {
        id: `job-${randomBytes(16).toString('hex')}`,
        collaborationId: agreement.id,
        agreementHash: hash,
        kind: 'key-check',
        spec: { kind: 'key-check', datasets: [dataset] },
        datasets: [dataset],
        measurements: [server.simMeasurement],
        state: 'running',
        submittedBy: adv.identity.id,
        workerId: identity.id,
        result: null,
        error: null,
        createdAt: now,
        updatedAt: now,
      };
      await server.store.jobs.create(job);
      return job;
    };

    /** One timed round trip, in ms; the job is made beforehand, outside the timing. */
    const roundTrip = async (): Promise<number> => {
      const job = await runningJob();
      const started = performance.now();
      const challenge = await port.releaseChallenge(undefined);
      const challengeBytes = fromBase64Url(challenge);
      if (challengeBytes === undefined) throw new Error('the challenge is not base64url');
      const binding = evidenceBinding({ enclavePublicKey: identity.encryption.publicKey, challenge: challengeBytes, agreementHash: hash });
      const { evidence, certificates } = await attester.attest({ binding, publicKey: identity.encryption.publicKey, now: new Date() });
      const released = await port.release(undefined, {
        collaborationId: agreement.id,
        jobId: job.id,
        challenge,
        platform: attester.platform,
        evidence,
        certificates,
        encryptionKey: identity.encryption.publicKey,
      });
      const sealed = released.find((k) => k.dataset === dataset)?.sealed;
      const key = sealed === undefined ? undefined : await hpkeOpen(identity.encryption.secretKey, sealed, RELEASE_INFO, releaseAad({ jobId: job.id, datasetId: dataset, agreementHash: hash }));
      const elapsed = performance.now() - started;
      if (key === undefined || !equalBytes(key, dataKey)) throw new Error('the released key does not open to the registered one');
      return elapsed;
    };

    for (let i = 0; i < ROUND_TRIP_WARMUP; i++) await roundTrip();
    const latencies: number[] = [];
    const started = performance.now();
    while (latencies.length < ROUND_TRIP_MIN || performance.now() - started < SECONDS * 1000) latencies.push(await roundTrip());
    const timedMs = latencies.reduce((sum, ms) => sum + ms, 0);
    const sorted = [...latencies].sort((a, b) => a - b);
    const meanMs = timedMs / latencies.length;

    // Baseline, same run: the round trip's cryptography, local, without HTTP or the store: one sim
    // evidence verification, one HPKE seal and open, two Ed25519 request signatures and verifications.
    const localBinding = evidenceBinding({ enclavePublicKey: identity.encryption.publicKey, challenge: randomBytes(32), agreementHash: hash });
    const localEvidence = (await attester.attest({ binding: localBinding, publicKey: identity.encryption.publicKey, now: new Date() })).evidence;
    const trust = { format: 'sim', rootFingerprints: [simCaFingerprint(simCa)] } as const;
    const aad = releaseAad({ jobId: `job-${'0'.repeat(32)}`, datasetId: dataset, agreementHash: hash });
    // Stand-ins for the two signature bases (RFC 9421), about the size the client signs.
    const requests = [randomBytes(400), randomBytes(400)];
    const bare = await measure(async () => {
      verifiedOrThrow({ name: 'sim', evidence: localEvidence, options: { ...trust, at: new Date() } });
      const opened = await hpkeOpen(identity.encryption.secretKey, await hpkeSeal(identity.encryption.publicKey, dataKey, RELEASE_INFO, aad), RELEASE_INFO, aad);
      if (opened === undefined) throw new Error('the baseline HPKE seal does not open');
      for (const message of requests) {
        if (!verifyEd25519(identity.signing.publicKey, message, signEd25519(identity.signing.secretKey, message))) throw new Error('Ed25519 failed');
      }
    }, 4);
    const bareMs = (bare.seconds * 1000) / bare.ops;

    console.log(`\nRelease round trip on loopback (challenge -> attest -> release -> HPKE open), ${latencies.length} round trips after ${ROUND_TRIP_WARMUP} warm-up`);
    printTable(
      ['measurement', 'ops/s', 'ms/op', 'median ms', 'p95 ms'],
      [
        ['round trip over HTTP', grouped(1000 / meanMs), meanMs.toFixed(3), quantile(sorted, 0.5).toFixed(3), quantile(sorted, 0.95).toFixed(3)],
        ['baseline bare crypto', grouped(perSecond(bare)), bareMs.toFixed(3), '', ''],
      ],
    );
    console.log('baseline = verifyEvidence(sim) + HPKE seal + open + 2 x (Ed25519 sign + verify), local');
    console.log(`ratio round trip / bare crypto: ${(meanMs / bareMs).toFixed(2)}x (mean), ${(quantile(sorted, 0.5) / bareMs).toFixed(2)}x (median)`);
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await evidenceBenchmark();
await roundTripBenchmark();
