import { readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NVIDIA_DEVICE_ROOT_SHA256, decodeEvidence, detectFormat, verifyEvidence, verifyNvidiaReport } from '../../src/attestation/index.js';

// The nvtrust Hopper SPDM report and device chain (../shared/vectors/attestation/nvidia).

const V = '../shared/vectors/attestation/nvidia';
const pem = (file: string): Uint8Array[] =>
  (readFileSync(`${V}/${file}`, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new Uint8Array(new X509Certificate(block).raw),
  );
const CHAIN = pem('hopperCertChain.pem');
const ROOT = pem('verifier_device_root.pem');
const REPORT_HEX = readFileSync(`${V}/hopperAttestationReport.txt`, 'utf8').trim();
const REPORT = new TextEncoder().encode(REPORT_HEX);
const AT = new Date('2024-06-01T00:00:00Z');

function flipHex(offset: number): Uint8Array {
  const bytes = Buffer.from(REPORT_HEX, 'hex');
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
  return new Uint8Array(bytes);
}

describe('NVIDIA Hopper SPDM evidence', () => {
  it('pins the NVIDIA device root by fingerprint', () => {
    expect(createHash('sha256').update(ROOT[0]!).digest('hex')).toBe(NVIDIA_DEVICE_ROOT_SHA256);
  });

  it('verifies the signed measurements through the device chain', () => {
    const result = verifyNvidiaReport(REPORT, AT, { certificates: [...CHAIN, ...ROOT] });
    if (!result.ok) throw new Error(JSON.stringify(result.reasons));
    expect(result.claims.spdmVersion).toBe('1.1');
    expect(Object.keys(result.claims.measurements)).toHaveLength(64);
    for (const value of Object.values(result.claims.measurements)) expect(value).toMatch(/^[0-9a-f]{96}$/);
    expect(result.claims.requestNonce).toBe('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb');
  });

  it('refuses a flipped byte in the request nonce, in a measurement and in the signature', () => {
    const trust = { certificates: [...CHAIN, ...ROOT] };
    for (const offset of [10, 37 + 8 + 7 + 3, Buffer.from(REPORT_HEX, 'hex').length - 10]) {
      expect(verifyNvidiaReport(flipHex(offset), AT, trust), `offset ${offset}`).toMatchObject({ ok: false, reasons: [{ code: 'bad-signature' }] });
    }
  });

  it('refuses an unpinned root, a broken chain and a truncated report', () => {
    expect(verifyNvidiaReport(REPORT, AT, { certificates: [...CHAIN, ...ROOT], rootFingerprints: ['00'.repeat(32)] })).toMatchObject({
      ok: false,
      reasons: [{ code: 'untrusted-root' }],
    });
    expect(verifyNvidiaReport(REPORT, AT, { certificates: [CHAIN[0]!, CHAIN[2]!, ...ROOT] })).toMatchObject({ ok: false, reasons: [{ code: 'chain-invalid' }] });
    const bytes = Buffer.from(REPORT_HEX, 'hex');
    for (const length of [0, 36, 100, 2000, bytes.length - 1]) {
      expect(verifyNvidiaReport(new Uint8Array(bytes.subarray(0, length)), AT, { certificates: [...CHAIN, ...ROOT] }), `length ${length}`).toMatchObject({ ok: false });
    }
  });
});

describe('NVIDIA evidence through the one entry point', () => {
  const codes = (result: { ok: boolean; reasons?: readonly { code: string }[] }): string[] => (result.reasons ?? []).map((r) => r.code);

  it('detects the hex-text report, verifies it, and gives the SHA-384 of the signed measurement record as the measurement', () => {
    const bytes = Buffer.from(REPORT_HEX, 'hex');
    expect(detectFormat(decodeEvidence(REPORT))).toBe('nvidia');
    const verdict = verifyEvidence(REPORT, { at: AT, certificates: CHAIN });
    if ('error' in verdict) throw new Error(verdict.error);
    expect(verdict).toMatchObject({ ok: true, platform: 'nvidia', debug: false, reasons: [] });
    // MEASUREMENTS starts after the 37-byte request; its record length (3 bytes) is at offset 5, the record at 8.
    const response = bytes.subarray(37);
    const recordLength = response.readUIntLE(5, 3);
    expect(verdict.measurement).toBe(createHash('sha384').update(response.subarray(8, 8 + recordLength)).digest('hex'));
    expect(Object.keys(verdict.claims ?? {}).sort()).toEqual(['measurements', 'requestNonce', 'responseNonce', 'spdmVersion']);
    expect(verdict.claims?.requestNonce).toBe('931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb');
    // Raw bytes, and an explicit format, give the same verdict.
    expect(verifyEvidence(new Uint8Array(bytes), { at: AT, certificates: CHAIN, format: 'nvidia' })).toEqual(verdict);
  });

  it('refuses without the device chain, under another root, and when tampered', () => {
    expect(verifyEvidence(REPORT, { at: AT })).toMatchObject({ ok: false, platform: 'nvidia', measurement: null, reasons: [{ code: 'chain-invalid' }] });
    expect(verifyEvidence(REPORT, { at: AT, certificates: CHAIN, rootFingerprints: ['00'.repeat(32)] })).toMatchObject({ reasons: [{ code: 'untrusted-root' }] });
    expect(verifyEvidence(flipHex(37 + 8 + 7 + 3), { at: AT, certificates: CHAIN })).toMatchObject({ reasons: [{ code: 'bad-signature' }] });
  });

  it('refuses truncated and oversized reports as malformed', () => {
    const bytes = Buffer.from(REPORT_HEX, 'hex');
    for (const length of [0, 36, 100, 2000, bytes.length - 1]) {
      expect(codes(verifyNvidiaReport(new Uint8Array(bytes.subarray(0, length)), AT, { certificates: CHAIN })), `length ${length}`).toEqual(['malformed']);
    }
    const oversized = new Uint8Array(64 * 1024 + 1);
    oversized.set(bytes);
    expect(codes(verifyNvidiaReport(oversized, AT, { certificates: CHAIN }))).toEqual(['malformed']);
    expect(codes(verifyNvidiaReport(REPORT, AT, { certificates: Array.from({ length: 9 }, () => CHAIN[0]!) }))).toEqual(['malformed']);
  });
});
