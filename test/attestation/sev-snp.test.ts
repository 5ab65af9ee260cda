import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AMD_ARK_SHA256, verifySevSnpReport } from '../../src/attestation/index.js';
import { buildCertificate, ia5, integer } from './x509-builder.js';

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

// --- Trust material, the VCEK extensions, and chains that are not quite right. ---

const TURIN_ARK = new Uint8Array(new X509Certificate(readFileSync('test/vectors/go-sev-guest/ark_turin.pem')).raw);
const fingerprint = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex');
const codes = (result: { ok: boolean; reasons?: readonly { code: string }[] }): string[] => (result.reasons ?? []).map((r) => r.code);

describe('AMD root keys', () => {
  it('pins the Milan and Genoa ARKs in the vector bundles and the Turin ARK from go-sev-guest', () => {
    expect(fingerprint(MILAN[1]!)).toBe(AMD_ARK_SHA256.milan);
    expect(fingerprint(GENOA[1]!)).toBe(AMD_ARK_SHA256.genoa);
    expect(fingerprint(TURIN_ARK)).toBe(AMD_ARK_SHA256.turin);
    const turin = new X509Certificate(TURIN_ARK);
    expect(turin.subject).toContain('CN=ARK-Turin');
    expect(turin.checkIssued(turin) && turin.verify(turin.publicKey)).toBe(true);
  });
});

describe('the VCEK extensions against the report', () => {
  const certificates = [VCEK, ...MILAN];

  it('names the product the VCEK states', () => {
    const result = verifySevSnpReport(REPORT, AT, { certificates });
    expect(result.ok && result.claims.productName).toBe('Milan-B0');
  });

  it("refuses a report whose CHIP_ID is not the VCEK's hwID", () => {
    for (const offset of [0x1a0, 0x1a0 + 63]) {
      expect(codes(verifySevSnpReport(flip(REPORT, offset), AT, { certificates })), `offset ${offset}`).toEqual(['chip-mismatch']);
    }
  });

  it('refuses a report whose boot loader, TEE, SNP or microcode SPL is not the one the VCEK was issued for', () => {
    // Milan: REPORTED_TCB (0x180) byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode.
    for (const byte of [0, 1, 6, 7]) {
      expect(codes(verifySevSnpReport(flip(REPORT, 0x180 + byte), AT, { certificates })), `byte ${byte}`).toEqual(['tcb-mismatch']);
    }
    // A reserved byte is not compared, but it is signed.
    expect(codes(verifySevSnpReport(flip(REPORT, 0x180 + 3), AT, { certificates }))).toEqual(['bad-signature']);
  });

  it('refuses a report that says VLEK when the certificate is a VCEK', () => {
    const vlek = Uint8Array.from(REPORT);
    vlek[0x48] = (vlek[0x48] ?? 0) | 0b100; // SIGNING_KEY (bits 2-4) = 1: VLEK
    expect(codes(verifySevSnpReport(vlek, AT, { certificates }))).toEqual(['malformed']);
  });
});

describe('SEV-SNP certificate input that is not quite right', () => {
  it('refuses an extra self-signed root, a repeated ARK and a missing ASK', () => {
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: [VCEK, ...MILAN, GENOA[1]!] }))).toEqual(['chain-invalid']);
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: [GENOA[1]!, VCEK, ...MILAN] }))).toEqual(['chain-invalid']);
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: [VCEK, ...MILAN, MILAN[1]!] }))).toEqual(['chain-invalid']);
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: [VCEK, MILAN[1]!] }))).toEqual(['chain-invalid']);
  });

  it('refuses oversized reports, too many certificates and bytes that are no certificate', () => {
    const oversized = new Uint8Array(REPORT.length + 1);
    oversized.set(REPORT);
    expect(codes(verifySevSnpReport(oversized, AT, { certificates: [VCEK, ...MILAN] }))).toEqual(['malformed']);
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: Array.from({ length: 9 }, () => VCEK) }))).toEqual(['malformed']);
    expect(codes(verifySevSnpReport(REPORT, AT, { certificates: [VCEK.subarray(0, 100), ...MILAN] }))).toEqual(['malformed']);
  });
});

