import { sign as nodeSign } from 'node:crypto';
import { Decoder, Encoder } from 'cbor-x';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SIM_MODULE_PREFIX,
  createSimAttester,
  createSimCa,
  produceSimEvidence,
  simCaFingerprint,
  simPlatformAttester,
  verifyEvidence,
  verifySimEvidence,
  type EvidenceVerdict,
  type SimAttester,
  type SimCa,
} from '../../src/attestation/index.js';

// The simulated platform: Nitro-shaped documents under a development CA. It verifies only under
// that CA and only as `sim`, never as Nitro; the CA and leaf validity windows hold; the module-id
// marker keeps Nitro documents and sim documents apart.

const NOW = new Date('2026-03-01T12:00:00.000Z');
const HOUR_MS = 3_600_000;
const MEASUREMENT = new Uint8Array(48).fill(0xa7);

let ca: SimCa;
let otherCa: SimCa;
let attester: SimAttester;
let fingerprint: string;
let document: Uint8Array;

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createSimCa(NOW), createSimCa(NOW)]);
  attester = await createSimAttester(ca, NOW);
  fingerprint = simCaFingerprint(ca);
  document = produceSimEvidence(attester, {
    measurement: MEASUREMENT,
    userData: new Uint8Array(32).fill(1),
    publicKey: new Uint8Array(32).fill(2),
    nonce: new Uint8Array(16).fill(3),
    now: NOW,
  });
});

function codes(verdict: EvidenceVerdict | { error: string }): string[] {
  if ('error' in verdict) return [`error: ${verdict.error}`];
  return verdict.reasons.map((r) => r.code);
}

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

/** Re-signs the payload of `source` with the attester's leaf key after `edit` changes it. */
function resigned(source: Uint8Array, signer: SimAttester, edit: (payload: Map<string, unknown>) => void): Uint8Array {
  const [protectedBytes, , payloadBytes] = decoder.decode(source) as [Uint8Array, unknown, Uint8Array, Uint8Array];
  const payload = decoder.decode(payloadBytes) as Map<string, unknown>;
  edit(payload);
  const newPayload = cbor.encode(payload);
  const toBeSigned = cbor.encode(['Signature1', protectedBytes, new Uint8Array(0), newPayload]);
  const signature = nodeSign('sha384', toBeSigned, { key: signer.leafKey, dsaEncoding: 'ieee-p1363' });
  return new Uint8Array(cbor.encode([protectedBytes, new Map(), newPayload, new Uint8Array(signature)]));
}

