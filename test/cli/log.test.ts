import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createClient, getLogEntries, getReceipt } from '../../src/client/index.js';
import { readKeyFile } from '../../src/identity/index.js';
import { nodeHash, openCheckpoint, parseVerifierKey, witnessName, type Checkpoint, type Receipt } from '../../src/ledger/index.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus log …` and `malus verify` against real `malus serve` children on loopback: checkpoints,
// offline proof checks, witnessing with a state file, audit, receipts, and a forked copy of a log.

let dir: string;
let server: ServerProcess | undefined;
const others: ServerProcess[] = [];
let url = '';
let logKey = '';
const ids: Record<string, string> = {};
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 60_000 });

// Each test drives several child processes in turn: on a loaded machine a test may take far longer
// than here, so the budget is generous; on a failure the servers' own output is printed, since a
// timeout alone does not say which side stopped answering.
vi.setConfig({ testTimeout: 90_000 });
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const [name, p] of [['server', server], ...others.map((o, i) => [`other server ${i}`, o] as const)] as const) {
      if (p === undefined) continue;
      console.error(`--- ${name} (${p.url}) stderr, last 4 kB ---\n${p.stderr().slice(-4000)}\n--- stdout, last 4 kB ---\n${p.stdout().slice(-4000)}`);
    }
  });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The log key a server announces on standard error right after it starts listening. */
async function announcedKey(serverProcess: ServerProcess): Promise<string> {
  for (let i = 0; i < 200 && !/transparency log .* key \S+\n/.test(serverProcess.stderr()); i++) await sleep(20);
  return /transparency log .* key (\S+)\n/.exec(serverProcess.stderr())?.[1] ?? '';
}

async function checkpointOf(base: string): Promise<{ checkpoint: Checkpoint; note: string }> {
  const note = await (await fetch(`${base}/v1/log/checkpoint`)).text();
  const opened = openCheckpoint(note, parseVerifierKey(logKey)!);
  if (!opened.ok) throw new Error(opened.reason);
  return { checkpoint: opened.checkpoint, note };
}

/** Waits until the server's checkpointer (once a second) has signed a checkpoint of this size. */
async function waitForCheckpoint(base: string, size: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const note = await (await fetch(`${base}/v1/log/checkpoint`)).text();
    const current = Number(note.split('\n')[1]);
    if (current === size) return;
    if (current > size) throw new Error(`checkpoint at ${current}, past ${size}`);
    await sleep(100);
  }
  throw new Error(`no checkpoint of size ${size} at ${base}`);
}

/** Proposes a new collaboration as the advertiser: two entries (proposed, signed by the proposer). */
async function propose(base: string, id: string): Promise<void> {
  const file = `${id}.yaml`;
  const init = await run(['agreement', 'init', '--id', id, '--out', file, '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json']);
  expect(init.code, init.stderr).toBe(0);
  const proposed = await run(['collab', 'propose', file, '--server', base, '--key', 'adv.json']);
  expect(proposed.code, proposed.stderr).toBe(0);
}

interface WitnessState {
  format: string;
  logKey: string;
  checkpoint: string;
}

function stateOf(name: string): WitnessState {
  return JSON.parse(readFileSync(join(dir, `${name}.json.witness.json`), 'utf8')) as WitnessState;
}

function stateSize(name: string): number {
  const opened = openCheckpoint(stateOf(name).checkpoint, parseVerifierKey(logKey)!);
  if (!opened.ok) throw new Error(opened.reason);
  return opened.checkpoint.size;
}

