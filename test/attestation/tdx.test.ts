import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { INTEL_SGX_ROOT_CA_SHA256, verifyTdxQuote } from '../../src/attestation/index.js';
import { buildCertificate, toPem } from './x509-builder.js';

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

const codes = (result: { ok: boolean; reasons?: readonly { code: string }[] }): string[] => (result.reasons ?? []).map((r) => r.code);

describe('Intel TDX quotes: hostile sizes', () => {
  it('gives version 4 in the claims and no TDX 1.5 fields', () => {
    const result = verifyTdxQuote(QUOTE, AT);
    expect(result.ok && [result.claims.version, result.claims.teeTcbSvn2, result.claims.mrServiceTd]).toEqual([4, null, null]);
  });

  it('refuses truncated and oversized quotes as malformed', () => {
    for (const length of [0, 47, 53, 631, 635, 700, 2000, QUOTE.length - 100]) {
      expect(codes(verifyTdxQuote(QUOTE.subarray(0, length), AT)), `length ${length}`).toEqual(['malformed']);
    }
    const oversized = new Uint8Array(64 * 1024 + 1);
    oversized.set(QUOTE);
    expect(codes(verifyTdxQuote(oversized, AT))).toEqual(['malformed']);
    // A signature data length that runs past the end.
    const long = Buffer.from(QUOTE);
    long.writeUInt32LE(0xffffffff, 632);
    expect(codes(verifyTdxQuote(long, AT))).toEqual(['malformed']);
  });
});

// There is no real version 5 quote in the vectors, and one cannot be made from the v4 vector (its
// signatures would break). So a v5 quote is built here exactly as a Quoting Enclave lays it out,
// with real keys: a test root and PCK certificate (P-256), a QE report signed by the PCK key that
// binds a fresh attestation key, and the quote signed by that key. The test root is passed as the
// pinned root. What is covered by real bytes is the v4 path; the v5 layout and signed range are
// covered here.
describe('Intel TDX quotes (version 5, synthetic)', () => {
  const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const root = p256();
  const pck = p256();
  const attestation = p256();
  const rootDer = buildCertificate({ subject: 'Test SGX Root CA', issuer: 'Test SGX Root CA', publicKey: root.publicKey, signingKey: root.privateKey, hash: 'sha256', ca: true });
  const pckDer = buildCertificate({ subject: 'Test PCK', issuer: 'Test SGX Root CA', publicKey: pck.publicKey, signingKey: root.privateKey, hash: 'sha256', ca: false });
  const trust = { rootFingerprints: [createHash('sha256').update(rootDer).digest('hex')] };
  const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

  function body(length: 584 | 648): Buffer {
    const b = Buffer.alloc(length);
    for (let i = 0; i < length; i++) b[i] = (i * 7 + 3) & 0xff;
    b.fill(0, 120, 128); // TD attributes: debug off
    return b;
  }

  function quoteV5(type: number, report: Buffer, tamper?: (signed: Buffer) => void): Uint8Array {
    const header = Buffer.concat([u16(5), u16(2), u32(0x81), Buffer.alloc(4), Buffer.alloc(16, 0x93), Buffer.alloc(20)]);
    const signed = Buffer.concat([header, u16(type), u32(report.length), report]);
    const jwk = attestation.publicKey.export({ format: 'jwk' });
    const keyRaw = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    const authData = Buffer.from('qe auth data');
    const qeReport = Buffer.alloc(384, 0x11);
    createHash('sha256').update(keyRaw).update(authData).digest().copy(qeReport, 320);
    qeReport.fill(0, 352, 384);
    const qeSignature = sign('sha256', qeReport, { key: pck.privateKey, dsaEncoding: 'ieee-p1363' });
    const chainPem = Buffer.from(toPem(pckDer) + toPem(rootDer), 'latin1');
    const qeData = Buffer.concat([qeReport, qeSignature, u16(authData.length), authData, u16(5), u32(chainPem.length), chainPem]);
    const quoteSignature = sign('sha256', signed, { key: attestation.privateKey, dsaEncoding: 'ieee-p1363' });
    const signatureData = Buffer.concat([quoteSignature, keyRaw, u16(6), u32(qeData.length), qeData]);
    tamper?.(signed);
    return new Uint8Array(Buffer.concat([signed, u32(signatureData.length), signatureData]));
  }

  it('verifies a TDX 1.5 body (type 3, 648 bytes) and gives TEE_TCB_SVN_2 and MR_SERVICETD', () => {
    const report = body(648);
    const result = verifyTdxQuote(quoteV5(3, report), AT, trust);
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    expect(result.claims.version).toBe(5);
    expect(result.claims.mrtd).toBe(report.subarray(136, 184).toString('hex'));
    expect(result.claims.reportData).toBe(report.subarray(520, 584).toString('hex'));
    expect(result.claims.teeTcbSvn2).toBe(report.subarray(584, 600).toString('hex'));
    expect(result.claims.mrServiceTd).toBe(report.subarray(600, 648).toString('hex'));
    expect(result.claims.debug).toBe(false);
  });

  it('verifies a TDX 1.0 body (type 2, 584 bytes) in a v5 quote, and reads debug from TD attributes', () => {
    const report = body(584);
    report[120] = 1;
    const result = verifyTdxQuote(quoteV5(2, report), AT, trust);
    expect(result.ok && [result.claims.version, result.claims.debug, result.claims.teeTcbSvn2]).toEqual([5, true, null]);
  });

  it('signs the body descriptor too: changing the type, the body or the header breaks the signature', () => {
    const quote = quoteV5(3, body(648));
    for (const offset of [10, 48, 54 + 200, 54 + 640]) {
      const copy = Buffer.from(quote);
      copy[offset] = (copy[offset] ?? 0) ^ 0x01;
      const expected = offset === 48 ? 'malformed' : 'bad-signature';
      expect(codes(verifyTdxQuote(copy, AT, trust)), `offset ${offset}`).toEqual([expected]);
    }
    // A descriptor that says 2 over a 648-byte body is refused before any signature is checked.
    expect(codes(verifyTdxQuote(quoteV5(2, body(648)), AT, trust))).toEqual(['malformed']);
    // A body changed after signing.
    expect(codes(verifyTdxQuote(quoteV5(3, body(648), (signed) => { signed.writeUInt8(signed.readUInt8(54 + 136) ^ 1, 54 + 136); }), AT, trust))).toEqual(['bad-signature']);
  });

  it('refuses SGX bodies, unknown body types, a wrong size, the test root unless pinned, and truncation', () => {
    const sgx = Buffer.from(quoteV5(3, body(648)));
    sgx.writeUInt16LE(1, 48);
    expect(codes(verifyTdxQuote(sgx, AT, trust))).toEqual(['malformed']);
    for (const type of [0, 4, 0xffff]) {
      const other = Buffer.from(quoteV5(3, body(648)));
      other.writeUInt16LE(type, 48);
      expect(codes(verifyTdxQuote(other, AT, trust)), `type ${type}`).toEqual(['malformed']);
    }
    const size = Buffer.from(quoteV5(3, body(648)));
    size.writeUInt32LE(0xfffffff0, 50);
    expect(codes(verifyTdxQuote(size, AT, trust))).toEqual(['malformed']);
    const quote = quoteV5(3, body(648));
    expect(codes(verifyTdxQuote(quote, AT))).toEqual(['untrusted-root']);
    for (const length of [54, 54 + 648, 54 + 648 + 4, 54 + 648 + 200, quote.length - 1]) {
      expect(codes(verifyTdxQuote(quote.subarray(0, length), AT, trust)), `length ${length}`).toEqual(['malformed']);
    }
  });
});
