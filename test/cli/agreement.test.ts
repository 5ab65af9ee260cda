import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, parseAgreementText, signAgreement } from '../../src/agreement/index.js';
import { readKeyFile } from '../../src/identity/index.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir, type RunResult } from './helpers.js';

// `malus agreement init | validate | hash | sign | verify`, through the real binary.

const TYPE_ERROR =
  'tables[1].columns[0].type: expected one of VARCHAR, BIGINT, INTEGER, SMALLINT, DOUBLE, REAL, DATE, TIMESTAMP, TIMESTAMPTZ, BOOLEAN, UUID, DECIMAL(p,s)';

let dir: string;
const run = (args: string[]) => malus(args, { cwd: dir });
const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
const write = (name: string, text: string): void => {
  writeFileSync(join(dir, name), text);
};
const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
const ids: Record<'adv' | 'pub' | 'op' | 'stranger', string> = { adv: '', pub: '', op: '', stranger: '' };
let hashV1 = '';

/** The agreement file as a plain object (YAML parsed with the yaml package). */
const load = (name: string): Record<string, any> => parseYaml(read(name)) as Record<string, any>;

/** Writes a signature file made with the library, bypassing the checks `agreement sign` makes. */
function forgeSignature(agreementFile: string, keyFile: string, out: string): void {
  const agreement = assertAgreement(parseAgreementText(read(agreementFile)));
  const keys = readKeyFile(join(dir, keyFile));
  const signature = signAgreement(agreement, agreementHash(agreement), { partyId: keys.identity.id, signingSecret: keys.signingSecret }, new Date());
  write(out, `${JSON.stringify(signature, null, 2)}\n`);
}

let initResult: RunResult;
let signResults: RunResult[];

// Everything the tests share is made here, so that the tests themselves can run concurrently.
beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  for (const d of ['none', 'adv-only', 'both', 'v2-sigs', 'tampered', 'operator', 'stranger', 'v2-adv-only']) mkdirSync(join(dir, d));
  await Promise.all(
    (['adv', 'pub', 'op', 'stranger'] as const).map(async (name) => {
      const made = await run(['keygen', '--name', `${name} party`, '--out', `${name}.json`]);
      expect(made.code).toBe(0);
      ids[name] = /party id ([0-9a-f]{20})/.exec(made.stdout)?.[1] ?? '';
    }),
  );
  initResult = await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json']);
  expect(initResult.code).toBe(0);
  hashV1 = agreementHash(assertAgreement(parseAgreementText(read('a.yaml'))));
  signResults = await Promise.all(
    ['adv', 'pub'].map((party) => run(['agreement', 'sign', 'a.yaml', '--key', `${party}.json`, '--out', `both/${party}.sig.json`])),
  );
  expect(signResults.map((r) => r.code)).toEqual([0, 0]);
  write('adv-only/adv.sig.json', read('both/adv.sig.json'));
});

afterAll(() => {
  removeDir(dir);
});