/** Runs the cases at once (they are independent processes) and checks each exit code and message. */
async function expectExits(cases: { args: string[]; code: number; stdout?: string; stderr?: string }[]): Promise<void> {
  const results = await Promise.all(cases.map((c) => run(c.args)));
  results.forEach((result, i) => {
    const c = cases[i];
    if (c === undefined) return;
    const label = `${c.args.slice(2).join(' ')}\n${result.stderr}`;
    expect(result.code, label).toBe(c.code);
    if (c.stdout !== undefined) expect(result.stdout, label).toBe(c.stdout);
    if (c.stderr !== undefined) expect(result.stderr, label).toContain(c.stderr);
    expect(hasStackTrace(result.stderr)).toBe(false);
  });
}

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir('malus-cli-log-');
  await Promise.all(
    ['adv', 'pub', 'op'].map(async (name) => {
      const made = await run(['keygen', '--name', name, '--out', `${name}.json`]);
      expect(made.code).toBe(0);
      ids[name] = /party id ([0-9a-f]{20})/.exec(made.stdout)?.[1] ?? '';
    }),
  );
  server = await startServe(join(dir, 'a'), dir);
  url = server.url;
  logKey = await announcedKey(server);
  expect(parseVerifierKey(logKey)).toBeDefined();
  await propose(url, 'campaign-measurement');
  const signed = await run(['collab', 'sign', 'campaign-measurement', '--server', url, '--key', 'pub.json']);
  expect(signed.code, signed.stderr).toBe(0);
  await waitForCheckpoint(url, 4); // proposed, signed, signed, activated
});

afterAll(async () => {
  await server?.kill();
  for (const other of others) await other.kill();
  removeDir(dir);
});

