import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgreement, parseAgreementText, type Agreement } from '../../src/agreement/index.js';
import { uploadProgressView } from '../../src/api/index.js';
import { createClient, getDataset, getLogEntries, listDataKeys, listDatasets, request, uploadDataset, type MalusClient } from '../../src/client/index.js';
import { formatBytes } from '../../src/cli/commands/dataset.js';
import { isMalusError } from '../../src/errors/index.js';
import { signManifest, type SignedManifest } from '../../src/ingest/index.js';
import { generatePartyKeys, readKeyFile, writeKeyFile, type PartyKeys } from '../../src/identity/index.js';
import { writePreparedDataset, type PreparedDataset } from '../ingest/make-dataset.js';
import { BIN, assertFreshBuild, baseEnv, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus dataset upload | list | show` as real processes against a real `malus serve`: a complete
// upload and its no-op re-run, an upload cut short by killing the server and resumed after its
// restart, and refusals that leave the server without a trace of the dataset.

let dir: string;
let server: ServerProcess | undefined;
let agreement: Agreement;
let publisher: PartyKeys;
let advertiser: PartyKeys;
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 30_000 });
const serverArgs = (key: string): string[] => ['--server', server?.url ?? '', '--key', key, '--collab', agreement.id];
const clientOf = (keys: PartyKeys): MalusClient => createClient({ server: server?.url ?? '', keys });

let folders = 0;
function prepared(options: { keys?: PartyKeys; payloadBytes?: number; agreement?: Agreement } = {}): Promise<PreparedDataset> {
  folders += 1;
  return writePreparedDataset(join(dir, `prepared-${folders}`), {
    agreement: options.agreement ?? agreement,
    table: 'impressions',
    keys: options.keys ?? publisher,
    payload: new Uint8Array((options.payloadBytes ?? 50_000)).map((_, i) => (i * 7919) % 251),
    rows: 1234,
  });
}

/** The server holds nothing of the dataset: no dataset, and no upload in progress. */
async function expectNothingOnServer(collaborationId: string, dataset: string): Promise<void> {
  expect((await listDatasets(clientOf(publisher), collaborationId)).map((d) => d.dataset)).not.toContain(dataset);
  const pending = await request(clientOf(publisher), {
    method: 'GET',
    path: `/v1/collaborations/${collaborationId}/datasets/${dataset}/upload`,
    response: uploadProgressView,
  }).then(
    () => 'pending',
    (error: unknown) => (isMalusError(error) ? error.code : 'error'),
  );
  expect(pending).toBe('not-found');
}

async function establish(file: string): Promise<Agreement> {
  const parsed = assertAgreement(parseAgreementText(readFileSync(join(dir, file), 'utf8')), file);
  const url = server?.url ?? '';
  expect((await run(['collab', 'propose', file, '--server', url, '--key', 'adv.json'])).code).toBe(0);
  expect((await run(['collab', 'sign', parsed.id, '--agreement', file, '--server', url, '--key', 'pub.json'])).code).toBe(0);
  return parsed;
}

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  // Key files written in-process: `malus keygen` has its own tests, and every process start counts.
  for (const name of ['adv', 'pub', 'op']) writeKeyFile(join(dir, `${name}.json`), generatePartyKeys(`${name} party`));
  publisher = readKeyFile(join(dir, 'pub.json'));
  advertiser = readKeyFile(join(dir, 'adv.json'));
  server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
  expect((await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  agreement = await establish('a.yaml');
}, 60_000);

afterAll(async () => {
  await server?.kill();
  removeDir(dir);
});

describe('malus dataset upload', () => {
  it('uploads a prepared folder with progress on stderr, then list and show it; a second run does nothing', async () => {
    const folder = await prepared();
    const uploaded = await run(['dataset', 'upload', ...serverArgs('pub.json'), folder.dir]);
    expect(uploaded.code, uploaded.stderr).toBe(0);
    expect(uploaded.stdout).toMatch(new RegExp(`^uploaded ${folder.dataset} \\(table impressions, 1234 rows, [0-9.]+ KiB, ${folder.manifest.manifest.ciphertext.sha256}\\): `));
    // Not a terminal: plain lines, at most one per 10 %.
    const lines = uploaded.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/: 0% \(0 B of [0-9.]+ KiB/);
    expect(lines.at(-1)).toMatch(/: 100% \(.*, 0 s left\)$/);
    // Every plain line says how much time is left (or that it cannot tell yet).
    for (const line of lines.filter((l) => /: \d+% \(/.test(l))) expect(line).toMatch(/, (\d+ s left|\d+ min left|time left unknown)\)$/);
    expect(lines.length).toBeLessThanOrEqual(11);

    const listed = await run(['dataset', 'list', ...serverArgs('adv.json')]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`${folder.dataset}\timpressions\t${publisher.identity.id}\t1234\t`);
    expect(listed.stdout).toContain(`\tregistered\t${folder.manifest.manifest.ciphertext.sha256}\n`);
    const json = JSON.parse((await run(['dataset', 'list', ...serverArgs('op.json'), '--json'])).stdout) as { dataset: string; bytes: number }[];
    expect(json).toEqual([expect.objectContaining({ dataset: folder.dataset, bytes: folder.ciphertext.length, keyRegistered: true })]);
    const shown = await run(['dataset', 'show', ...serverArgs('adv.json'), folder.dataset]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`  header hash:    ${folder.manifest.manifest.headerHash}\n`);
    expect(shown.stdout).toContain(`  key commitment: ${folder.manifest.manifest.keyCommitment}\n`);

    const again = await run(['dataset', 'upload', ...serverArgs('pub.json'), folder.dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^already uploaded: ${folder.dataset} `));
    expect(again.stderr).toBe('');

    // The log holds one dataset.registered entry, of hashes and counts.
    const entries = (await getLogEntries(clientOf(advertiser), agreement.id)).map((e) => JSON.parse(e.entry) as Record<string, unknown>);
    const registered = entries.filter((e) => e.type === 'dataset.registered' && e.dataset === folder.dataset);
    expect(registered).toHaveLength(1);
    expect(Object.keys(registered[0] ?? {}).sort()).toEqual(
      ['actor', 'agreementHash', 'bytes', 'ciphertext', 'collaboration', 'dataset', 'format', 'headerHash', 'keyCommitment', 'owner', 'rows', 'schemaHash', 'table', 'time', 'type'].sort(),
    );
    expect(registered[0]).toMatchObject({ ciphertext: folder.manifest.manifest.ciphertext.sha256, rows: 1234, bytes: folder.ciphertext.length });
  });

  it('draws a progress bar with bytes, rate and time left when stderr is a terminal', async () => {
    const folder = await prepared({ payloadBytes: 3_000_000 });
    const args = ['dataset', 'upload', ...serverArgs('pub.json'), folder.dir];
    // util-linux `script` runs the command on a real pseudo-terminal and copies what it draws.
    const command = [process.execPath, BIN, ...args].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(' ');
    const drawn = await new Promise<{ code: number | null; output: string }>((resolvePromise, reject) => {
      const child = spawn('script', ['-q', '-e', '-f', '-c', command, '/dev/null'], { cwd: dir, env: { ...baseEnv(), COLUMNS: '160', TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the upload on a terminal did not finish: ${output}`));
      }, 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code, output });
      });
    });
    expect(drawn.code, drawn.output).toBe(0);
    // The bar redraws in place (back to column 1), not a plain line per 10 %.
    expect(drawn.output).toContain('\u001b[1G');
    expect(drawn.output).not.toMatch(/: \d+% \(/);
    const size = formatBytes(folder.ciphertext.length).replace('.', '\\.');
    const label = basename(folder.dir);
    expect(drawn.output).toContain(`${label} [${'\u2591'.repeat(40)}] 0% | 0 B of ${formatBytes(folder.ciphertext.length)} |`);
    expect(drawn.output).toMatch(new RegExp(`${label} \\[\u2588{40}\\] 100% \\| ${size} of ${size} \\| [0-9.]+ (B|KiB|MiB|GiB)/s \\| \\S+ left`));
    expect(drawn.output).toContain(`uploaded ${folder.dataset} (table impressions, 1234 rows`);
  });

  it('resumes after the server was killed mid-upload and restarted: nothing was visible in between', async () => {
    const folder = await prepared({ payloadBytes: 2 * 1024 * 1024 });
    const running = server;
    if (running === undefined) throw new Error('no server');
    let killed = false;
    const cut = uploadDataset(clientOf(publisher), {
      dir: folder.dir,
      agreement,
      chunkBytes: 256 * 1024,
      onProgress: (sent) => {
        if (sent >= 512 * 1024 && !killed) {
          killed = true;
          running.child.kill('SIGKILL');
        }
      },
    });
    expect(await cut.then(() => 'completed', (error: unknown) => (isMalusError(error) ? error.code : 'error'))).toBe('server-unreachable');
    await running.exited;
    server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
    expect((await listDatasets(clientOf(publisher), agreement.id)).map((d) => d.dataset)).not.toContain(folder.dataset);
    expect(existsSync(join(dir, 'data', 'datasets', agreement.id, `${folder.dataset}.mds`))).toBe(false);

    const resumed = await run(['dataset', 'upload', ...serverArgs('pub.json'), folder.dir]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/^resuming prepared-\d+ at 512\.0 KiB of 2\.00 MiB\n/);
    expect(resumed.stdout).toMatch(/, resumed at 512\.0 KiB\n$/);
    expect((await getDataset(clientOf(advertiser), agreement.id, folder.dataset)).ciphertext).toBe(folder.manifest.manifest.ciphertext.sha256);
    expect(readFileSync(join(dir, 'data', 'datasets', agreement.id, `${folder.dataset}.mds`)).equals(folder.ciphertext)).toBe(true);
  }, 40_000);

  it('gives up an unfinished upload for its owner (dataset abandon), and refuses anyone else', async () => {
    const folder = await prepared({ payloadBytes: 1024 * 1024 });
    const stopped = uploadDataset(clientOf(publisher), {
      dir: folder.dir,
      agreement,
      chunkBytes: 256 * 1024,
      onProgress: (sent) => {
        if (sent >= 256 * 1024) throw new Error('stopped by the test');
      },
    });
    await expect(stopped).rejects.toThrow('stopped by the test');
    const other = await run(['dataset', 'abandon', ...serverArgs('adv.json'), folder.dataset]);
    expect(other.stderr).toBe(`error: only the owner uploads dataset ${folder.dataset}\n`);
    expect(other.code).toBe(2);
    const abandoned = await run(['dataset', 'abandon', ...serverArgs('pub.json'), folder.dataset]);
    expect(abandoned.stderr).toBe('');
    expect(abandoned.stdout).toBe(`abandoned the upload of ${folder.dataset}\n`);
    expect(abandoned.code).toBe(0);
    await expectNothingOnServer(agreement.id, folder.dataset);
    const again = await run(['dataset', 'abandon', ...serverArgs('pub.json'), folder.dataset]);
    expect(again.stderr).toBe(`error: no upload of dataset ${folder.dataset} is in progress\n`);
    expect(again.code).toBe(2);
  }, 30_000);

  it('sends nothing when the attestation is refused: a wrong sim root, or an agreement pinning another measurement', async () => {
    const folder = await prepared();
    const wrongRoot = await run(['dataset', 'upload', ...serverArgs('pub.json'), '--sim-root', '00'.repeat(32), folder.dir]);
    expect(wrongRoot.code).toBe(1);
    expect(wrongRoot.stderr).toContain("error: the key-release service's evidence does not satisfy the agreement");
    expect(wrongRoot.stderr).toContain('evidence-invalid: ');
    expect(hasStackTrace(wrongRoot.stderr)).toBe(false);
    await expectNothingOnServer(agreement.id, folder.dataset);

    // The same collaboration template under another id, pinning a measurement no enclave has.
    const text = readFileSync(join(dir, 'a.yaml'), 'utf8')
      .replace(`id: ${agreement.id}`, 'id: pinned-elsewhere')
      .replace(/measurements: \[[^\]]*\]/, `measurements: ["${'f0'.repeat(48)}"]`);
    writeFileSync(join(dir, 'b.yaml'), text);
    const pinned = await establish('b.yaml');
    const elsewhere = await prepared({ agreement: pinned });
    const refused = await run(['dataset', 'upload', '--server', server?.url ?? '', '--key', 'pub.json', '--collab', pinned.id, elsewhere.dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('measurement-not-pinned: ');
    await expectNothingOnServer(pinned.id, elsewhere.dataset);
    expect((await listDataKeys(clientOf(publisher), pinned.id)).keys).toEqual([]);
  }, 40_000);

  it("refuses a folder for a table the caller does not own, and an agreement that is not the active one, before anything is sent", async () => {
    const folder = await prepared({ keys: advertiser });
    const refused = await run(['dataset', 'upload', ...serverArgs('adv.json'), folder.dir]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`error: table impressions belongs to ${publisher.identity.id}`);
    await expectNothingOnServer(agreement.id, folder.dataset);

    // A manifest whose signature was altered after prepare: bad input, refused on the owner's machine.
    const forged = await prepared();
    const manifestFile = join(forged.dir, 'manifest.json');
    const signedManifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { signature: { value: string } };
    const value = signedManifest.signature.value;
    signedManifest.signature.value = `${value[0] === 'A' ? 'B' : 'A'}${value.slice(1)}`;
    writeFileSync(manifestFile, JSON.stringify(signedManifest));
    const badSignature = await run(['dataset', 'upload', ...serverArgs('pub.json'), forged.dir]);
    expect(badSignature.code).toBe(2);
    expect(badSignature.stderr).toContain("error: manifest.json: the signature does not verify under the owner's signing key\nbad-signature: ");
    await expectNothingOnServer(agreement.id, forged.dataset);

    // A manifest signed by another party of the agreement, over the very same fields.
    const resigned = await prepared();
    const resignedFile = join(resigned.dir, 'manifest.json');
    const original = JSON.parse(readFileSync(resignedFile, 'utf8')) as SignedManifest;
    writeFileSync(resignedFile, JSON.stringify(signManifest(original.manifest, { partyId: advertiser.identity.id, signingSecret: advertiser.signingSecret })));
    const otherSigner = await run(['dataset', 'upload', ...serverArgs('pub.json'), resigned.dir]);
    expect(otherSigner.code).toBe(2);
    expect(otherSigner.stderr).toContain(
      `error: table impressions belongs to ${publisher.identity.id}; the manifest is for ${publisher.identity.id}, signed by ${advertiser.identity.id}; you are ${publisher.identity.id}`,
    );
    await expectNothingOnServer(agreement.id, resigned.dataset);

    // A flipped byte in a chunk, and a file cut short: refused on the owner's machine, nothing sent.
    const hashes = (file: string) => `error: ${file} does not hash to the manifest's ciphertext.sha256: it is not the file the manifest describes`;
    for (const [what, damage, says] of [
      ['a tampered chunk', (bytes: Buffer) => { bytes[bytes.length - 40] = (bytes[bytes.length - 40] ?? 0) ^ 1; return bytes; }, hashes],
      ['a truncated file', (bytes: Buffer) => bytes.subarray(0, bytes.length - 1000), (file: string) => `error: ${file} is ${statSync(file).size} bytes; its manifest says ${statSync(file).size + 1000}`],
    ] as const) {
      const damaged = await prepared();
      const file = join(damaged.dir, 'dataset.mds');
      writeFileSync(file, damage(readFileSync(file)));
      const refusedDamaged = await run(['dataset', 'upload', ...serverArgs('pub.json'), damaged.dir]);
      expect(refusedDamaged.code, what).toBe(2);
      expect(refusedDamaged.stderr, what).toContain(says(file));
      await expectNothingOnServer(agreement.id, damaged.dataset);
    }

    const mine = await prepared();
    const mismatch = await run(['dataset', 'upload', ...serverArgs('pub.json'), '--agreement', 'b.yaml', mine.dir]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toContain('not uploading');
    const badRoot = await run(['dataset', 'upload', ...serverArgs('pub.json'), '--sim-root', 'abc', mine.dir]);
    expect(badRoot.code).toBe(2);
    expect(badRoot.stderr).toContain('--sim-root abc: expected');
    await expectNothingOnServer(agreement.id, mine.dataset);

    const unknown = await run(['dataset', 'show', ...serverArgs('adv.json'), 'no-such-dataset']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('error: dataset no-such-dataset not found');
  });
});