describe.concurrent('agreement init, validate and hash', () => {
  it('writes a commented YAML agreement naming the three parties', () => {
    const init = initResult;
    expect(init.code).toBe(0);
    expect(init.stdout).toBe('');
    expect(init.stderr).toBe('wrote agreement a.yaml\n');
    const text = read('a.yaml');
    expect(text).toMatch(/^# A Malus collaboration agreement/);
    expect(text).toContain('format: malus.agreement/v1');
    expect(text).toContain('# the collaboration id');
    const parsed = load('a.yaml');
    expect(parsed.id).toBe('campaign-measurement');
    expect((parsed.parties as { id: string }[]).map((p) => p.id)).toEqual([ids.adv, ids.pub, ids.op]);
  });

  it('never overwrites an existing file', async () => {
    const before = read('a.yaml');
    const again = await run(['agreement', 'init', '--out', 'a.yaml']);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe('error: cannot write agreement a.yaml: it already exists\n');
    expect(read('a.yaml')).toBe(before);
  });

  it('validates the agreement it wrote', async () => {
    const valid = await run(['agreement', 'validate', 'a.yaml']);
    expect(valid.code).toBe(0);
    expect(valid.stdout).toMatch(/^a\.yaml: valid malus\.agreement\/v1 \(campaign-measurement v1, sha256:[0-9a-f]{64}\)\n$/);
    expect(valid.stderr).toBe('');
  });

  it('hashes the canonical JSON form: the YAML file and the same document as JSON hash alike', async () => {
    // The same document as JSON, written two ways (yaml package, library parser), hashes the same.
    write('a.json', JSON.stringify(load('a.yaml'), null, 2));
    write('a.compact.json', JSON.stringify(parseAgreementText(read('a.yaml'))));
    const [fromYaml, fromJson, fromCompact, validated] = await Promise.all([
      run(['agreement', 'hash', 'a.yaml']),
      run(['agreement', 'hash', 'a.json']),
      run(['agreement', 'hash', 'a.compact.json']),
      run(['agreement', 'validate', 'a.json']),
    ]);
    expect(fromYaml.code).toBe(0);
    expect(fromYaml.stderr).toBe('');
    expect(fromYaml.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    // hashV1 was computed by the library from the YAML text.
    expect(fromYaml.stdout).toBe(`${hashV1}\n`);
    expect(fromJson.code).toBe(0);
    expect(fromJson.stdout).toBe(`${hashV1}\n`);
    expect(fromCompact.stdout).toBe(`${hashV1}\n`);
    expect(validated.stdout).toBe(`a.json: valid malus.agreement/v1 (campaign-measurement v1, ${hashV1})\n`);
  });

  it('prints an example to standard output without any key files', async () => {
    const init = await run(['agreement', 'init', '--id', 'my-collab']);
    expect(init.code).toBe(0);
    expect(init.stderr).toBe('');
    expect(init.stdout).toContain('# A Malus collaboration agreement');
    expect(init.stdout).toContain('id: my-collab');
    // Fresh placeholder parties, and a document that validates.
    const agreement = assertAgreement(parseAgreementText(init.stdout));
    expect(agreement.parties).toHaveLength(3);
    expect(agreement.parties.map((p) => p.id)).not.toContain(ids.adv);
  });
});

describe.concurrent('agreement validate on malformed files', () => {
  it('reports a bad column type with its JSON path', async () => {
    const doc = load('a.yaml');
    doc.tables[1].columns[0].type = 'TEXT';
    write('bad-type.json', JSON.stringify(doc, null, 2));
    const checked = await run(['agreement', 'validate', 'bad-type.json']);
    expect(checked.code).toBe(2);
    expect(checked.stdout).toBe('');
    expect(lines(checked.stderr)).toEqual(['error: bad-type.json has 1 error', TYPE_ERROR]);
  });

  it('reports the same error in a YAML file', async () => {
    write('bad-type.yaml', read('a.yaml').replace('- { name: email_hash, type: VARCHAR, normalize: [trim, lowercase] }', '- { name: email_hash, type: TEXT, normalize: [trim, lowercase] }'));
    const checked = await run(['agreement', 'validate', 'bad-type.yaml']);
    expect(checked.code).toBe(2);
    expect(lines(checked.stderr)).toEqual(['error: bad-type.yaml has 1 error', TYPE_ERROR]);
  });

  it('reports every error at once, each on its own line', async () => {
    const doc = load('a.yaml');
    doc.version = 0;
    doc.parties[0].roles = ['king'];
    doc.tables[1].columns[0].type = 'TEXT';
    doc.colour = 'blue';
    write('many.json', JSON.stringify(doc, null, 2));
    const checked = await run(['agreement', 'validate', 'many.json']);
    expect(checked.code).toBe(2);
    const got = lines(checked.stderr);
    expect(got[0]).toBe('error: many.json has 4 errors');
    expect(got.slice(1).sort()).toEqual(
      [
        'version: expected at least 1',
        'parties[0].roles[0]: expected one of provider, analyst, receiver, payer, payee, auditor, signer',
        TYPE_ERROR,
        'colour: unknown field',
      ].sort(),
    );
    expect(hasStackTrace(checked.stderr)).toBe(false);
  });

  it('reports an unknown field deep in the document', async () => {
    write('unknown.yaml', read('a.yaml').replace('    identityColumn: email_hash    #', '    identityColumns: email_hash    #'));
    const checked = await run(['agreement', 'validate', 'unknown.yaml']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toContain('\ntables[0].identityColumns: unknown field\n');
  });

  it('reports a missing required field', async () => {
    const doc = load('a.yaml');
    delete doc.title;
    write('untitled.json', JSON.stringify(doc));
    const checked = await run(['agreement', 'validate', 'untitled.json']);
    expect(checked.code).toBe(2);
    expect(lines(checked.stderr)).toEqual(['error: untitled.json has 1 error', 'title: required (expected string)']);
  });

  it('reports invalid YAML with the line', async () => {
    write('broken.yaml', 'format: malus.agreement/v1\nparties: [\n');
    const checked = await run(['agreement', 'validate', 'broken.yaml']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(/^error: broken\.yaml is not valid YAML or JSON\nline \d+, column \d+: /);
    expect(hasStackTrace(checked.stderr)).toBe(false);
  });

  it('reports invalid JSON', async () => {
    write('broken.json', '{"format": "malus.agreement/v1",');
    const checked = await run(['agreement', 'validate', 'broken.json']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(/^error: broken\.json is not valid JSON: /);
  });

  it('reports a missing file', async () => {
    const checked = await run(['agreement', 'validate', 'missing.yaml']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toBe('error: cannot read agreement missing.yaml: ENOENT\n');
    const hashed = await run(['agreement', 'hash', 'missing.yaml']);
    expect(hashed.code).toBe(2);
    expect(hashed.stderr).toBe('error: cannot read agreement missing.yaml: ENOENT\n');
  });

  it('is bad usage without a file argument', async () => {
    const checked = await run(['agreement', 'validate']);
    expect(checked.code).toBe(2);
    expect(checked.stderr).toContain("error: missing required argument 'file'");
  });
});

describe.concurrent('agreement sign and verify', () => {
  it('signs with each signer key', async () => {
    const [adv, pub] = signResults;
    expect(adv?.stderr).toBe('wrote signature both/adv.sig.json\n');
    expect(pub?.stderr).toBe('wrote signature both/pub.sig.json\n');
    expect(adv?.stdout).toBe('');
    const signature = JSON.parse(read('both/adv.sig.json')) as Record<string, unknown>;
    expect(signature).toMatchObject({ format: 'malus.signature/v1', collaboration: 'campaign-measurement', version: 1, hash: hashV1, signer: ids.adv });
    expect(JSON.parse(read('both/pub.sig.json'))).toMatchObject({ hash: hashV1, signer: ids.pub });
    // To standard output without --out.
    const toStdout = await run(['agreement', 'sign', 'a.yaml', '--key', 'adv.json']);
    expect(toStdout.code).toBe(0);
    expect(toStdout.stderr).toBe('');
    expect(JSON.parse(toStdout.stdout)).toMatchObject({ hash: hashV1, signer: ids.adv });
  });

  it('is active once both signers have signed', async () => {
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both']);
    expect(verified.code).toBe(0);
    expect(verified.stderr).toBe('');
    expect(lines(verified.stdout)).toEqual([
      `campaign-measurement v1 ${hashV1}`,
      `  signed    ${ids.adv}  adv party`,
      `  signed    ${ids.pub}  pub party`,
      'state: active',
    ]);
    // Signature files may also be named one by one, and --require-active passes.
    const files = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both/adv.sig.json', 'both/pub.sig.json', '--require-active']);
    expect(files.code).toBe(0);
    expect(files.stdout).toContain('state: active');
  });

  it('prints JSON with --json', async () => {
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', '--json']);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toEqual({
      hash: hashV1,
      version: 1,
      state: 'active',
      signed: [ids.adv, ids.pub],
      missing: [],
      rejected: [],
      supersededBy: null,
    });
  });

  it('is proposed with one signature', async () => {
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'adv-only']);
    expect(verified.code).toBe(0);
    expect(lines(verified.stdout)).toEqual([
      `campaign-measurement v1 ${hashV1}`,
      `  signed    ${ids.adv}  adv party`,
      `  missing   ${ids.pub}  pub party`,
      'state: proposed',
    ]);
    const required = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'adv-only', '--require-active']);
    expect(required.code).toBe(1);
    expect(required.stdout).toContain('state: proposed');
    expect(required.stderr).toBe('error: agreement is proposed, not active\n');
  });

  it('is a draft with no signatures', async () => {
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'none']);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain(`  missing   ${ids.adv}  adv party\n  missing   ${ids.pub}  pub party\n`);
    expect(verified.stdout).toMatch(/\nstate: draft\n$/);
  });

  it('is expired after validUntil', async () => {
    const after = new Date(Date.parse(String(load('a.yaml').validUntil)) + 1000).toISOString();
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', '--at', after]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/\nstate: expired\n$/);
    const before = new Date(Date.parse(String(load('a.yaml').validUntil)) - 1000).toISOString();
    expect((await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', '--at', before])).stdout).toMatch(/\nstate: active\n$/);
  });

  it('refuses a bad --at', async () => {
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', '--at', 'yesterday']);
    expect(verified.code).toBe(2);
    expect(verified.stderr).toBe('error: --at must be an RFC 3339 time, not "yesterday"\n');
  });

  it('rejects a tampered signature', async () => {
    const signature = JSON.parse(read('both/adv.sig.json')) as { signature: string };
    const first = signature.signature[0] === 'A' ? 'B' : 'A';
    write('tampered/adv.sig.json', JSON.stringify({ ...signature, signature: first + signature.signature.slice(1) }));
    write('tampered/pub.sig.json', read('both/pub.sig.json'));
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'tampered']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain(`  rejected  ${ids.adv}  signature-invalid: signature by ${ids.adv} (adv party) does not verify\n`);
    expect(verified.stdout).toContain(`  signed    ${ids.pub}  pub party\n`);
    expect(verified.stdout).toContain('state: proposed');
    expect(verified.stderr).toBe('error: 1 signature(s) refused\n');
  });

  it('refuses a signature file that is not a signature', async () => {
    write('junk.sig.json', '{"format":"malus.signature/v1"}');
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'junk.sig.json']);
    expect(verified.code).toBe(2);
    expect(verified.stderr).toMatch(/^error: junk\.sig\.json is not a malus\.signature\/v1 file\n/);
    const missing = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'no-such-dir']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('error: cannot read no-such-dir: ENOENT\n');
  });

  it('will not sign for a party without the signer role, and verify rejects such a signature', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'op.json', '--out', 'operator/op.sig.json']);
    expect(signed.code).toBe(1);
    expect(signed.stderr).toBe(`error: party ${ids.op} (op party) does not have the signer role\n`);
    expect(hasStackTrace(signed.stderr)).toBe(false);
    forgeSignature('a.yaml', 'op.json', 'operator/op.sig.json');
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'operator']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain(`  rejected  ${ids.op}  signature-not-signer: party ${ids.op} (op party) does not have the signer role\n`);
    expect(verified.stdout).toContain('state: draft');
  });

  it('will not sign with a key that is not a party, and verify rejects such a signature', async () => {
    const signed = await run(['agreement', 'sign', 'a.yaml', '--key', 'stranger.json']);
    expect(signed.code).toBe(1);
    expect(signed.stderr).toBe(`error: key stranger.json (party ${ids.stranger}) is not a party to campaign-measurement\n`);
    expect(signed.stdout).toBe('');
    forgeSignature('a.yaml', 'stranger.json', 'stranger/stranger.sig.json');
    const verified = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'stranger', 'both']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain(`  rejected  ${ids.stranger}  signature-not-party: signer ${ids.stranger} is not a party to this agreement\n`);
    expect(verified.stdout).toContain('state: active');
    expect(verified.stderr).toBe('error: 1 signature(s) refused\n');
  });

  it('rejects signatures made for a different agreement', async () => {
    write('retitled.yaml', read('a.yaml').replace(/^title: .*$/m, 'title: A different title'));
    const hashed = await run(['agreement', 'hash', 'retitled.yaml']);
    expect(hashed.code).toBe(0);
    const otherHash = hashed.stdout.trim();
    expect(otherHash).not.toBe(hashV1);
    const verified = await run(['agreement', 'verify', 'retitled.yaml', '--signatures', 'both']);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toContain(`campaign-measurement v1 ${otherHash}\n`);
    expect(verified.stdout).toContain(
      `  rejected  ${ids.adv}  signature-wrong-hash: signature by ${ids.adv} is over ${hashV1}, not this agreement (${otherHash})\n`,
    );
    expect(verified.stdout).toContain(`  rejected  ${ids.pub}  signature-wrong-hash:`);
    expect(verified.stdout).toContain('state: draft');
    expect(verified.stderr).toBe('error: 2 signature(s) refused\n');
  });

  it('is superseded once a successor is active', async () => {
    write('v2.yaml', read('a.yaml').replace(/^version: 1$/m, 'version: 2').replace(/^previous: null /m, `previous: ${hashV1} `));
    const valid = await run(['agreement', 'validate', 'v2.yaml']);
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain('(campaign-measurement v2, sha256:');
    const hashV2 = (await run(['agreement', 'hash', 'v2.yaml'])).stdout.trim();
    for (const party of ['adv', 'pub']) {
      const signed = await run(['agreement', 'sign', 'v2.yaml', '--key', `${party}.json`, '--out', `v2-sigs/${party}.sig.json`]);
      expect(signed.code).toBe(0);
    }
    write('v2-adv-only/adv.sig.json', read('v2-sigs/adv.sig.json'));

    const superseded = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', 'v2-sigs', '--successor', 'v2.yaml']);
    expect(superseded.code).toBe(0);
    expect(lines(superseded.stdout)).toEqual([
      `campaign-measurement v1 ${hashV1}`,
      `  signed    ${ids.adv}  adv party`,
      `  signed    ${ids.pub}  pub party`,
      `  superseded by ${hashV2}`,
      'state: superseded',
    ]);
    // A successor signed by only one party does not replace the active version.
    const pending = await run(['agreement', 'verify', 'a.yaml', '--signatures', 'both', 'v2-adv-only', '--successor', 'v2.yaml']);
    expect(pending.code).toBe(0);
    expect(pending.stdout).toMatch(/\nstate: active\n$/);
    expect(pending.stdout).not.toContain('superseded');
    // The successor itself is active on its own signatures.
    const v2 = await run(['agreement', 'verify', 'v2.yaml', '--signatures', 'v2-sigs']);
    expect(v2.code).toBe(0);
    expect(v2.stdout).toMatch(/\nstate: active\n$/);
  });
});