describe('malus log checkpoint', () => {
  it('prints the signed checkpoint note, origin first, and verifies it with --log-key', async () => {
    const origin = parseVerifierKey(logKey)?.name ?? '';
    const plain = await run(['log', 'checkpoint', '--server', url]);
    expect(plain.code).toBe(0);
    const lines = plain.stdout.split('\n');
    expect(lines[0]).toBe(origin);
    expect(origin).toMatch(/^malus\.local\/log\/[0-9a-f]{16}$/);
    expect(lines[1]).toBe('4');
    expect(lines[2]).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(lines[3]).toBe('');
    expect(lines[4]).toMatch(new RegExp(`^\u2014 ${origin.replace(/[./]/g, '\\$&')} \\S+$`));
    const pinned = await run(['log', 'checkpoint', '--server', url, '--log-key', logKey]);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(pinned.stdout).toBe(plain.stdout);
  });

  it('exits 1 under another log key and 2 on a malformed one', async () => {
    const malformed = logKey.replace(/\+([0-9a-f]{8})\+/, '+00000000+');
    const usage = await run(['log', 'checkpoint', '--server', url, '--log-key', malformed]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--log-key is not an Ed25519 note verifier key');
    const elsewhere = await startServe(join(dir, 'elsewhere'), dir);
    others.push(elsewhere);
    const foreignKey = await announcedKey(elsewhere);
    expect(foreignKey).not.toBe(logKey);
    const refused = await run(['log', 'checkpoint', '--server', url, '--log-key', foreignKey]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('checkpoint does not verify');
    expect(hasStackTrace(refused.stderr)).toBe(false);
  });
});

describe('malus log verify-inclusion and verify-consistency', () => {
  const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
  const flip = (b64: string) => {
    const bytes = Buffer.from(b64, 'base64');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    return bytes.toString('base64');
  };

  it('verify-inclusion: exit 0 on a proof from the API (base64 or hex), 1 on a flipped byte, 2 on bad usage', async () => {
    const { checkpoint } = await checkpointOf(url);
    const size = String(checkpoint.size);
    const root = Buffer.from(checkpoint.root).toString('base64');
    const inclusion = (await (await fetch(`${url}/v1/log/proof/inclusion?index=1&size=${size}`)).json()) as { leafHash: string; proof: string[] };
    const leaf = inclusion.leafHash;
    const proof = inclusion.proof.join(',');
    const args = (o: { index?: string; root?: string; leaf?: string; proof?: string }) => [
      'log', 'verify-inclusion', '--index', o.index ?? '1', '--size', size, '--root', o.root ?? root, '--leaf-hash', o.leaf ?? leaf,
      ...(o.proof === undefined ? ['--proof', proof] : o.proof === 'none' ? [] : ['--proof', o.proof]),
    ];
    await expectExits([
      { args: args({}), code: 0, stdout: 'inclusion proof is valid\n' },
      { args: args({ root: hex(root), leaf: hex(leaf), proof: inclusion.proof.map(hex).join(',') }), code: 0 },
      { args: args({ root: hex(root).toUpperCase(), leaf: hex(leaf) }), code: 0 },
      // One flipped byte anywhere, or another index: exit 1.
      { args: args({ proof: [flip(inclusion.proof[0] ?? ''), ...inclusion.proof.slice(1)].join(',') }), code: 1, stderr: 'inclusion proof is invalid (root-mismatch)' },
      { args: args({ root: flip(root) }), code: 1 },
      { args: args({ leaf: flip(leaf) }), code: 1 },
      { args: args({ index: '0' }), code: 1 },
      { args: args({ proof: inclusion.proof.slice(1).join(',') }), code: 1 },
      // Bad usage: exit 2.
      { args: args({ index: 'one' }), code: 2, stderr: '--index must be a non-negative integer' },
      { args: args({ index: '-1' }), code: 2 },
      { args: args({ leaf: 'ab'.repeat(31) }), code: 2, stderr: '--leaf-hash must be a SHA-256 hash' },
      { args: args({ root: Buffer.alloc(31).toString('base64') }), code: 2, stderr: '--root must be a SHA-256 hash' },
      { args: args({ proof: `${proof},zz` }), code: 2 },
      { args: args({ proof: 'none' }), code: 2 },
    ]);
  });

  it('verify-consistency: exit 0 on a proof from the API (base64 or hex), 1 on a changed proof, 2 on bad usage', async () => {
    const { checkpoint } = await checkpointOf(url);
    const size = String(checkpoint.size);
    const root2 = Buffer.from(checkpoint.root).toString('base64');
    const consistency = (await (await fetch(`${url}/v1/log/proof/consistency?from=2&to=${size}`)).json()) as { proof: string[] };
    // The root at size 2 is the node over the first two leaves of the public level-0 tile.
    const tile = Buffer.from(await (await fetch(`${url}/v1/log/tile/0/000.p/2`)).arrayBuffer());
    expect(tile.length).toBe(64);
    const root1 = Buffer.from(nodeHash(tile.subarray(0, 32), tile.subarray(32, 64))).toString('base64');
    const proof = consistency.proof.join(',');
    const args = (o: { size1?: string; root1?: string; root2?: string; proof?: string }) => [
      'log', 'verify-consistency', '--size1', o.size1 ?? '2', '--size2', size, '--root1', o.root1 ?? root1, '--root2', o.root2 ?? root2,
      '--proof', o.proof ?? proof,
    ];
    await expectExits([
      { args: args({}), code: 0, stdout: 'consistency proof is valid\n' },
      { args: args({ root1: hex(root1), root2: hex(root2), proof: consistency.proof.map(hex).join(',') }), code: 0 },
      { args: args({ proof: consistency.proof.slice(1).join(',') }), code: 1 },
      { args: args({ proof: [flip(consistency.proof[0] ?? ''), ...consistency.proof.slice(1)].join(',') }), code: 1, stderr: 'consistency proof is invalid' },
      { args: args({ root1: root2 }), code: 1 },
      { args: args({ size1: '3' }), code: 1 },
      { args: args({ size1: 'two' }), code: 2, stderr: '--size1 must be a non-negative integer' },
      { args: args({ root1: 'ab'.repeat(31) }), code: 2, stderr: '--root1 must be a SHA-256 hash' },
    ]);
  });
});

describe('malus log witness, audit and verify', () => {
  it('cosigns, keeps its state, and cosigns again after the log grew', async () => {
    const first = await run(['log', 'witness', '--server', url, '--key', 'adv.json', '--log-key', logKey]);
    expect(first.code, first.stderr).toBe(0);
    const origin = parseVerifierKey(logKey)?.name ?? '';
    expect(first.stdout).toBe(`cosigned: ${origin} size 4 root ${Buffer.from((await checkpointOf(url)).checkpoint.root).toString('base64')} as ${witnessName(ids.adv ?? '')}\n`);
    expect(stateOf('adv')).toMatchObject({ format: 'malus.witness-state/v1', logKey });
    expect(stateSize('adv')).toBe(4);
    expect((await checkpointOf(url)).note).toContain(`\u2014 ${witnessName(ids.adv ?? '')} `);

    // Nothing new: the same checkpoint, already cosigned.
    const idle = await run(['log', 'witness', '--server', url, '--key', 'adv.json']);
    expect(idle.code, idle.stderr).toBe(0);
    expect(idle.stdout).toMatch(/^already cosigned: \S+ size 4 /);
    expect(idle.stderr).toBe(''); // the state file's log key is used, not the server's announcement

    await propose(url, 'second-collaboration');
    await waitForCheckpoint(url, 6);
    const second = await run(['log', 'witness', '--server', url, '--key', 'adv.json']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^cosigned: \S+ size 6 root \S+ as malus-witness-[0-9a-f]{20}\n$/);
    expect(stateSize('adv')).toBe(6);

    // A first-time witness trusts the server's announced key, and says so.
    const pub = await run(['log', 'witness', '--server', url, '--key', 'pub.json']);
    expect(pub.code, pub.stderr).toBe(0);
    expect(pub.stderr).toContain('trusting the log key the server announced');
    expect(stateOf('pub').logKey).toBe(logKey);
    expect(stateSize('pub')).toBe(6);
    const note = (await checkpointOf(url)).note;
    expect(note).toContain(witnessName(ids.adv ?? ''));
    expect(note).toContain(witnessName(ids.pub ?? ''));
  });

  it('refuses to cosign another log under the key it pinned, and leaves its state alone', async () => {
    const elsewhere = others[0];
    if (elsewhere === undefined) throw new Error('no second log');
    const before = readFileSync(join(dir, 'pub.json.witness.json'), 'utf8');
    const refused = await run(['log', 'witness', '--server', elsewhere.url, '--key', 'pub.json']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("the server's checkpoint does not verify");
    const pinned = await run(['log', 'witness', '--server', elsewhere.url, '--key', 'pub.json', '--log-key', logKey]);
    expect(pinned.code).toBe(1);
    const foreignKey = await announcedKey(elsewhere);
    const conflicting = await run(['log', 'witness', '--server', elsewhere.url, '--key', 'pub.json', '--log-key', foreignKey]);
    expect(conflicting.code).toBe(2);
    expect(conflicting.stderr).toContain('--log-key differs from the key in');
    expect(readFileSync(join(dir, 'pub.json.witness.json'), 'utf8')).toBe(before);
  });

  it('audits the log as a party', async () => {
    const audit = await run(['log', 'audit', '--server', url, '--key', 'adv.json', '--log-key', logKey]);
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
    expect(audit.stdout).toContain('audit passed');
    expect(audit.stdout).toContain('6 entries');
    expect(audit.stdout).toContain('entries agreement.proposed: 2\n');
    expect(audit.stdout).toContain('entries agreement.signed: 3\n');
    expect(audit.stdout).toContain('entries agreement.activated: 1\n');
    expect(audit.stdout).toContain(`cosignatures by ${witnessName(ids.adv ?? '')}: 2\n`);
    expect(audit.stdout).toContain(`cosignatures by ${witnessName(ids.pub ?? '')}: 1\n`);
    const json = await run(['log', 'audit', '--server', url, '--key', 'pub.json', '--log-key', logKey, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { size: number; checkpoints: number; problems: string[] };
    expect(report).toMatchObject({ size: 6, problems: [] });
    expect(report.checkpoints).toBeGreaterThanOrEqual(2); // 4 and 6; 2 too if the checkpointer ran between propose and sign
    // Under another log's key nothing verifies: the audit fails.
    const foreign = await run(['log', 'audit', '--server', url, '--key', 'adv.json', '--log-key', await announcedKey(others[0] as ServerProcess)]);
    expect(foreign.code).toBe(1);
    expect(foreign.stdout).toContain('audit FAILED');
  });

  it('verifies a receipt offline, with and without witnesses, and refuses a tampered one', async () => {
    const client = createClient({ server: url, keys: readKeyFile(join(dir, 'adv.json')) });
    const entries = await getLogEntries(client, 'second-collaboration');
    const proposed = entries.find((e) => e.entry.includes('"agreement.proposed"'));
    expect(proposed?.index).toBe(4);
    const receipt: Receipt = await getReceipt(client, proposed?.index ?? -1);
    const text = JSON.stringify(receipt);
    writeFileSync(join(dir, 'r.json'), text);

    // One flipped bit inside the entry text; another index; garbage.
    const at = text.indexOf('sha256:') + 'sha256:'.length;
    writeFileSync(join(dir, 'bad.json'), `${text.slice(0, at)}${String.fromCharCode(text.charCodeAt(at) ^ 1)}${text.slice(at + 1)}`);
    writeFileSync(join(dir, 'moved.json'), JSON.stringify({ ...receipt, index: 5 }));
    writeFileSync(join(dir, 'not-json.json'), '{');
    const verify = (file: string, ...rest: string[]) => ['verify', file, '--log-key', logKey, ...rest];
    const foreignKey = await announcedKey(others[0] as ServerProcess);
    await expectExits([
      { args: verify('r.json'), code: 0 },
      // Both witnesses cosigned the checkpoint of size 6, the first to include entry 4.
      { args: verify('r.json', '--witness', 'adv.json', '--witness', 'pub.json', '--min-cosignatures', '2'), code: 0 },
      { args: verify('r.json', '--witness', 'adv.json', 'pub.json', '--min-cosignatures', '2'), code: 0 },
      { args: verify('r.json', '--witness', 'adv.json', '--witness', 'pub.json', '--min-cosignatures', '3'), code: 1, stderr: 'step cosignatures' },
      { args: verify('r.json', '--witness', 'op.json', '--min-cosignatures', '1'), code: 1, stderr: 'step cosignatures' },
      { args: verify('bad.json'), code: 1, stderr: 'receipt does not verify at step' },
      { args: verify('moved.json'), code: 1, stderr: 'step inclusion' },
      { args: ['verify', 'r.json', '--log-key', foreignKey], code: 1, stderr: 'step checkpoint' },
      { args: ['verify', 'r.json', '--log-key', 'not-a-key'], code: 2, stderr: '--log-key is not an Ed25519 note verifier key' },
      { args: ['verify', 'r.json', '--log-key', logKey.slice(0, -4)], code: 2 },
      { args: verify('r.json', '--min-cosignatures', 'two'), code: 2 },
      { args: verify('not-json.json'), code: 2 },
      { args: verify('missing.json'), code: 2 },
    ]);
    const ok = await run(verify('r.json'));
    expect(ok.stdout).toContain('receipt verified: entry 4 (agreement.proposed, second-collaboration)');
    expect(ok.stdout).toContain('cosigned by: no listed witness');
    const both = await run(verify('r.json', '--witness', 'adv.json', '--witness', 'pub.json', '--min-cosignatures', '2'));
    expect(both.stdout).toMatch(/in checkpoint \S+ size 6\n/);
    expect(both.stdout).toContain(witnessName(ids.adv ?? ''));
    expect(both.stdout).toContain(witnessName(ids.pub ?? ''));
    expect((await run(verify('bad.json'))).stderr).toMatch(/receipt does not verify at step (entry|inclusion)/);
  });
});

describe('a forked log', () => {
  it('is caught by a witness that cosigned the other branch, with both checkpoints as evidence', async () => {
    // Stop the server after both witnesses cosigned size 6 (M), copy its data directory (same log
    // key), restart the original, and let the two copies take different entries.
    server?.child.kill('SIGTERM');
    await server?.exited;
    cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
    server = await startServe(join(dir, 'a'), dir);
    url = server.url;
    const fork = await startServe(join(dir, 'b'), dir);
    others.push(fork);
    expect(await announcedKey(fork)).toBe(logKey);
    await propose(url, 'only-on-a');
    await propose(fork.url, 'only-on-b');
    await waitForCheckpoint(url, 8);
    await waitForCheckpoint(fork.url, 8);
    const onA = (await checkpointOf(url)).checkpoint;
    const onB = (await checkpointOf(fork.url)).checkpoint;
    expect(Buffer.from(onA.root).equals(Buffer.from(onB.root))).toBe(false);

    // pub cosigns A at size 8 (N); B at size 8 has another root.
    const cosignedA = await run(['log', 'witness', '--server', url, '--key', 'pub.json']);
    expect(cosignedA.code, cosignedA.stderr).toBe(0);
    expect(stateSize('pub')).toBe(8);
    const seen = stateOf('pub').checkpoint;
    const stateBefore = readFileSync(join(dir, 'pub.json.witness.json'), 'utf8');
    const shownB = (await checkpointOf(fork.url)).note;
    const caught = await run(['log', 'witness', '--server', fork.url, '--key', 'pub.json']);
    expect(caught.code).toBe(1);
    expect(caught.stdout).toContain('FORK EVIDENCE: two different roots for size 8');
    expect(caught.stdout).toContain(`--- checkpoint this witness cosigned before ---\n${seen}`);
    expect(caught.stdout).toContain(`--- checkpoint the server shows now ---\n${shownB}`);
    expect(caught.stderr).toContain('the log is inconsistent with a checkpoint this witness saw');
    expect(readFileSync(join(dir, 'pub.json.witness.json'), 'utf8')).toBe(stateBefore);
    expect((await checkpointOf(fork.url)).note).not.toContain(witnessName(ids.pub ?? '')); // nothing was posted to B

    // adv last cosigned size 6, which B extends: it cosigns B, and then catches A.
    const cosignedB = await run(['log', 'witness', '--server', fork.url, '--key', 'adv.json']);
    expect(cosignedB.code, cosignedB.stderr).toBe(0);
    const caughtA = await run(['log', 'witness', '--server', url, '--key', 'adv.json']);
    expect(caughtA.code).toBe(1);
    expect(caughtA.stdout).toContain('FORK EVIDENCE: two different roots for size 8');

    // B grows past 8: it cannot prove consistency with the root pub cosigned at 8.
    await propose(fork.url, 'more-on-b');
    await waitForCheckpoint(fork.url, 10);
    const past = await run(['log', 'witness', '--server', fork.url, '--key', 'pub.json']);
    expect(past.code).toBe(1);
    expect(past.stdout).toContain('FORK EVIDENCE: no valid consistency proof from 8 to 10');
    expect(readFileSync(join(dir, 'pub.json.witness.json'), 'utf8')).toBe(stateBefore);
  });

  it('keeps `malus serve` from starting on a copy whose leaves were edited', async () => {
    const fork = others[others.length - 1];
    fork?.child.kill('SIGTERM');
    await fork?.exited;
    const db = new Database(join(dir, 'b', 'malus.db'));
    db.prepare('UPDATE log_entries SET leaf_hash = zeroblob(32) WHERE idx = 5').run();
    db.close();
    const refused = await malus(['serve', '--data-dir', join(dir, 'b'), '--listen', '127.0.0.1:0'], { cwd: dir, timeoutMs: 15_000 });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('edited or forked');
    expect(refused.stderr).not.toContain('malus serving on');
    expect(hasStackTrace(refused.stderr)).toBe(false);
  });
});
