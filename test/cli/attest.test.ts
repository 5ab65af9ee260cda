import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild, hasStackTrace, malus, removeDir, tempDir } from './helpers.js';

// `malus attest verify` on the real vectors, through the real binary.

const V = resolve('../shared/vectors/attestation');
let dir: string;
const run = (args: string[]) => malus(['attest', 'verify', ...args], { cwd: dir });

beforeAll(() => {
  assertFreshBuild();
  dir = tempDir('malus-cli-attest-');
});

afterAll(() => {
  removeDir(dir);
});

describe('malus attest verify', () => {
  it('accepts the Nitro vector (base64) and prints PCR0 as the measurement', async () => {
    const result = await run(['--evidence', `${V}/nitro/nitro_attestation.b64`, '--at', '2024-09-07T14:37:39.545Z', '--json']);
    expect(result.code).toBe(0);
    const verdict = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(verdict).toMatchObject({
      ok: true,
      platform: 'nitro',
      debug: false,
      reasons: [],
      measurement: 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a',
      claims: { moduleId: 'i-0a22e5c5f24d22174-enc0191cceb4289903f', timestamp: 1725719859545 },
    });
  });

  it('refuses the debug Nitro vector unless --allow-debug', async () => {
    const args = ['--evidence', `${V}/nitro/nitro_attestation_debug.b64`, '--at', '2024-09-07T14:38:06.508Z'];
    const refused = await run([...args, '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, debug: true, reasons: [{ code: 'debug-enclave' }] });
    expect((await run([...args, '--allow-debug'])).code).toBe(0);
  });

  it('accepts raw and PEM-wrapped evidence alike', async () => {
    const raw = Buffer.from(readFileSync(`${V}/nitro/nitro_attestation.b64`, 'utf8').trim(), 'base64');
    writeFileSync(join(dir, 'doc.bin'), raw);
    writeFileSync(join(dir, 'doc.pem'), `-----BEGIN ATTESTATION DOCUMENT-----\n${raw.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ATTESTATION DOCUMENT-----\n`);
    for (const file of ['doc.bin', 'doc.pem']) {
      expect((await run(['--evidence', join(dir, file), '--at', '2024-09-07T14:37:39.545Z'])).code, file).toBe(0);
    }
  });

  it('verifies SEV-SNP with the VCEK and ASK/ARK given in any order', async () => {
    const result = await run([
      '--evidence', `${V}/sev-snp/attestation.bin`, '--cert-chain', `${V}/sev-snp/vcek.der`, `${V}/sev-snp/ask_ark_milan.pem`,
      '--at', '2024-01-01T00:00:00Z', '--allow-debug', '--json',
    ]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      platform: 'sev-snp',
      measurement: 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01',
      claims: { version: 2, policy: '00000000000b0000', vmpl: 0, productName: 'Milan-B0', signingKey: 'vcek' },
    });
  });

  it("refuses a SEV-SNP report from another chip than the VCEK's", async () => {
    const report = readFileSync(`${V}/sev-snp/attestation.bin`);
    report[0x1a0] = (report[0x1a0] ?? 0) ^ 0x01;
    writeFileSync(join(dir, 'other-chip.bin'), report);
    const result = await run([
      '--evidence', join(dir, 'other-chip.bin'), '--cert-chain', `${V}/sev-snp/vcek.der`, `${V}/sev-snp/ask_ark_milan.pem`,
      '--at', '2024-01-01T00:00:00Z', '--allow-debug', '--json',
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, platform: 'sev-snp', reasons: [{ code: 'chip-mismatch' }] });
  });

  it('verifies the NVIDIA hex report with its device chain, detected or named', async () => {
    const report = ['--evidence', `${V}/nvidia/hopperAttestationReport.txt`, '--cert-chain', `${V}/nvidia/hopperCertChain.pem`, '--at', '2024-06-01T00:00:00Z'];
    const detected = await run([...report, '--json']);
    expect(detected.code).toBe(0);
    const verdict = JSON.parse(detected.stdout) as { measurement: string; claims: { measurements: Record<string, string> } };
    expect(verdict).toMatchObject({ ok: true, platform: 'nvidia', debug: false, reasons: [], claims: { spdmVersion: '1.1' } });
    expect(verdict.measurement).toMatch(/^[0-9a-f]{96}$/);
    expect(Object.keys(verdict.claims.measurements)).toHaveLength(64);
    expect((await run([...report, '--format', 'nvidia'])).code).toBe(0);
    const noChain = await run(['--evidence', `${V}/nvidia/hopperAttestationReport.txt`, '--at', '2024-06-01T00:00:00Z']);
    expect(noChain.code).toBe(1);
    expect(noChain.stderr).toContain('chain-invalid');
  });

  it('verifies TDX and refuses it under another root or after the chain expired', async () => {
    const quote = ['--evidence', `${V}/tdx/tdx_prod_quote_SPR_E4.dat`];
    const ok = await run([...quote, '--at', '2023-07-01T00:00:00Z', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ platform: 'tdx', debug: false, claims: { tdAttributes: '0000004000000000' } });
    const wrongRoot = await run([...quote, '--at', '2023-07-01T00:00:00Z', '--root', `${V}/nitro/aws_nitro_root_g1.pem`]);
    expect(wrongRoot.code).toBe(1);
    expect(wrongRoot.stderr).toContain('untrusted-root');
    expect((await run([...quote, '--at', '2040-01-01T00:00:00Z'])).code).toBe(1);
  });

  it('exits 2 on bad usage, with no stack trace', async () => {
    for (const args of [
      ['--evidence', `${V}/tdx/tdx_prod_quote_SPR_E4.dat`, '--format', 'bogus'],
      ['--evidence', `${V}/tdx/tdx_prod_quote_SPR_E4.dat`, '--at', 'yesterday'],
      ['--evidence', join(dir, 'missing.bin')],
      ['--evidence', `${V}/c3r/config_sample.json`],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(hasStackTrace(result.stderr)).toBe(false);
    }
  });
});
