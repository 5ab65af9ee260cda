import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createClient, getRun, proposeCollaboration, signCollaboration } from '../../src/client/index.js';
import { generatePartyKeys, writeKeyFile, type PartyKeys } from '../../src/identity/index.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, startDaemon, startServe, tempDir, type ServerProcess } from './helpers.js';

// `malus secagg start` and `malus secagg join` as real processes against a real `malus serve`:
// three providers sum their vectors, one of them is killed after sharing its keys (a real
// dropout), and bad input or a party outside the computation exits 2 without a stack trace.

let dir: string;
let server: ServerProcess | undefined;
let agreement: Agreement;
const keys: Record<'adv' | 'pub' | 'op' | 'carol', PartyKeys> = {
  adv: generatePartyKeys('cli adv'),
  pub: generatePartyKeys('cli pub'),
  op: generatePartyKeys('cli op'),
  carol: generatePartyKeys('cli carol'),
};
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 40_000 });
const on = (key: string): string[] => ['--server', server?.url ?? '', '--key', key, '--collab', agreement.id];
const RUN_ID = /started run (run-[0-9a-f]{32})/;

const INPUTS = { adv: [1.5, -2.25, 1e6], pub: [10, 20.126, -3000], carol: [100.3, 0, 0.5] };

/** Each entry clipped to [-1000, 1000], quantized to 1/256, summed exactly. */
function plainSum(...vectors: number[][]): number[] {
  const out = [0, 0, 0];
  for (const v of vectors) v.forEach((x, i) => (out[i] = (out[i] ?? 0) + Math.round(Math.max(-1000, Math.min(1000, x)) * 256)));
  return out.map((q) => q / 256);
}

function secaggAgreement(id: string): Agreement {
  const base = exampleAgreement({ advertiser: keys.adv.identity, publisher: keys.pub.identity, operator: keys.op.identity }, { id, validFrom: new Date(Date.now() - 60_000) });
  const { id: carolId, name, signingKey, encryptionKey } = keys.carol.identity;
  return assertAgreement(
    {
      ...base,
      parties: [...base.parties, { id: carolId, name, signingKey, encryptionKey, roles: ['provider'] }],
      secureAggregation: [
        {
          name: 'spend_total',
          parties: [keys.adv.identity.id, keys.pub.identity.id, carolId],
          threshold: 2,
          vectorLength: 3,
          clip: 1000,
          fractionBits: 8,
          receivers: [keys.adv.identity.id],
        },
      ],
    },
    'secagg CLI agreement',
  );
}

/** `secagg start` as a background process, once it has printed the run id. */
function startAggregator(extra: string[] = []): Promise<ServerProcess> {
  return startDaemon(['secagg', 'start', ...on('adv.json'), '--computation', 'spend_total', '--input', 'adv.vec', '--round-timeout', '2', ...extra], dir, RUN_ID, 20_000);
}

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir();
  for (const [name, k] of Object.entries(keys)) writeKeyFile(join(dir, `${name}.json`), k);
  writeKeyFile(join(dir, 'stranger.json'), generatePartyKeys('cli stranger'));
  writeFileSync(join(dir, 'adv.vec'), JSON.stringify(INPUTS.adv));
  writeFileSync(join(dir, 'pub.vec'), JSON.stringify({ vector: INPUTS.pub }));
  writeFileSync(join(dir, 'carol.vec'), JSON.stringify(INPUTS.carol));
  writeFileSync(join(dir, 'bad.vec'), '[1, "two", 3]');
  server = await startServe(join(dir, 'data'), dir, 15_000, ['--no-worker']);
  agreement = secaggAgreement('secagg-cli');
  const client = (k: PartyKeys) => createClient({ server: server?.url ?? '', keys: k });
  const signature = (k: PartyKeys) => signAgreement(agreement, agreementHash(agreement), { partyId: k.identity.id, signingSecret: k.signingSecret }, new Date());
  await proposeCollaboration(client(keys.adv), { agreement, signature: signature(keys.adv) });
  await signCollaboration(client(keys.pub), agreement.id, signature(keys.pub));
}, 90_000);

afterAll(async () => {
  await server?.kill();
  removeDir(dir);
});

