import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus keygen` and every way a key file can be refused, through the real binary.

const PASSPHRASE = 'correct-horse-battery-staple-7319';
const WRONG_PASSPHRASE = 'incorrect-donkey-cell-0042';

let dir: string;
const run = (args: string[], env?: Record<string, string>) => malus(args, { cwd: dir, ...(env === undefined ? {} : { env }) });

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  // Plain key files for the tests below.
  const made = await Promise.all(['adv', 'pub', 'op'].map((p) => run(['keygen', '--name', p, '--out', `${p}.json`])));
  expect(made.map((r) => r.code)).toEqual([0, 0, 0]);
});

afterAll(() => {
  removeDir(dir);
});

describe.concurrent('malus keygen', () => {
  it('writes a key file with mode 0600 and prints its public identity', async () => {
    const made = await run(['keygen', '--name', 'Acme', '--out', 'k.json']);
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/^wrote k\.json for Acme \(party id [0-9a-f]{20}\)\n$/);
    expect(statSync(join(dir, 'k.json')).mode & 0o777).toBe(0o600);

    const pub = await run(['keygen', '--public', 'k.json']);
    expect(pub.code).toBe(0);
    const identity = JSON.parse(pub.stdout) as Record<string, unknown>;
    expect(Object.keys(identity).sort()).toEqual(['encryptionKey', 'format', 'id', 'name', 'signingKey']);
    expect(identity.format).toBe('malus.identity/v1');
    expect(identity.name).toBe('Acme');
    expect(identity.id).toMatch(/^[0-9a-f]{20}$/);
    expect(made.stdout).toContain(`party id ${String(identity.id)}`);
    expect(identity.signingKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(identity.encryptionKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Nothing secret is printed.
    const file = JSON.parse(readFileSync(join(dir, 'k.json'), 'utf8')) as { secrets: { signingKey: string; encryptionKey: string } };
    expect(pub.stdout).not.toContain('secret');
    expect(pub.stdout).not.toContain(file.secrets.signingKey);
    expect(pub.stdout).not.toContain(file.secrets.encryptionKey);
  });

  it('seals the secrets under a passphrase from the environment; --public needs no passphrase', async () => {
    const made = await run(['keygen', '--name', 'Sealed Co', '--out', 'sealed.json', '--passphrase-env', 'MALUS_PASS'], {
      MALUS_PASS: PASSPHRASE,
    });
    expect(made.code).toBe(0);
    expect(made.stderr).toBe('');
    expect(statSync(join(dir, 'sealed.json')).mode & 0o777).toBe(0o600);
    const text = readFileSync(join(dir, 'sealed.json'), 'utf8');
    const file = JSON.parse(text) as { secrets: Record<string, unknown> };
    expect(file.secrets.protection).toBe('passphrase');
    expect(Object.keys(file.secrets).sort()).toEqual(['protection', 'sealed']);
    expect(text).not.toContain(PASSPHRASE);
    expect(made.stdout).not.toContain(PASSPHRASE);

    const pub = await run(['keygen', '--public', 'sealed.json']);
    expect(pub.code).toBe(0);
    expect(JSON.parse(pub.stdout)).toMatchObject({ format: 'malus.identity/v1', name: 'Sealed Co' });
  });

  it('never overwrites a key file', async () => {
    const before = readFileSync(join(dir, 'adv.json'), 'utf8');
    const again = await run(['keygen', '--name', 'Other', '--out', 'adv.json']);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe('error: adv.json already exists; refusing to overwrite a key file\n');
    expect(readFileSync(join(dir, 'adv.json'), 'utf8')).toBe(before);
  });

  it('needs --name and --out', async () => {
    const noName = await run(['keygen', '--out', 'nameless.json']);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toBe('error: keygen needs --name NAME and --out FILE (or --public FILE)\n');
    expect(existsSync(join(dir, 'nameless.json'))).toBe(false);
    const blank = await run(['keygen', '--name', ' ', '--out', 'blank.json']);
    expect(blank.code).toBe(2);
    expect(blank.stderr).toContain('name must be 1 to 200 characters');
  });

  it('refuses --public combined with --name', async () => {
    const both = await run(['keygen', '--public', 'adv.json', '--name', 'X']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--public cannot be combined with --name or --out');
  });

  it('names the variable when --passphrase-env is not set, and writes nothing', async () => {
    const made = await run(['keygen', '--name', 'X', '--out', 'x.json', '--passphrase-env', 'MALUS_UNSET_PASS']);
    expect(made.code).toBe(2);
    expect(made.stderr).toBe('error: environment variable MALUS_UNSET_PASS (from --passphrase-env) is not set\n');
    expect(existsSync(join(dir, 'x.json'))).toBe(false);
  });

  it('explains an unreadable or malformed key file', async () => {
    const missing = await run(['keygen', '--public', 'nope.json']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('error: cannot read key file nope.json: ENOENT\n');
    writeFileSync(join(dir, 'notes.txt'), 'not a key\n');
    const notKey = await run(['keygen', '--public', 'notes.txt']);
    expect(notKey.code).toBe(2);
    expect(notKey.stderr).toBe('error: key file notes.txt is not JSON\n');
    writeFileSync(join(dir, 'other.json'), '{"format":"something/v1"}\n');
    const other = await run(['keygen', '--public', 'other.json']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('error: key file other.json is not a malus.key/v1 file');
  });
});

describe.concurrent('key file problems when a key is used', () => {
  // An agreement whose advertiser key file is sealed under a passphrase.
  beforeAll(async () => {
    const sealed = await run(['keygen', '--name', 'Sealed Advertiser', '--out', 'sealed-adv.json', '--passphrase-env', 'MALUS_PASS'], {
      MALUS_PASS: PASSPHRASE,
    });
    expect(sealed.code).toBe(0);
    const init = await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'sealed-adv.json', '--publisher', 'pub.json', '--operator', 'op.json']);
    expect(init.code).toBe(0);
  });

  it('refuses a key file readable by others and says how to fix it', async () => {
    expect((await run(['keygen', '--name', 'Loose', '--out', 'loose.json'])).code).toBe(0);
    chmodSync(join(dir, 'loose.json'), 0o644);
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'loose.json']);
    expect(signed.code).toBe(2);
    expect(signed.stderr).toBe('error: key file loose.json is accessible by group or others (mode 0644); run: chmod 600 loose.json\n');
    expect(hasStackTrace(signed.stderr)).toBe(false);
    expect(signed.stdout).toBe('');
  });

  it('refuses a wrong passphrase without echoing it', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'sealed-adv.json', '--passphrase-env', 'MALUS_PASS'], {
      MALUS_PASS: WRONG_PASSPHRASE,
    });
    expect(signed.code).toBe(2);
    expect(signed.stderr).toBe('error: wrong passphrase from $MALUS_PASS for key file sealed-adv.json\n');
    expect(signed.stderr).not.toContain(WRONG_PASSPHRASE);
    expect(signed.stdout).toBe('');
    expect(hasStackTrace(signed.stderr)).toBe(false);
  });

  it('names the variable when --passphrase-env is not set', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'sealed-adv.json', '--passphrase-env', 'MALUS_PASS']);
    expect(signed.code).toBe(2);
    expect(signed.stderr).toBe('error: environment variable MALUS_PASS (from --passphrase-env) is not set\n');
    expect(hasStackTrace(signed.stderr)).toBe(false);
  });

  it('says how to give the passphrase when none was given', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'sealed-adv.json'], { MALUS_PASS: PASSPHRASE });
    expect(signed.code).toBe(2);
    expect(signed.stderr).toBe(
      'error: key file sealed-adv.json is passphrase-protected; pass --passphrase-env VAR with the passphrase in VAR\n',
    );
    expect(signed.stderr).not.toContain(PASSPHRASE);
  });

  it('signs with the right passphrase, which appears nowhere in the output', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'sealed-adv.json', '--passphrase-env', 'MALUS_PASS'], {
      MALUS_PASS: PASSPHRASE,
    });
    expect(signed.code).toBe(0);
    expect(signed.stderr).toBe('');
    expect(JSON.parse(signed.stdout)).toMatchObject({ format: 'malus.signature/v1', collaboration: 'campaign-measurement', version: 1 });
    expect(signed.stdout).not.toContain(PASSPHRASE);
  });

  it('refuses a key file whose secrets do not match its public keys', async () => {
    const adv = JSON.parse(readFileSync(join(dir, 'adv.json'), 'utf8')) as { secrets: unknown };
    const pub = JSON.parse(readFileSync(join(dir, 'pub.json'), 'utf8')) as { secrets: unknown };
    writeFileSync(join(dir, 'swapped.json'), JSON.stringify({ ...pub, secrets: adv.secrets }), { mode: 0o600 });
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'swapped.json']);
    expect(signed.code).toBe(2);
    expect(signed.stderr).toBe('error: key file swapped.json: secret keys do not match the public keys it shows\n');
    expect(hasStackTrace(signed.stderr)).toBe(false);
  });
});
