import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, getLogEntries, getReceipt } from '../../src/client/index.js';
import { readKeyFile } from '../../src/identity/index.js';
import { openCheckpoint, parseVerifierKey } from '../../src/ledger/index.js';
import { assertFreshBuild, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus log …` and `malus verify` against real servers on loopback, including a forked log.

let dir: string;
let server: ServerProcess | undefined;
const others: ServerProcess[] = [];
let url = '';
let logKey = '';
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 30_000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The log key a server announces on standard error right after it starts listening. */
async function announcedKey(serverProcess: ServerProcess): Promise<string> {
  for (let i = 0; i < 100 && !serverProcess.stderr().includes('transparency log'); i++) await sleep(20);
  return /transparency log .* key (\S+)/.exec(serverProcess.stderr())?.[1] ?? '';
}

async function checkpointOf(base: string) {
  const note = await (await fetch(`${base}/v1/log/checkpoint`)).text();
  const opened = openCheckpoint(note, parseVerifierKey(logKey)!);
  if (!opened.ok) throw new Error(opened.reason);
  return opened.checkpoint;
}

async function propose(base: string, id: string): Promise<void> {
  const file = `${id}.yaml`;
  expect((await run(['agreement', 'init', '--id', id, '--out', file, '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  const proposed = await run(['collab', 'propose', file, '--server', base, '--key', 'adv.json']);
  expect(proposed.code, proposed.stderr).toBe(0);
}

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir('malus-cli-log-');
  for (const name of ['adv', 'pub', 'op']) expect((await run(['keygen', '--name', name, '--out', `${name}.json`])).code).toBe(0);
  server = await startServe(join(dir, 'a'), dir);
  url = server.url;
  logKey = await announcedKey(server);
  expect(parseVerifierKey(logKey)).toBeDefined();
  await propose(url, 'campaign-measurement');
  const signed = await run(['collab', 'sign', 'campaign-measurement', '--server', url, '--key', 'pub.json']);
  expect(signed.code, signed.stderr).toBe(0);
  await sleep(1200); // one checkpoint interval
});

afterAll(async () => {
  await server?.kill();
  for (const other of others) await other.kill();
  removeDir(dir);
});

describe('malus log checkpoint', () => {
  it('prints the signed checkpoint, and verifies it with --log-key', async () => {
    const plain = await run(['log', 'checkpoint', '--server', url]);
    expect(plain.code).toBe(0);
    expect(plain.stdout.split('\n')[0]).toBe(parseVerifierKey(logKey)?.name);
    expect((await run(['log', 'checkpoint', '--server', url, '--log-key', logKey])).code).toBe(0);
  });

  it('exits 1 under another log key and 2 on a malformed one', async () => {
    const other = logKey.replace(/\+([0-9a-f]{8})\+/, '+00000000+');
    expect((await run(['log', 'checkpoint', '--server', url, '--log-key', other])).code).toBe(2);
    const otherLog = await startServe(join(dir, 'elsewhere'), dir);
    others.push(otherLog);
    const foreignKey = await announcedKey(otherLog);
    const refused = await run(['log', 'checkpoint', '--server', url, '--log-key', foreignKey]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('checkpoint does not verify');
  });
});

describe('malus log verify-inclusion and verify-consistency', () => {
  it('exit 0 on proofs from the API (hex or base64), 1 on a flipped byte, 2 on bad usage', async () => {
    const checkpoint = await checkpointOf(url);
    const size = checkpoint.size;
    const root = Buffer.from(checkpoint.root).toString('base64');
    const inclusion = (await (await fetch(`${url}/v1/log/proof/inclusion?index=1&size=${size}`)).json()) as { leafHash: string; proof: string[] };
    const args = ['log', 'verify-inclusion', '--index', '1', '--size', String(size), '--root', root];
    expect((await run([...args, '--leaf-hash', inclusion.leafHash, '--proof', inclusion.proof.join(',')])).code).toBe(0);
    const hexLeaf = Buffer.from(inclusion.leafHash, 'base64').toString('hex');
    expect((await run([...args, '--leaf-hash', hexLeaf, '--proof', inclusion.proof.join(',')])).stdout).toBe('inclusion proof is valid\n');
    const flipped = Buffer.from(inclusion.proof[0] ?? '', 'base64');
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    const bad = await run([...args, '--leaf-hash', inclusion.leafHash, '--proof', [flipped.toString('base64'), ...inclusion.proof.slice(1)].join(',')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('inclusion proof is invalid (root-mismatch)');
    expect((await run(['log', 'verify-inclusion', '--index', 'one', '--size', '4', '--root', root, '--leaf-hash', root, '--proof', ''])).code).toBe(2);
    expect((await run([...args, '--leaf-hash', 'ab'.repeat(31), '--proof', ''])).code).toBe(2);

    const consistency = (await (await fetch(`${url}/v1/log/proof/consistency?from=2&to=${size}`)).json()) as { proof: string[] };
    const root2 = Buffer.from((await (await fetch(`${url}/v1/log/tile/0/000.p/2`)).arrayBuffer()));
    // The root at size 2 is the hash of its two leaves' node.
    const { nodeHash } = await import('../../src/ledger/index.js');
    const root1 = Buffer.from(nodeHash(root2.subarray(0, 32), root2.subarray(32, 64))).toString('base64');
    const cargs = ['log', 'verify-consistency', '--size1', '2', '--size2', String(size), '--root1', root1, '--root2', root];
    expect((await run([...cargs, '--proof', consistency.proof.join(',')])).code).toBe(0);
    expect((await run([...cargs, '--proof', consistency.proof.slice(1).join(',')])).code).toBe(1);
  });
});

describe('malus log witness, audit and verify', () => {
  it('cosigns, keeps state, and cosigns again after the log grew', async () => {
    const first = await run(['log', 'witness', '--server', url, '--key', 'adv.json', '--log-key', logKey]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^cosigned: \S+ size \d+ root \S+ as malus-witness-[0-9a-f]{20}\n$/);
    expect(existsSync(join(dir, 'adv.json.witness.json'))).toBe(true);
    await propose(url, 'second-collaboration');
    await sleep(1200);
    const second = await run(['log', 'witness', '--server', url, '--key', 'adv.json']);
    expect(second.code, second.stderr).toBe(0);
    const sizeOf = (text: string) => Number(/size (\d+)/.exec(text)?.[1]);
    expect(sizeOf(second.stdout)).toBeGreaterThan(sizeOf(first.stdout));
    expect((await run(['log', 'witness', '--server', url, '--key', 'pub.json'])).code).toBe(0);
  });

  it('audits the log as a party', async () => {
    const audit = await run(['log', 'audit', '--server', url, '--key', 'pub.json', '--log-key', logKey]);
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
    expect(audit.stdout).toContain('audit passed');
    expect(audit.stdout).toMatch(/entries agreement\.activated: 1/);
  });

  it('verifies a receipt offline and refuses a tampered one', async () => {
    const client = createClient({ server: url, keys: readKeyFile(join(dir, 'adv.json')) });
    const entries = await getLogEntries(client, 'campaign-measurement');
    const activation = entries.find((e) => e.entry.includes('agreement.activated'));
    const receipt = await getReceipt(client, activation?.index ?? -1);
    writeFileSync(join(dir, 'r.json'), JSON.stringify(receipt));
    const ok = await run(['verify', 'r.json', '--log-key', logKey]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('receipt verified: entry');
    expect((await run(['verify', 'r.json', '--log-key', logKey, '--witness', 'adv.json', 'pub.json', '--min-cosignatures', '3'])).code).toBe(1);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...receipt, entry: receipt.entry.replace('"version":1', '"version":2') }));
    const bad = await run(['verify', 'bad.json', '--log-key', logKey]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('step inclusion');
    expect((await run(['verify', 'r.json', '--log-key', 'not-a-key'])).code).toBe(2);
  });

  it('prints fork evidence and exits 1 when a copy of the log diverges from what it cosigned', async () => {
    // Stop the server, copy its data directory (same log key), restart both, and let them diverge.
    server?.child.kill('SIGTERM');
    await server?.exited;
    cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
    server = await startServe(join(dir, 'a'), dir);
    url = server.url;
    const fork = await startServe(join(dir, 'b'), dir);
    others.push(fork);
    await propose(url, 'only-on-a');
    await propose(fork.url, 'only-on-b');
    await sleep(1200);
    const onA = await run(['log', 'witness', '--server', url, '--key', 'pub.json']);
    expect(onA.code, onA.stderr).toBe(0);
    const onB = await run(['log', 'witness', '--server', fork.url, '--key', 'pub.json']);
    expect(onB.code).toBe(1);
    expect(onB.stdout).toContain('FORK EVIDENCE');
    expect(onB.stdout).toContain('--- checkpoint this witness cosigned before ---');
    expect(onB.stdout).toContain('--- checkpoint the server shows now ---');
    expect(JSON.parse(readFileSync(join(dir, 'pub.json.witness.json'), 'utf8')).checkpoint).toContain(String((await checkpointOf(url)).size));
  });
});