describe('malus secagg', () => {
  it('start prints the run id at once, the parties join, and the aggregator prints the sum', async () => {
    const aggregator = await startAggregator();
    const runId = aggregator.url;
    const [pub, carol] = await Promise.all([
      run(['secagg', 'join', ...on('pub.json'), '--round', runId, '--input', 'pub.vec']),
      run(['secagg', 'join', ...on('carol.json'), '--round', runId, '--input', 'carol.vec', '--json']),
    ]);
    const ended = await aggregator.exited;
    expect(ended.code, aggregator.stderr()).toBe(0);
    expect(pub.code, pub.stderr).toBe(0);
    expect(carol.code, carol.stderr).toBe(0);

    const out = aggregator.stdout();
    expect(out).toContain(`run ${runId}: the sum of 3 contributors, 0 dropped\n`);
    const sumLine = /^ {2}sum: (.*)$/m.exec(out)?.[1];
    expect(JSON.parse(sumLine ?? 'null')).toEqual(plainSum(INPUTS.adv, INPUTS.pub, INPUTS.carol));
    // Progress goes to standard error, a line per round when it is not a terminal.
    expect(aggregator.stderr()).toContain('round 2 masked-input: 3 of 3 parties\n');
    expect(pub.stderr).toContain('round 4 unmasking: sent');
    expect(pub.stdout).toBe(`run ${runId} finished: 3 contributors, 0 dropouts; the sum went to the receivers\n`);
    expect(JSON.parse(carol.stdout)).toEqual({ run: runId, collaboration: agreement.id, computation: 'spend_total', state: 'finished', contributors: 3, dropouts: 0 });
  });

  it('goes on without a party killed after it shared its keys, and writes the sum with --out', async () => {
    const aggregator = await startAggregator(['--out', 'sum.json']);
    const runId = aggregator.url;
    // The publisher first: round 0 closes (and carol gets to round 1) only once it has joined.
    const pubRun = run(['secagg', 'join', ...on('pub.json'), '--round', runId, '--input', 'pub.vec']);
    // Carol is killed (SIGKILL) as soon as it has sent its round-1 message.
    const carol = await startDaemon(['secagg', 'join', ...on('carol.json'), '--round', runId, '--input', 'carol.vec'], dir, /round 1 share-keys: sent/, 20_000);
    await carol.kill();
    const pub = await pubRun;
    const ended = await aggregator.exited;
    expect(ended.code, aggregator.stderr()).toBe(0);
    expect(pub.code, pub.stderr).toBe(0);
    expect(aggregator.stderr()).toContain('round 2 masked-input: 2 of 3 parties\n');
    expect(aggregator.stderr()).toContain('wrote sum sum.json\n');
    expect(aggregator.stdout()).toContain(`run ${runId}: the sum of 2 contributors, 1 dropped\n`);
    const written = JSON.parse(readFileSync(join(dir, 'sum.json'), 'utf8')) as { sum: number[]; contributors: string[]; dropped: string[] };
    expect(written).toEqual({
      run: runId,
      collaboration: agreement.id,
      computation: 'spend_total',
      contributors: [keys.adv.identity.id, keys.pub.identity.id].sort(),
      dropped: [keys.carol.identity.id],
      sum: plainSum(INPUTS.adv, INPUTS.pub),
    });
    const view = await getRun(createClient({ server: server?.url ?? '', keys: keys.adv }), agreement.id, runId);
    expect(view).toMatchObject({ state: 'finished', summary: { kind: 'secagg', contributors: 2, dropouts: 1 } });
  });

  it('exits 2 on bad input, a bad option, or a caller outside the computation, without a stack trace', async () => {
    const cases = [
      { args: ['secagg', 'start', ...on('adv.json'), '--computation', 'spend_total', '--input', 'bad.vec'], text: 'vector file bad.vec: entry 1 is not a finite number (got the string "two")' },
      { args: ['secagg', 'start', ...on('adv.json'), '--computation', 'spend_total', '--input', 'missing.vec'], text: 'cannot read vector file missing.vec: ENOENT' },
      { args: ['secagg', 'start', ...on('adv.json'), '--computation', 'spend_total', '--input', 'carol.vec', '--round-timeout', 'soon'], text: '--round-timeout soon: expected a positive number of seconds' },
      { args: ['secagg', 'start', ...on('pub.json'), '--computation', 'spend_total', '--input', 'pub.vec'], text: 'only a receiver of spend_total aggregates it' },
      { args: ['secagg', 'start', ...on('adv.json'), '--computation', 'spend_total', '--input', 'pub.vec', '--out', 'bad.vec'], text: '--out bad.vec: it already exists' },
      { args: ['secagg', 'join', ...on('pub.json'), '--input', 'pub.vec'], text: "required option '--round <run-id>' not specified" },
      { args: ['secagg', 'join', ...on('stranger.json'), '--round', `run-${'0'.repeat(32)}`, '--input', 'pub.vec'], text: 'not found' },
    ];
    for (const { args, text } of cases) {
      const result = await run(args);
      expect(result.code, `${args.join(' ')}\n${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(text);
      expect(hasStackTrace(result.stderr)).toBe(false);
    }

    // The operator is a member but not a party of spend_total: refused before it sends anything.
    const aggregator = await startAggregator(['--join-timeout', '3']);
    const outsider = await run(['secagg', 'join', ...on('op.json'), '--round', aggregator.url, '--input', 'pub.vec']);
    expect(outsider.code).toBe(2);
    expect(outsider.stderr).toContain(`${keys.op.identity.id} is neither a party nor a receiver of spend_total`);
    // Nobody else joins: round 0 times out with only the aggregator, and the run fails.
    const ended = await aggregator.exited;
    expect(ended.code).toBe(2);
    expect(aggregator.stderr()).toContain('round 0 has 1 messages, fewer than the threshold 2');
    expect(hasStackTrace(aggregator.stderr())).toBe(false);
  });
});
