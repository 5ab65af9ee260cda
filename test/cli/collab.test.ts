import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus serve` as a child process on a loopback port, driven by `malus collab` from other processes.

const ID = 'campaign-measurement';
const PASSPHRASE = 'collab-test-passphrase-5581';

let dir: string;
let server: ServerProcess | undefined;
let serving: Promise<ServerProcess> | undefined;
let url = '';
let hash = '';
const ids: Record<string, string> = {};
const run = (args: string[], env?: Record<string, string>) => malus(args, { cwd: dir, ...(env === undefined ? {} : { env }) });
const as = (key: string, args: string[]) => run([...args, '--server', url, '--key', key]);

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  const keygens = ['adv', 'pub', 'op', 'stranger'].map(async (name) => {
    const made = await run(['keygen', '--name', `${name} party`, '--out', `${name}.json`]);
    expect(made.code).toBe(0);
    ids[name] = /party id ([0-9a-f]{20})/.exec(made.stdout)?.[1] ?? '';
  });
  // Hold on to the server as soon as it is up, so afterAll stops it even if a keygen failed.
  serving = startServe(join(dir, 'data'), dir).then((started) => (server = started));
  await Promise.all([serving, ...keygens]);
  url = server?.url ?? '';
  const init = await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json']);
  expect(init.code).toBe(0);
  hash = (await run(['agreement', 'hash', 'a.yaml'])).stdout.trim();
  expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
});

afterAll(async () => {
  await serving?.catch(() => undefined);
  await server?.kill();
  removeDir(dir);
});

describe('malus serve', () => {
  it('listens on the loopback port the OS chose and creates its data directory', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toBe('http://127.0.0.1:0');
    expect(server?.stderr()).toContain(`malus serving on ${url} (data in ${join(dir, 'data')})\n`);
    expect(statSync(join(dir, 'data')).isDirectory()).toBe(true);
  });

  it('refuses a bad --listen', async () => {
    const bad = await run(['serve', '--data-dir', join(dir, 'unused'), '--listen', 'localhost']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: --listen must be HOST:PORT such as 127.0.0.1:8787, not "localhost"\n');
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });
});

describe('malus collab against the server', () => {
  it('proposes as the advertiser', async () => {
    const proposed = await as('adv.json', ['collab', 'propose', 'a.yaml']);
    expect(proposed.code).toBe(0);
    expect(proposed.stderr).toBe('');
    expect(proposed.stdout).toBe(
      [
        `${ID}: Campaign reach and conversions`,
        '  state: proposed',
        `  v1 ${hash} proposed`,
        `    signed:  ${ids.adv}`,
        `    missing: ${ids.pub}`,
        '',
      ].join('\n'),
    );
  });

  it('shows the proposal to the publisher', async () => {
    const shown = await as('pub.json', ['collab', 'show', ID]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('  state: proposed\n');
    expect(shown.stdout).toContain(`    missing: ${ids.pub}\n`);
  });

  it('will not sign when the reviewed hash differs', async () => {
    const wrong = `sha256:${'0'.repeat(64)}`;
    const refused = await as('pub.json', ['collab', 'sign', ID, '--hash', wrong]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`error: the server's agreement for ${ID} has hash ${hash}, not ${wrong}; not signing\n`);
    expect(refused.stdout).toBe('');
    // Nothing was signed.
    expect((await as('pub.json', ['collab', 'show', ID])).stdout).toContain('  state: proposed\n');
  });

  it('signs the reviewed hash, which makes it active', async () => {
    const signed = await as('pub.json', ['collab', 'sign', ID, '--hash', hash]);
    expect(signed.code).toBe(0);
    expect(signed.stderr).toBe('');
    expect(signed.stdout).toBe(
      [`${ID}: Campaign reach and conversions`, `  state: active (${hash})`, `  v1 ${hash} active`, `    signed:  ${ids.adv}, ${ids.pub}`, ''].join(
        '\n',
      ),
    );
  });

  it('lists the collaboration for both signers and the auditor', async () => {
    const listed = await Promise.all(['adv.json', 'pub.json', 'op.json'].map((key) => as(key, ['collab', 'list'])));
    for (const result of listed) {
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${ID}\tactive\tv1\tCampaign reach and conversions\n`);
    }
  });

  it('prints JSON with --json', async () => {
    const [listed, shown] = await Promise.all([as('adv.json', ['collab', 'list', '--json']), as('pub.json', ['collab', 'show', ID, '--json'])]);
    expect(listed.code).toBe(0);
    const views = JSON.parse(listed.stdout) as { id: string; state: string; activeHash: string; versions: { signed: string[] }[] }[];
    expect(views).toHaveLength(1);
    expect(views[0]).toMatchObject({ id: ID, state: 'active', activeHash: hash });
    expect(views[0]?.versions[0]?.signed).toEqual([ids.adv, ids.pub]);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: ID, state: 'active', activeHash: hash });
  });

  it('tells a stranger the collaboration does not exist', async () => {
    const [shown, listed] = await Promise.all([as('stranger.json', ['collab', 'show', ID]), as('stranger.json', ['collab', 'list'])]);
    expect(shown.code).toBe(2);
    expect(shown.stderr).toBe(`error: collaboration ${ID} not found\n`);
    expect(shown.stdout).toBe('');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe('no collaborations\n');
  });

  it('works with a passphrase-protected key file', async () => {
    const made = await run(['keygen', '--name', 'Sealed', '--out', 'sealed.json', '--passphrase-env', 'MALUS_PASS'], { MALUS_PASS: PASSPHRASE });
    expect(made.code).toBe(0);
    const listed = await run(['collab', 'list', '--server', url, '--key', 'sealed.json', '--passphrase-env', 'MALUS_PASS'], {
      MALUS_PASS: PASSPHRASE,
    });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe('no collaborations\n');
    expect(listed.stderr).toBe('');
  });

  it('exits 3 when the server cannot be reached', async () => {
    const shown = await run(['collab', 'show', ID, '--server', 'http://127.0.0.1:1', '--key', 'adv.json']);
    expect(shown.code).toBe(3);
    expect(shown.stderr).toBe('error: cannot reach the Malus server at http://127.0.0.1:1 (connection failed)\n');
    expect(hasStackTrace(shown.stderr)).toBe(false);
  });

  it('needs --server and --key', async () => {
    const shown = await run(['collab', 'show', ID, '--key', 'adv.json']);
    expect(shown.code).toBe(2);
    expect(shown.stderr).toContain("error: required option '--server <url>' not specified");
  });

  it('stops cleanly on SIGTERM', async () => {
    const running = server;
    if (running === undefined) throw new Error('no server');
    running.child.kill('SIGTERM');
    const exit = await Promise.race([
      running.exited,
      new Promise<never>((_, reject) => {
        setTimeout(() => {
          reject(new Error('malus serve did not stop within 5 s of SIGTERM'));
        }, 5000);
      }),
    ]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(running.stderr()).toContain('received SIGTERM; finishing in-flight requests\nstopped\n');
    // The port is closed now.
    const after = await run(['collab', 'list', '--server', url, '--key', 'adv.json']);
    expect(after.code).toBe(3);
    expect(after.stderr).toContain('cannot reach');
  });
});
