import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, parseAgreementText, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createClient, getLogEntries, listRuns, proposeCollaboration, signCollaboration } from '../../src/client/index.js';
import { generatePartyKeys, writeKeyFile, type PartyKeys } from '../../src/identity/index.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus psi run` as two real processes, receiver and sender, against a real `malus serve`, under the
// example agreement's `customer_overlap` (cardinality, trim + lowercase).

let dir: string;
let server: ServerProcess | undefined;
let agreement: Agreement;
let operator: PartyKeys;
const run = (args: string[], timeoutMs = 60_000) => malus(args, { cwd: dir, timeoutMs });
const on = (key: string): string[] => ['--server', server?.url ?? '', '--key', key, '--collab', agreement.id];

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  const adv = generatePartyKeys('adv party');
  const pub = generatePartyKeys('pub party');
  const op = generatePartyKeys('op party');
  operator = op;
  writeKeyFile(join(dir, 'adv.json'), adv);
  writeKeyFile(join(dir, 'pub.json'), pub);
  writeKeyFile(join(dir, 'op.json'), op);
  server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
  expect((await run(['agreement', 'init', '--out', 'a.yaml', '--advertiser', 'adv.json', '--publisher', 'pub.json', '--operator', 'op.json'])).code).toBe(0);
  const draft = assertAgreement(parseAgreementText(readFileSync(join(dir, 'a.yaml'), 'utf8')));
  agreement = assertAgreement({ ...draft, id: 'psi-cli', validFrom: new Date(Date.now() - 60_000).toISOString() });
  const sign = (party: PartyKeys) => signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
  const client = (keys: PartyKeys) => createClient({ server: server?.url ?? '', keys });
  await proposeCollaboration(client(adv), { agreement, signature: sign(adv) });
  await signCollaboration(client(pub), agreement.id, sign(pub));
  // Different spellings of the same addresses on the two sides: the agreement's normalizers join them.
  writeFileSync(join(dir, 'buyers.csv'), ['email,total', ...Array.from({ length: 40 }, (_, i) => `Buyer${i}@Example.com,${i}`)].join('\n'));
  writeFileSync(join(dir, 'viewers.csv'), ['user,email', ...Array.from({ length: 30 }, (_, i) => `u${i}, buyer${i + 25}@example.com `)].join('\n'));
}, 90_000);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => { resolve(port); });
    });
  });
}

afterAll(async () => {
  await server?.kill();
  removeDir(dir);
});

describe('malus psi run', () => {
  it('the receiver learns the overlap size, the sender the receiver’s set size, and the log the sizes only', async () => {
    const [receiver, sender] = await Promise.all([
      run(['psi', 'run', ...on('adv.json'), '--role', 'receiver', '--input', 'buyers.csv', '--column', 'email', '--out', 'overlap.json']),
      run(['psi', 'run', ...on('pub.json'), '--role', 'sender', '--input', 'viewers.csv', '--column', 'email']),
    ]);
    expect(receiver.code, receiver.stderr).toBe(0);
    expect(sender.code, sender.stderr).toBe(0);
    expect(receiver.stdout).toMatch(/^customer_overlap \(cardinality, run run-[0-9a-f]{32}\): 15 shared of your 40; the sender brought 30 \(exact\)\n$/);
    expect(receiver.stderr).toMatch(/run run-[0-9a-f]{32} started/);
    expect(sender.stdout).toMatch(/^answered customer_overlap \(cardinality, run run-[0-9a-f]{32}\): the receiver brought 40 elements\n$/);
    const written = JSON.parse(readFileSync(join(dir, 'overlap.json'), 'utf8')) as { size: number; senderSetSize: number };
    expect(written).toMatchObject({ size: 15, senderSetSize: 30, receiverSetSize: 40, mode: 'cardinality' });
    const runs = await listRuns(createClient({ server: server?.url ?? '', keys: generatePartyKeys('x') }), agreement.id).catch(() => undefined);
    expect(runs).toBeUndefined(); // a stranger sees no runs
    const entries = (await getLogEntries(createClient({ server: server?.url ?? '', keys: operator }), agreement.id)).map((e) => e.entry);
    expect(entries.filter((e) => e.includes('"run.finished"'))).toHaveLength(1);
    expect(entries.join('\n')).toContain('"setSizes":{"receiver":40,"sender":30}');
    expect(entries.join('\n')).not.toContain('example.com');
  });

  it('runs directly between the two parties with --listen and --connect; the server only logs the run', async () => {
    const port = await freePort();
    const [receiver, sender] = await Promise.all([
      run(['psi', 'run', ...on('adv.json'), '--role', 'receiver', '--input', 'buyers.csv', '--column', 'email', '--connect', `http://127.0.0.1:${port}`, '--json']),
      run(['psi', 'run', ...on('pub.json'), '--role', 'sender', '--input', 'viewers.csv', '--column', 'email', '--listen', `127.0.0.1:${port}`]),
    ]);
    expect(receiver.code, receiver.stderr).toBe(0);
    expect(sender.code, sender.stderr).toBe(0);
    expect(sender.stderr).toContain(`listening for the receiver on http://127.0.0.1:${port}`);
    const shown = JSON.parse(receiver.stdout) as { run: string; size: number };
    expect(shown.size).toBe(15);
    const runs = await listRuns(createClient({ server: server?.url ?? '', keys: operator }), agreement.id);
    expect(runs.find((r) => r.id === shown.run)).toMatchObject({ state: 'finished', relayed: { messages: 0, bytes: 0 } });
  });

  it('refuses a mode the agreement does not allow, and bad input, with exit 1 and 2 and no stack trace', async () => {
    const mode = await run(['psi', 'run', ...on('adv.json'), '--role', 'receiver', '--input', 'buyers.csv', '--column', 'email', '--mode', 'intersection']);
    expect(mode.code).toBe(1);
    expect(mode.stderr).toContain('customer_overlap allows the modes cardinality, not intersection');
    const column = await run(['psi', 'run', ...on('adv.json'), '--role', 'receiver', '--input', 'buyers.csv', '--column', 'phone']);
    expect(column.code).toBe(2);
    expect(column.stderr).toContain('phone');
    writeFileSync(join(dir, 'holes.csv'), 'email\na@example.com\n\nb@example.com\n""\n');
    const holes = await run(['psi', 'run', ...on('adv.json'), '--role', 'receiver', '--input', 'holes.csv', '--column', 'email']);
    expect(holes.code).toBe(2);
    expect(holes.stderr).toMatch(/row \d+, column email: is empty/);
    const role = await run(['psi', 'run', ...on('op.json'), '--role', 'receiver', '--input', 'buyers.csv', '--column', 'email']);
    expect(role.code).toBe(1);
    expect(role.stderr).toContain('no PSI with this party as receiver');
    for (const r of [mode, column, holes, role]) expect(hasStackTrace(r.stderr)).toBe(false);
  });
});