// No real Turin report exists in the vectors: a chain with real P-384 keys is built here, under a
// test ARK passed as the pinned root, to drive the Turin TCB layout and the VLEK path end to end.
describe('SEV-SNP on a synthetic chain (Turin layout, VLEK)', () => {
  const key = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ark = key();
  const ask = key();
  const leaf = key();
  const arkDer = buildCertificate({ subject: 'ARK-Test', issuer: 'ARK-Test', publicKey: ark.publicKey, signingKey: ark.privateKey, hash: 'sha384', ca: true });
  const askDer = buildCertificate({ subject: 'SEV-Test', issuer: 'ARK-Test', publicKey: ask.publicKey, signingKey: ark.privateKey, hash: 'sha384', ca: true });
  const AMD = '1.3.6.1.4.1.3704.1';
  const CHIP = Buffer.from('0123456789abcdef', 'hex');
  const endorsementKey = (product: string, spls: Record<string, number>, hwId: Uint8Array | null): Uint8Array =>
    buildCertificate({
      subject: 'SEV-VCEK',
      issuer: 'SEV-Test',
      publicKey: leaf.publicKey,
      signingKey: ask.privateKey,
      hash: 'sha384',
      ca: false,
      extensions: [
        [`${AMD}.2`, ia5(product)],
        ...Object.entries(spls).map(([arc, value]) => [`${AMD}.3.${arc}`, integer(value)] as const),
        ...(hwId === null ? [] : [[`${AMD}.4`, hwId] as const]),
      ],
    });
  // Turin: fmc .3.9 = byte 0, boot loader .3.1 = 1, TEE .3.2 = 2, SNP .3.3 = 3, microcode .3.8 = 7.
  const TURIN_SPLS = { 9: 1, 1: 2, 2: 3, 3: 4, 8: 0xd5 };
  const TURIN_TCB = [1, 2, 3, 4, 0, 0, 0, 0xd5];

  function signedReport(tcb: readonly number[], signingKey: 0 | 1): Uint8Array {
    const report = Buffer.alloc(0x4a0);
    report.writeUInt32LE(3, 0x00);
    report.writeUInt32LE(1, 0x34); // ECDSA P-384 with SHA-384
    report.writeUInt32LE(signingKey << 2, 0x48);
    Buffer.from(tcb).copy(report, 0x180);
    CHIP.copy(report, 0x1a0);
    const signature = sign('sha384', report.subarray(0, 0x2a0), { key: leaf.privateKey, dsaEncoding: 'ieee-p1363' });
    Buffer.from(signature.subarray(0, 48)).reverse().copy(report, 0x2a0);
    Buffer.from(signature.subarray(48)).reverse().copy(report, 0x2e8);
    return new Uint8Array(report);
  }
  const trust = (leafDer: Uint8Array) => ({ certificates: [leafDer, askDer, arkDer], arkFingerprints: [fingerprint(arkDer)] });

  it('accepts a Turin report whose TCB follows the Turin layout and whose CHIP_ID starts with the 8-byte hwID', () => {
    const result = verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(endorsementKey('Turin-B0', TURIN_SPLS, CHIP)));
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    expect(result.claims.productName).toBe('Turin-B0');
    expect(result.claims.version).toBe(3);
  });

  it('reads the TCB by product line: the Turin bytes are a mismatch under a Milan VCEK', () => {
    const milanSpls = { 1: 2, 2: 3, 3: 4, 8: 0xd5 };
    expect(codes(verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(endorsementKey('Milan-B0', milanSpls, Buffer.alloc(64)))))).toEqual(['chip-mismatch']);
    const milanChip = Buffer.concat([CHIP, Buffer.alloc(56)]);
    expect(codes(verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(endorsementKey('Milan-B0', milanSpls, milanChip))))).toEqual(['tcb-mismatch']);
    expect(verifySevSnpReport(signedReport([2, 3, 0, 0, 0, 0, 4, 0xd5], 0), AT, trust(endorsementKey('Milan-B0', milanSpls, milanChip))).ok).toBe(true);
  });

  it('refuses a Turin report whose FMC SPL differs, a VCEK without its FMC SPL, and an unknown product', () => {
    expect(codes(verifySevSnpReport(signedReport([9, 2, 3, 4, 0, 0, 0, 0xd5], 0), AT, trust(endorsementKey('Turin-B0', TURIN_SPLS, CHIP))))).toEqual(['tcb-mismatch']);
    const noFmc = { 1: 2, 2: 3, 3: 4, 8: 0xd5 };
    expect(codes(verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(endorsementKey('Turin-B0', noFmc, CHIP))))).toEqual(['malformed']);
    expect(codes(verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(endorsementKey('Venice-A0', TURIN_SPLS, CHIP))))).toEqual(['malformed']);
  });

  it('accepts a VLEK-signed report without a hwID (a VLEK names no chip) and still compares its TCB', () => {
    const vlek = endorsementKey('Turin-B0', TURIN_SPLS, null);
    expect(verifySevSnpReport(signedReport(TURIN_TCB, 1), AT, trust(vlek)).ok).toBe(true);
    expect(codes(verifySevSnpReport(signedReport([1, 2, 3, 5, 0, 0, 0, 0xd5], 1), AT, trust(vlek)))).toEqual(['tcb-mismatch']);
    // A VCEK-signed report needs a VCEK: a certificate without hwID is refused.
    expect(codes(verifySevSnpReport(signedReport(TURIN_TCB, 0), AT, trust(vlek)))).toEqual(['malformed']);
  });
});
