import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifySevSnpReport } from '../../src/attestation/index.js';

// The go-sev-guest report and certificates (../shared/vectors/attestation/sev-snp).

const DIR = '../shared/vectors/attestation/sev-snp';
const REPORT = new Uint8Array(readFileSync(`${DIR}/attestation.bin`));
const VCEK = new Uint8Array(readFileSync(`${DIR}/vcek.der`));
const pemChain = (name: string): Uint8Array[] =>
  readFileSync(`${DIR}/${name}`, 'utf8')
    .split(/(?=-----BEGIN CERTIFICATE-----)/)
    .map((pem) => new Uint8Array(new X509Certificate(pem).raw));
const MILAN = pemChain('ask_ark_milan.pem');
const GENOA = pemChain('ask_ark_genoa.pem');
const AT = new Date('2024-01-01T00:00:00Z');

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

describe('AMD SEV-SNP attestation reports', () => {
  it('verifies the report through VCEK -> ASK -> ARK (Milan), certificates in any order, and parses its fields', () => {
    const result = verifySevSnpReport(REPORT, AT, { certificates: [MILAN[1]!, VCEK, MILAN[0]!] });
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    const { claims } = result;
    expect(claims.version).toBe(2);
    expect(claims.policy).toBe('00000000000b0000');
    expect(claims.measurement).toBe('b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01');
    expect(claims.reportData).toBe(`0102030405${'00'.repeat(59)}`);
    expect(claims.hostData).toBe('00'.repeat(32));
    expect(claims.signingKey).toBe('vcek');
    expect(claims.chipId).toMatch(/^[0-9a-f]{128}$/);
    // 0xb0000 sets bits 16, 17 and 19; bit 19 is DEBUG in the SEV-SNP ABI's guest policy, so this
    // report allows debugging (the vectors' README says otherwise; the bits decide).
    expect(claims.debug).toBe(true);
  });

  it('refuses a flipped byte in the signed part and in the signature', () => {
    const certificates = [VCEK, ...MILAN];
    expect(verifySevSnpReport(flip(REPORT, 0x90), AT, { certificates })).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    expect(verifySevSnpReport(flip(REPORT, 0x2a0 + 5), AT, { certificates })).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
  });

  it('refuses the wrong product line, an unpinned root and a time outside the VCEK', () => {
    expect(verifySevSnpReport(REPORT, AT, { certificates: [VCEK, ...GENOA] })).toMatchObject({ ok: false, reasons: [{ code: 'chain-invalid' }] });
    expect(verifySevSnpReport(REPORT, AT, { certificates: [VCEK, ...MILAN], arkFingerprints: ['00'.repeat(32)] })).toMatchObject({
      ok: false,
      reasons: [{ code: 'untrusted-root' }],
    });
    expect(verifySevSnpReport(REPORT, new Date('2030-01-01T00:00:00Z'), { certificates: [VCEK, ...MILAN] })).toMatchObject({
      ok: false,
      reasons: [{ code: 'certificate-expired' }],
    });
  });

  it('refuses truncated reports and unknown versions', () => {
    const certificates = [VCEK, ...MILAN];
    expect(verifySevSnpReport(REPORT.subarray(0, 1183), AT, { certificates })).toMatchObject({ ok: false, reasons: [{ code: 'malformed' }] });
    const v9 = Uint8Array.from(REPORT);
    v9[0] = 9;
    expect(verifySevSnpReport(v9, AT, { certificates })).toMatchObject({ ok: false, reasons: [{ code: 'malformed' }] });
  });
});
