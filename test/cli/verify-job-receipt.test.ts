import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash } from '../../src/agreement/index.js';
import { statementHash } from '../../src/engine/index.js';
import { jobReceiptFixture, type Fixture } from '../engine/job-receipt-fixture.js';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus verify` on a job receipt, through the built CLI: a real receipt made in-process (a real
// log, real sim evidence, a statement signed by the worker's key), and one with a changed result.

let dir: string;
let f: Fixture;
const run = (args: string[]) => malus(args, { cwd: dir, timeoutMs: 30_000 });

beforeAll(async () => {
  assertFreshBuild();
  dir = tempDir('malus-verify-job-');
  f = await jobReceiptFixture();
  writeFileSync(join(dir, 'job.json'), JSON.stringify(f.receipt));
  const output = structuredClone(f.statement.output) as { result: { rows: number } };
  output.result.rows += 1;
  writeFileSync(join(dir, 'tampered.json'), JSON.stringify({ ...f.receipt, statement: { ...f.signed, statement: { ...f.statement, output } } }));
  writeFileSync(join(dir, 'agreement.json'), JSON.stringify(f.agreement));
  writeFileSync(join(dir, 'other-agreement.json'), JSON.stringify(f.unpinned));
});

afterAll(() => {
  removeDir(dir);
});

describe('malus verify on a job receipt', () => {
  it('exit 0 on a good receipt: lists the entry, checkpoint, job, key, evidence, agreement and result, and says SIMULATED', async () => {
    const result = await run(['verify', 'job.json', '--log-key', f.logKey, '--sim-root', f.simRoot]);
    expect(result.code, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).toContain('job receipt verified: entry 2 (job.finished, receipt-collab)');
    expect(out).toContain('SIMULATED TEE: NOT CONFIDENTIAL');
    expect(out).toContain('in checkpoint receipts.example/log size 3');
    expect(out).toContain(`job: ${f.statement.job} (query) succeeded`);
    expect(out).toContain(`statement signed by enclave key ${f.identity.id}`);
    expect(out).toContain(`evidence: sim, measurement ${f.statement.enclave.measurement}`);
    expect(out).toContain(`agreement: ${agreementHash(f.agreement)} (embedded in the receipt`);
    expect(out).toContain(`result: ${statementHash(f.statement)}`);

    const given = await run(['verify', 'job.json', '--log-key', f.logKey, '--sim-root', f.simRoot, '--agreement', 'agreement.json']);
    expect(given.code, given.stderr).toBe(0);
    expect(given.stdout).toContain('(from agreement.json)');

    const json = await run(['verify', 'job.json', '--log-key', f.logKey, '--sim-root', f.simRoot, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, simulated: true, agreement: { source: 'embedded' }, result: statementHash(f.statement) });
  });

  it('exit 1 on a tampered receipt, on sim evidence without --sim-root, and on another agreement; 2 on bad usage', async () => {
    const cases: { args: string[]; code: number; stderr: string }[] = [
      { args: ['verify', 'tampered.json', '--log-key', f.logKey, '--sim-root', f.simRoot], code: 1, stderr: 'job receipt does not verify at step statement' },
      { args: ['verify', 'job.json', '--log-key', f.logKey], code: 1, stderr: 'pass --sim-root' },
      { args: ['verify', 'job.json', '--log-key', f.logKey, '--sim-root', f.simRoot, '--agreement', 'other-agreement.json'], code: 1, stderr: 'at step policy' },
      { args: ['verify', 'job.json', '--log-key', f.logKey, '--sim-root', 'ABC'], code: 2, stderr: '--sim-root ABC: expected the SHA-256 fingerprint' },
      { args: ['verify', 'job.json', '--log-key', f.logKey, '--sim-root', f.simRoot, '--agreement', 'missing.json'], code: 2, stderr: 'cannot read agreement missing.json' },
    ];
    for (const c of cases) {
      const result = await run(c.args);
      expect(result.code, `${c.args.join(' ')}\n${result.stderr}`).toBe(c.code);
      expect(result.stderr).toContain(c.stderr);
      expect(hasStackTrace(result.stderr)).toBe(false);
    }
    const tamperedJson = await run(['verify', 'tampered.json', '--log-key', f.logKey, '--sim-root', f.simRoot, '--json']);
    expect(tamperedJson.code).toBe(1);
    expect(JSON.parse(tamperedJson.stdout)).toMatchObject({ ok: false, step: 'statement' });
  });
});
