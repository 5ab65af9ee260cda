import { readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { INTEL_SGX_ROOT_CA_SHA256, verifyTdxQuote } from '../../src/attestation/index.js';

// The go-tdx-guest production quote (../shared/vectors/attestation/tdx), verified at 2023-07-01.

const DIR = '../shared/vectors/attestation/tdx';
const QUOTE = new Uint8Array(readFileSync(`${DIR}/tdx_prod_quote_SPR_E4.dat`));
const AT = new Date('2023-07-01T00:00:00Z');

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

describe('Intel TDX quotes (version 4)', () => {
  it('pins the Intel SGX Root CA by its published fingerprint', () => {
    const root = new X509Certificate(readFileSync(`${DIR}/intel_sgx_root_ca.pem`));
    expect(createHash('sha256').update(root.raw).digest('hex')).toBe(INTEL_SGX_ROOT_CA_SHA256);
  });

  it('verifies the quote, the QE binding and the PCK chain, and gives its claims', () => {
    const result = verifyTdxQuote(QUOTE, AT);
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    expect(result.claims.mrtd).toBe('6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb');
    expect(result.claims.reportData).toBe(
      '6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113',
    );
    expect(result.claims.tdAttributes).toBe('0000004000000000');
    expect(result.claims.debug).toBe(false);
    expect(result.claims.rtmrs).toHaveLength(4);
  });

  it('refuses a flipped byte in the TD report, the quote signature and the QE report', () => {
    expect(verifyTdxQuote(flip(QUOTE, 200), AT)).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    expect(verifyTdxQuote(flip(QUOTE, 640), AT)).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    expect(verifyTdxQuote(flip(QUOTE, 636 + 128 + 6 + 100), AT)).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
  });

  it('refuses an unpinned root, a time outside the chain and truncation', () => {
    expect(verifyTdxQuote(QUOTE, AT, { rootFingerprints: ['00'.repeat(32)] })).toMatchObject({ ok: false, reasons: [{ code: 'untrusted-root' }] });
    expect(verifyTdxQuote(QUOTE, new Date('2040-01-01T00:00:00Z'))).toMatchObject({ ok: false, reasons: [{ code: 'certificate-expired' }] });
    for (const length of [0, 47, 631, 700, 2000, QUOTE.length - 100]) {
      expect(verifyTdxQuote(QUOTE.subarray(0, length), AT), `length ${length}`).toMatchObject({ ok: false });
    }
  });
});
