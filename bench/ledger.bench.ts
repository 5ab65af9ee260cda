// Transparency-log benchmarks (`npm run bench:ledger`). Each figure is printed next to a baseline
// measured in the same run; nothing here is asserted.
//
//   1. Durable appends through the server's group-committing log on SQLite (synchronous=FULL), with
//      the checkpointer signing every second, against raw SHA-256 leaf hashing of the same entries.
//   2. Inclusion proof generation and verification at 1,000,000 entries.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MerkleTree, leafHash, verifyInclusion, type LogEvent } from '../src/ledger/index.js';
import { loadOrCreateLogKey, openTransparencyLog, toLogAppend } from '../src/server/index.js';
import { openSqliteStore } from '../src/store/index.js';

const APPEND_SECONDS = Number(process.env.BENCH_APPEND_SECONDS ?? 5);
const CONCURRENT_CALLERS = 256;

function event(i: number): LogEvent {
  return {
    format: 'malus.event/v1',
    type: 'agreement.signed',
    collaboration: 'bench-collaboration',
    actor: { kind: 'party', id: '0123456789abcdef0123' },
    time: new Date(1_700_000_000_000 + i).toISOString(),
    agreement: `sha256:${i.toString(16).padStart(64, '0')}`,
    version: 1,
    signer: '0123456789abcdef0123',
  };
}

async function appendBenchmark(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'malus-bench-'));
  const store = openSqliteStore({ path: join(dir, 'malus.db') });
  const now = () => new Date();
  const log = await openTransparencyLog({ store, key: loadOrCreateLogKey(dir, 'bench.malus/log', now()), now, checkpointIntervalMs: 1000 });
  log.start();
  let appended = 0;
  const deadline = performance.now() + APPEND_SECONDS * 1000;
  const started = performance.now();
  // Many callers, each waiting for its own durable acknowledgement before sending the next entry.
  await Promise.all(
    Array.from({ length: CONCURRENT_CALLERS }, async () => {
      while (performance.now() < deadline) {
        await log.append([event(appended)]);
        appended += 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await log.stop();
  const checkpoints = (await store.log.listCheckpoints()).length;
  const appendRate = appended / seconds;

  // Baseline, same run: RFC 9162 leaf hashing of the same entries' bytes, in memory, nothing else.
  const encoded = Array.from({ length: 100_000 }, (_, i) => toLogAppend(event(i)).data);
  const leafStarted = performance.now();
  for (const bytes of encoded) leafHash(bytes);
  const leafRate = encoded.length / ((performance.now() - leafStarted) / 1000);

  console.log(`durable appends: ${appendRate.toFixed(0)} entries/s over ${seconds.toFixed(1)} s (${appended} entries, ${checkpoints} checkpoints, ${CONCURRENT_CALLERS} concurrent callers, SQLite synchronous=FULL)`);
  console.log(`baseline raw SHA-256 leaf hashing: ${leafRate.toFixed(0)} leaves/s`);
  console.log(`ratio append / raw leaf hashing: ${(appendRate / leafRate).toFixed(4)}`);
  console.log(`target >= 10,000 entries/s: ${appendRate >= 10_000 ? 'met' : 'NOT met'}`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

function proofBenchmark(): void {
  const size = 1_000_000;
  const tree = new MerkleTree();
  const built = performance.now();
  const batch: Uint8Array[] = [];
  for (let i = 0; i < size; i++) batch.push(randomBytes(32));
  const hashed = performance.now();
  tree.appendMany(batch);
  const buildMs = performance.now() - hashed;
  const root = tree.root();
  const samples = 20_000;
  const indexes = Array.from({ length: samples }, () => Math.floor(Math.random() * size));
  const proofs: Uint8Array[][] = [];
  const genStarted = performance.now();
  for (const index of indexes) proofs.push(tree.inclusionProof(index, size));
  const genMs = (performance.now() - genStarted) / samples;
  const verifyStarted = performance.now();
  let failures = 0;
  indexes.forEach((index, i) => {
    const result = verifyInclusion({ index, size, leafHash: tree.leafHash(index), proof: proofs[i] ?? [], root });
    if (!result.ok) failures += 1;
  });
  const verifyMs = (performance.now() - verifyStarted) / samples;
  // Baseline: one SHA-256 node hash, the unit both operations are made of.
  const hashStarted = performance.now();
  const left = randomBytes(32);
  for (let i = 0; i < samples; i++) leafHash(left);
  const hashMs = (performance.now() - hashStarted) / samples;
  console.log(`tree of ${size.toLocaleString('en')} leaves built in ${buildMs.toFixed(0)} ms (random leaves made in ${(hashed - built).toFixed(0)} ms)`);
  console.log(`inclusion proof generation at 1M: ${(genMs * 1000).toFixed(2)} µs per proof (target < 1000 µs), ${proofs[0]?.length ?? 0} hashes`);
  console.log(`inclusion proof verification at 1M: ${(verifyMs * 1000).toFixed(2)} µs per proof (target < 100 µs), ${failures} failures`);
  console.log(`baseline one SHA-256 hash: ${(hashMs * 1000).toFixed(2)} µs; verification = ${(verifyMs / hashMs).toFixed(1)} hashes' worth`);
}

await appendBenchmark();
proofBenchmark();