describe('sim evidence', () => {
  it('verifies under its CA at the time given, with the claims it was made with', () => {
    const verdict = verifyEvidence(document, { format: 'sim', at: NOW, rootFingerprints: [fingerprint] });
    expect(verdict).toMatchObject({
      ok: true,
      platform: 'sim',
      measurement: 'a7'.repeat(48),
      debug: false,
      claims: { moduleId: attester.moduleId, userData: '01'.repeat(32), publicKey: '02'.repeat(32), nonce: '03'.repeat(16), timestamp: NOW.getTime() },
    });
    expect(attester.moduleId.startsWith(SIM_MODULE_PREFIX)).toBe(true);
  });

  it('is what simPlatformAttester gives, with the binding as user_data', async () => {
    const binding = new Uint8Array(32).fill(9);
    const sim = simPlatformAttester(attester, MEASUREMENT);
    expect(sim).toMatchObject({ platform: 'sim', measurement: 'a7'.repeat(48) });
    const { evidence, certificates } = await sim.attest({ binding, publicKey: new Uint8Array(32).fill(2), now: NOW });
    expect(certificates).toEqual([]);
    const verdict = verifyEvidence(evidence, { format: 'sim', at: NOW, rootFingerprints: [fingerprint] });
    expect(verdict).toMatchObject({ ok: true, claims: { userData: '09'.repeat(32) } });
  });

  it('fails as untrusted-root with no CA trusted', () => {
    expect(codes(verifyEvidence(document, { format: 'sim', at: NOW }))).toEqual(['untrusted-root']);
    expect(codes(verifyEvidence(document, { format: 'sim', at: NOW, rootFingerprints: [] }))).toEqual(['untrusted-root']);
    expect(verifySimEvidence(document, NOW, { rootFingerprints: [] })).toMatchObject({ ok: false, reasons: [{ code: 'untrusted-root' }] });
  });

  it('fails as untrusted-root under another development CA', () => {
    expect(codes(verifyEvidence(document, { format: 'sim', at: NOW, rootFingerprints: [simCaFingerprint(otherCa)] }))).toEqual(['untrusted-root']);
  });

  it('never passes as Nitro: the AWS root is not its root', () => {
    expect(codes(verifyEvidence(document, { format: 'nitro', at: NOW }))).toEqual(['untrusted-root']);
    // Detected automatically, it is taken for Nitro, and refused as such.
    expect(verifyEvidence(document, { at: NOW })).toMatchObject({ ok: false, platform: 'nitro', reasons: [{ code: 'untrusted-root' }] });
  });

  it('fails with a flipped byte in the signature (bad-signature) and in the payload (bad-signature or malformed)', () => {
    const options = { format: 'sim', at: NOW, rootFingerprints: [fingerprint] } as const;
    expect(codes(verifyEvidence(flip(document, document.length - 3), options))).toEqual(['bad-signature']);
    const moduleAt = Buffer.from(document).indexOf(attester.moduleId);
    expect(codes(verifyEvidence(flip(document, moduleAt + SIM_MODULE_PREFIX.length + 2), options))).toEqual(['bad-signature']);
    const measurementAt = Buffer.from(document).indexOf(Buffer.from(MEASUREMENT));
    expect(codes(verifyEvidence(flip(document, measurementAt + 7), options))).toEqual(['bad-signature']);
    for (let offset = 0; offset < 24; offset += 1) {
      const [code] = codes(verifyEvidence(flip(document, offset), options));
      expect(['bad-signature', 'malformed', 'unsupported-algorithm', 'untrusted-root'], `offset ${offset}`).toContain(code);
    }
  });

  it('fails once the leaf certificate has expired (certificate-expired), and before it was valid', async () => {
    const options = { format: 'sim', rootFingerprints: [fingerprint] } as const;
    expect(codes(verifyEvidence(document, { ...options, at: new Date(NOW.getTime() + 23 * HOUR_MS) }))).toEqual([]);
    expect(codes(verifyEvidence(document, { ...options, at: new Date(NOW.getTime() + 48 * HOUR_MS) }))).toEqual(['certificate-expired']);
    expect(codes(verifyEvidence(document, { ...options, at: new Date(NOW.getTime() - HOUR_MS) }))).toEqual(['certificate-not-yet-valid']);
    // A short-lived leaf expires on its own schedule.
    const brief = await createSimAttester(ca, NOW, 1);
    const briefDocument = produceSimEvidence(brief, { measurement: MEASUREMENT, now: NOW });
    expect(codes(verifyEvidence(briefDocument, { ...options, at: new Date(NOW.getTime() + 2 * HOUR_MS) }))).toEqual(['certificate-expired']);
  });

  it('fails once the CA itself has expired', async () => {
    const shortCa = await createSimCa(NOW, 1);
    const leaf = await createSimAttester(shortCa, NOW, 24 * 30);
    const made = produceSimEvidence(leaf, { measurement: MEASUREMENT, now: NOW });
    const options = { format: 'sim', rootFingerprints: [simCaFingerprint(shortCa)] } as const;
    expect(codes(verifyEvidence(made, { ...options, at: NOW }))).toEqual([]);
    expect(codes(verifyEvidence(made, { ...options, at: new Date(NOW.getTime() + 2 * 24 * HOUR_MS) }))).toEqual(['certificate-expired']);
  });

  it('requires the sim marker in module_id: a document without it, correctly signed, is refused as malformed', () => {
    const unmarked = resigned(document, attester, (payload) => payload.set('module_id', 'i-0a22e5c5f24d22174-enc0191cceb4289903f'));
    expect(verifySimEvidence(unmarked, NOW, { rootFingerprints: [fingerprint] })).toMatchObject({ ok: false, reasons: [{ code: 'malformed' }] });
    expect(codes(verifyEvidence(unmarked, { format: 'sim', at: NOW, rootFingerprints: [fingerprint] }))).toEqual(['malformed']);
    // As Nitro under the development CA it is only a Nitro document with an unknown root (its own chain verifies).
    expect(codes(verifyEvidence(unmarked, { format: 'nitro', at: NOW, rootFingerprints: [fingerprint] }))).toEqual([]);
    // The re-signing itself is sound: the marked original, re-signed unchanged, still verifies.
    const same = resigned(document, attester, () => undefined);
    expect(codes(verifyEvidence(same, { format: 'sim', at: NOW, rootFingerprints: [fingerprint] }))).toEqual([]);
  });

  it('refuses a document signed by a leaf of another CA but presenting this CA in cabundle', async () => {
    const foreign = await createSimAttester(otherCa, NOW);
    const forged = resigned(document, foreign, (payload) => payload.set('certificate', foreign.leafCertificate));
    expect(codes(verifyEvidence(forged, { format: 'sim', at: NOW, rootFingerprints: [fingerprint] }))).toEqual(['chain-invalid']);
  });

  it('refuses a measurement that is not 48 bytes', () => {
    expect(() => produceSimEvidence(attester, { measurement: new Uint8Array(32), now: NOW })).toThrow(RangeError);
  });
});
