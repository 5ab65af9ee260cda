// Section 2 of bench/ingest.bench.ts, run in a process of its own: the enclave worker that loads
// datasets never prepares one, so the load is timed in a process that has done nothing else (in the
// parent, after five prepares, every stage runs slower for reasons of that process's own heap).
// Reads its input as JSON on stdin, prints its figures as JSON on stdout.
import { createReadStream, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Table } from '../src/agreement/index.js';
import { loadDataset, openDataset, openIngestDb, type DatasetManifest } from '../src/ingest/index.js';

interface LoadBenchInput {
  readonly ciphertext: string;
  readonly keyHex: string;
  readonly manifest: DatasetManifest;
  readonly table: Table;
  readonly runs: number;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LoadBenchInput;
const key = Buffer.from(input.keyHex, 'hex');
// As the enclave worker does for each job, every load goes into a DuckDB of its own, and so does
// every baseline read; opening and closing it is not timed.
// The baseline reads the very Parquet bytes the dataset holds, decrypted once, untimed.
const plainParquet = join('/dev/shm', `malus-bench-${randomBytes(4).toString('hex')}.parquet`);
const plaintext: Buffer[] = [];
for await (const piece of openDataset(createReadStream(input.ciphertext, { highWaterMark: 1 << 20 }), key)) plaintext.push(piece);
writeFileSync(plainParquet, Buffer.concat(plaintext), { mode: 0o600 });
plaintext.length = 0;
const loads: number[] = [];
const bares: number[] = [];
try {
  for (let run = 0; run < input.runs; run += 1) {
    const loadDb = await openIngestDb();
    loads.push(
      await timed(async () => {
        await loadDataset({ connection: loadDb.connection, source: createReadStream(input.ciphertext, { highWaterMark: 1 << 20 }), key, manifest: input.manifest, table: input.table });
      }),
    );
    loadDb.close();
    const bareDb = await openIngestDb();
    bares.push(
      await timed(async () => {
        await bareDb.connection.run(`CREATE TABLE bare AS SELECT * FROM read_parquet('${plainParquet}')`);
      }),
    );
    bareDb.close();
  }
} finally {
  rmSync(plainParquet, { force: true });
  key.fill(0);
}
process.stdout.write(JSON.stringify({ loads, bares }));
