// PSI benchmarks (`npm run bench:psi`). Every figure is printed next to a baseline measured in the
// same run; nothing is asserted beyond every result being right.
//
//   1. The group operations: libsodium (WebAssembly) against @noble/curves (pure JS).
//   2. The machine limit: per element, 4 scalar multiplications and 2 hash-to-group (what a
//      balanced element of ECDH-PSI needs at least), done by themselves in a tight loop, on one
//      thread and on every core.
//   3. PSI cardinality, N x N (default 100,000) in one process, both roles, every message through
//      its binary form: elements/s (N / wall time) and bytes/element (all messages / N), raw and
//      Golomb-coded, against the limit.
//   4. OpenMined PSI (@openmined/psi.js, P-256, its default GCS) on 10,000 x 10,000, installed
//      into a scratch folder with --ignore-scripts, against this PSI on the same sizes.
//   5. The sum mode, and exponential ElGamal against Paillier (2048-bit), the costs behind its choice.
//
// BENCH_PSI_N (default 100000), BENCH_PSI_OM_N (10000), BENCH_PSI_SUM_N (10000) and
// BENCH_PSI_THREADS (default: the cores) change the sizes.
import { execFileSync } from 'node:child_process';
import { generatePrimeSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import { toHex } from '../src/crypto/index.js';
import {
  createPsiPool,
  decodeExpected,
  encodeMessage,
  psiDst,
  psiGroup,
  receiverRequest,
  receiverResult,
  receiverSumRequest,
  receiverSumResult,
  senderReply,
  senderSumReply,
  type KernelExecutor,
  type PsiMode,
  type SetEncoding,
} from '../src/psi/index.js';

const N = Number(process.env.BENCH_PSI_N ?? 100_000);
const OM_N = Number(process.env.BENCH_PSI_OM_N ?? 10_000);
const SUM_N = Number(process.env.BENCH_PSI_SUM_N ?? 10_000);
const THREADS = Number(process.env.BENCH_PSI_THREADS ?? availableParallelism());
const LIMIT_SAMPLE = 2000;
const context = { collaborationId: '00000000-1111-2222-3333-444444444444', runId: 'bench' };

const fmt = (n: number, digits = 0): string => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const seconds = (started: number): number => (performance.now() - started) / 1000;
const line = (label: string, value: string, baseline = ''): void => {
  console.log(`  ${label.padEnd(60)} ${value.padStart(18)}${baseline === '' ? '' : `   ${baseline}`}`);
};

const group = await psiGroup();
const sodium = group.sodium;
console.log(`PSI benchmark: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`(the load average counts other work on this machine; it slows every figure alike)\n`);

// ---------------------------------------------------------------------------------------------
// 1. The group operations

function perOp(op: () => unknown, count: number): number {
  for (let i = 0; i < Math.min(50, count); i++) op();
  const started = performance.now();
  for (let i = 0; i < count; i++) op();
  return ((performance.now() - started) * 1000) / count;
}

const dst = psiDst(context);
const hash = group.hasher(dst);
const uniform = group.uniformer(dst);
const scalar = group.randomScalar();
let point = sodium.crypto_core_ristretto255_random();
const message = new TextEncoder().encode('alice@example.com');
const sodiumMul = perOp(() => (point = sodium.crypto_scalarmult_ristretto255(scalar, point)), 2000);
const wide = uniform(message);
const sodiumMap = perOp(() => sodium.crypto_core_ristretto255_from_hash(wide), 2000);
const expand = perOp(() => uniform(message), 5000);
const sodiumHash = perOp(() => hash(message), 2000);
const nobleK = BigInt(`0x${toHex(randomBytes(31))}`);
let noblePoint = ristretto255.Point.fromBytes(point);
const nobleMul = perOp(() => (noblePoint = noblePoint.multiply(nobleK)), 200);
const nobleHash = perOp(() => ristretto255_hasher.hashToCurve(message, { DST: dst }), 200);
if (toHex(ristretto255_hasher.hashToCurve(message, { DST: dst }).toBytes()) !== toHex(hash(message))) throw new Error('libsodium and noble hash differently');
console.log('1. ristretto255 operations, one thread (us per op)');
line('scalar multiplication, libsodium', fmt(sodiumMul, 1), `noble ${fmt(nobleMul, 1)} (${fmt(nobleMul / sodiumMul, 1)}x slower)`);
line('hash-to-group, libsodium + our expand_message_xmd', fmt(sodiumHash, 1), `noble ${fmt(nobleHash, 1)} (${fmt(nobleHash / sodiumHash, 1)}x slower)`);
line('  of which expand_message_xmd (2 SHA-512)', fmt(expand, 1));
line('  of which the RFC 9496 map (from_hash)', fmt(sodiumMap, 1));
console.log('  (the hashes agree with noble, as test/psi/group.test.ts checks on RFC vectors)\n');

// ---------------------------------------------------------------------------------------------
// 2. The machine limit

// A tight loop of what one balanced element needs: 2 x (expand_message_xmd's two SHA-512 calls,
// the map, a multiplication) + 2 multiplications, with libsodium and nothing else.
const LIMIT_WORKER = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const s = require(workerData.sodium);
s.ready.then(() => {
  const k = s.crypto_core_ristretto255_scalar_random();
  const msg = new Uint8Array(128 + 17 + 3 + ${dst.length + 1});
  const block = new Uint8Array(64 + 1 + ${dst.length + 1});
  let p = s.crypto_core_ristretto255_random();
  const run = (n) => {
    for (let i = 0; i < n; i++) {
      for (let h = 0; h < 2; h++) {
        msg[130] = i; msg[131] = h;
        block.set(s.crypto_hash_sha512(msg));
        p = s.crypto_scalarmult_ristretto255(k, s.crypto_core_ristretto255_from_hash(s.crypto_hash_sha512(block)));
      }
      p = s.crypto_scalarmult_ristretto255(k, s.crypto_scalarmult_ristretto255(k, p));
    }
  };
  run(20);
  parentPort.postMessage('ready');
  parentPort.on('message', (n) => { const t = performance.now(); run(n); parentPort.postMessage(performance.now() - t); });
});
`;

async function machineLimit(threads: number, perThread: number): Promise<number> {
  const sodiumPath = createRequire(import.meta.url).resolve('libsodium-wrappers-sumo');
  const workers = Array.from({ length: threads }, () => new Worker(LIMIT_WORKER, { eval: true, workerData: { sodium: sodiumPath } }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
  const started = performance.now();
  await Promise.all(
    workers.map(
      (w) =>
        new Promise((resolve) => {
          w.once('message', resolve);
          w.postMessage(perThread);
        }),
    ),
  );
  const wall = seconds(started);
  await Promise.all(workers.map((w) => w.terminate()));
  return (threads * perThread) / wall;
}

// Measured before and after the PSI runs of section 3; the figures use the mean, so a change in
// the machine's other load during the run moves both alike.
const limitBefore = [await machineLimit(1, LIMIT_SAMPLE), await machineLimit(THREADS, LIMIT_SAMPLE)] as const;
let limit1 = limitBefore[0];
let limitAll = limitBefore[1];
console.log('2. The machine limit: 4 multiplications + 2 hash-to-group per balanced element, by themselves');
line('one thread (before section 3)', `${fmt(limit1)} el/s`, `(${fmt(1e6 / limit1)} us per element)`);
line(`${THREADS} threads (before section 3)`, `${fmt(limitAll)} el/s`, `(${fmt(limitAll / limit1, 2)}x one thread)`);
console.log('');

// ---------------------------------------------------------------------------------------------
// 3. PSI cardinality

interface Run {
  readonly seconds: number;
  readonly bytes: number;
  readonly size: number;
  readonly falsePositiveRate: number;
  readonly steps: readonly number[];
}

/** A whole run, both roles, through the binary messages; the steps are timed one by one. */
async function psi(x: readonly string[], y: readonly string[], mode: PsiMode, setEncoding: SetEncoding, executor: KernelExecutor | undefined, values?: readonly number[]): Promise<Run> {
  const step = executor === undefined ? {} : { executor };
  const steps: number[] = [];
  const started = performance.now();
  let t = performance.now();
  const r = await receiverRequest(x, { context, mode, setEncoding, ...step });
  const request = decodeExpected(encodeMessage(r.request), 'request');
  steps.push(seconds(t));
  t = performance.now();
  const s = await senderReply(request, y, { context, modes: [mode], ...(values === undefined ? {} : { values }), ...step });
  const reply = decodeExpected(encodeMessage(s.reply), 'reply');
  steps.push(seconds(t));
  t = performance.now();
  if (mode !== 'sum') {
    const result = await receiverResult(r.state, reply, step);
    steps.push(seconds(t));
    return { seconds: seconds(started), bytes: result.bytes.total, size: result.size, falsePositiveRate: result.falsePositiveRate, steps };
  }
  const asked = await receiverSumRequest(r.state, reply, step);
  const shared = await senderSumReply(s.state, decodeExpected(encodeMessage(asked.request), 'sum-request'));
  steps.push(seconds(t));
  t = performance.now();
  const result = await receiverSumResult(asked.state, decodeExpected(encodeMessage(shared), 'sum-reply'), step);
  steps.push(seconds(t));
  if (result.sum < 0n) throw new Error('no sum');
  return { seconds: seconds(started), bytes: result.bytes.total, size: result.size, falsePositiveRate: 0, steps };
}

/** Two sets of n with half in common. */
function sets(n: number): { x: string[]; y: string[] } {
  return {
    x: Array.from({ length: n }, (_, i) => `customer-${i}@example.com`),
    y: Array.from({ length: n }, (_, i) => `customer-${i + Math.floor(n / 2)}@example.com`),
  };
}

const pool = await createPsiPool(THREADS);
{
  const { x, y } = sets(N);
  const runs: [SetEncoding, Run][] = [];
  for (const setEncoding of ['raw', 'gcs'] as const) {
    const run = await psi(x, y, 'cardinality', setEncoding, pool);
    if (run.size !== Math.ceil(N / 2)) throw new Error(`wrong size ${run.size}`);
    runs.push([setEncoding, run]);
  }
  const N1 = Math.min(N, 20_000);
  const small = sets(N1);
  const single = await psi(small.x, small.y, 'cardinality', 'raw', undefined);
  const after = [await machineLimit(1, LIMIT_SAMPLE), await machineLimit(THREADS, LIMIT_SAMPLE)] as const;
  limit1 = (limitBefore[0] + after[0]) / 2;
  limitAll = (limitBefore[1] + after[1]) / 2;
  console.log(`   limit after section 3: ${fmt(after[0])} el/s one thread, ${fmt(after[1])} el/s ${THREADS} threads; below, the mean of before and after`);
  console.log(`3. PSI cardinality, ${fmt(N)} x ${fmt(N)}, both roles in this process, ${THREADS} threads`);
  for (const [setEncoding, run] of runs) {
    const rate = N / run.seconds;
    line(`${setEncoding}: elements/s`, `${fmt(rate)} el/s`, `limit ${fmt(limitAll)} (${fmt(limitAll / rate, 2)}x the limit's time)`);
    line(`${setEncoding}: bytes/element`, fmt(run.bytes / N, 2), setEncoding === 'gcs' ? `false positives at most ${run.falsePositiveRate.toExponential(2)} per run` : 'exact');
    line(`${setEncoding}: request / reply / result (s)`, run.steps.map((t) => fmt(t, 1)).join(' / '), `total ${fmt(run.seconds, 1)} s`);
  }
  const rate = N1 / single.seconds;
  line(`raw, one thread, ${fmt(N1)} x ${fmt(N1)}: elements/s`, `${fmt(rate)} el/s`, `limit ${fmt(limit1)} (${fmt(limit1 / rate, 2)}x the limit's time)`);
  console.log('');
}

// ---------------------------------------------------------------------------------------------
// 4. OpenMined PSI

interface OmMessage {
  serializeBinary(): Uint8Array;
}
interface OmLibrary {
  readonly server: { createWithNewKey(reveal: boolean): { createSetupMessage(fpr: number, n: number, inputs: readonly string[], ds: number): OmMessage; processRequest(r: OmMessage): OmMessage; delete(): void } };
  readonly client: { createWithNewKey(reveal: boolean): { createRequest(inputs: readonly string[]): OmMessage; getIntersectionSize(setup: OmMessage, response: OmMessage): number; delete(): void } };
  readonly dataStructure: { readonly GCS: number };
  readonly request: { deserializeBinary(b: Uint8Array): OmMessage };
  readonly response: { deserializeBinary(b: Uint8Array): OmMessage };
  readonly serverSetup: { deserializeBinary(b: Uint8Array): OmMessage };
}

async function loadOpenMined(): Promise<OmLibrary> {
  const dir = join(tmpdir(), 'malus-bench-openmined');
  if (!existsSync(join(dir, 'node_modules', '@openmined', 'psi.js', 'package.json'))) {
    // --ignore-scripts: its install script downloads from the web; it never enters package.json.
    execFileSync('npm', ['install', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, '@openmined/psi.js'], { stdio: 'ignore', timeout: 180_000 });
  }
  const load = createRequire(join(dir, 'package.json'))('@openmined/psi.js') as () => Promise<OmLibrary>;
  return load();
}

console.log(`4. Against OpenMined PSI (@openmined/psi.js), cardinality, ${fmt(OM_N)} x ${fmt(OM_N)}`);
{
  const { x, y } = sets(OM_N);
  const oursAll = await psi(x, y, 'cardinality', 'gcs', pool);
  const ours1 = await psi(x, y, 'cardinality', 'gcs', undefined);
  let om: { seconds: number; bytes: number } | undefined;
  try {
    const lib = await loadOpenMined();
    const started = performance.now();
    const server = lib.server.createWithNewKey(false);
    const client = lib.client.createWithNewKey(false);
    const setup = server.createSetupMessage(1e-9, OM_N, y, lib.dataStructure.GCS).serializeBinary();
    const request = client.createRequest(x).serializeBinary();
    const response = server.processRequest(lib.request.deserializeBinary(request)).serializeBinary();
    const size = client.getIntersectionSize(lib.serverSetup.deserializeBinary(setup), lib.response.deserializeBinary(response));
    om = { seconds: seconds(started), bytes: setup.length + request.length + response.length };
    server.delete();
    client.delete();
    if (Math.abs(size - Math.ceil(OM_N / 2)) > 1) throw new Error(`OpenMined gave ${size}`);
  } catch (error) {
    console.log(`  OpenMined PSI could not be installed or run here (${error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error)}); skipping it`);
  }
  const omRate = om === undefined ? Number.NaN : OM_N / om.seconds;
  if (om !== undefined) line('OpenMined (P-256, GCS, fpr 1e-9, one thread)', `${fmt(omRate)} el/s`, `${fmt(om.bytes / OM_N, 2)} bytes/element (the baseline)`);
  for (const [label, run] of [[`ours (ristretto255, GCS, 2^-30), ${THREADS} threads`, oursAll], ['ours (ristretto255, GCS, 2^-30), one thread', ours1]] as const) {
    const rate = OM_N / run.seconds;
    line(label, `${fmt(rate)} el/s`, `${fmt(run.bytes / OM_N, 2)} bytes/element${om === undefined ? '' : `, ${fmt(rate / omRate, 2)}x OpenMined`}`);
  }
}
console.log('');

// ---------------------------------------------------------------------------------------------
// 5. The sum mode, and ElGamal against Paillier

console.log(`5. Intersection-sum, ${fmt(SUM_N)} x ${fmt(SUM_N)}, ${THREADS} threads, sums below 2^32`);
{
  const { x, y } = sets(SUM_N);
  const values = y.map((_, i) => i % 10_000);
  // The first solve builds the 2^16 baby steps; the figure below is a second run that reuses them.
  const first = await psi(x, y, 'sum', 'raw', pool, values);
  const run = await psi(x, y, 'sum', 'raw', pool, values);
  const rate = SUM_N / run.seconds;
  const card = await psi(x, y, 'cardinality', 'raw', pool);
  line('elements/s', `${fmt(rate)} el/s`, `cardinality raw ${fmt(SUM_N / card.seconds)} el/s`);
  line('bytes/element', fmt(run.bytes / SUM_N, 2), `cardinality raw ${fmt(card.bytes / SUM_N, 2)}`);
  line('request / reply / sum share / discrete log (s)', run.steps.map((s) => fmt(s, 2)).join(' / '), `first run ${fmt(first.seconds, 1)} s (with the baby steps)`);
}

// Paillier, 2048-bit n, g = n + 1, for the comparison only (a textbook implementation on BigInt).
function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if ((e & 1n) === 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}
const p = generatePrimeSync(1024, { bigint: true });
const q = generatePrimeSync(1024, { bigint: true });
const n = p * q;
const n2 = n * n;
const lambda = (p - 1n) * (q - 1n);
const mu = modPow(lambda % n, lambda - 1n, n); // λ^-1 mod n, by Euler (gcd(λ, n) = 1)
const randomBelow = (m: bigint): bigint => BigInt(`0x${toHex(randomBytes(264))}`) % m;
const paillierEncrypt = (m: bigint): bigint => ((1n + m * n) * modPow(randomBelow(n), n, n2)) % n2;
const c1 = paillierEncrypt(12_345n);
const c2 = paillierEncrypt(54_321n);
const paillierEnc = perOp(() => paillierEncrypt(42n), 8);
const paillierAdd = perOp(() => (c1 * c2) % n2, 2000);
let opened = 0n;
const paillierDec = perOp(() => (opened = ((((modPow((c1 * c2) % n2, lambda, n2) - 1n) / n) * mu) % n)), 8);
if (opened !== 66_666n) throw new Error('Paillier does not add');

const key = { secret: group.randomScalar(), publicKey: new Uint8Array(32) };
const elgamalEnc = perOp(() => {
  const r = group.randomScalar();
  group.mulBase(r);
  group.mulBase(group.addScalars(group.scalarFromInteger(42n), group.mulScalars(r, key.secret)));
}, 500);
const a = sodium.crypto_core_ristretto255_random();
const b = sodium.crypto_core_ristretto255_random();
const elgamalAdd = perOp(() => {
  sodium.crypto_core_ristretto255_add(a, b);
  sodium.crypto_core_ristretto255_add(b, a);
}, 1000);
console.log('  exponential ElGamal (ristretto255) against Paillier (2048-bit n), one thread, us per op:');
line('encrypt one value (sender)', fmt(elgamalEnc, 0), `Paillier ${fmt(paillierEnc, 0)} (${fmt(paillierEnc / elgamalEnc, 0)}x)`);
line('add two ciphertexts (receiver, per match)', fmt(elgamalAdd, 1), `Paillier ${fmt(paillierAdd, 1)}`);
// With the 2^16 baby steps built (once per process, 2^16 additions), a solve below 2^32 walks at most 2^16 giant steps.
line('decrypt the sum (share + dlog < 2^32, worst case)', fmt(sodiumMul + 65_536 * (elgamalAdd / 2), 0), `Paillier ${fmt(paillierDec, 0)}`);
line('ciphertext bytes', '64', 'Paillier 512');
line('encrypt 100,000 values (sender, one thread)', `${fmt(elgamalEnc / 10, 1)} s`, `Paillier ${fmt(paillierEnc / 10, 0)} s`);
await pool.close();
