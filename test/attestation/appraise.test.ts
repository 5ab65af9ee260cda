import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { appraise, evidenceBinding, verifyEvidence, type EvidenceVerdict } from '../../src/attestation/index.js';

const V = '../shared/vectors/attestation';
const PCR0 = 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a';
const AT = new Date('2024-09-07T14:37:39.545Z');

const binding = evidenceBinding({
  enclavePublicKey: new Uint8Array(32).fill(7),
  challenge: new Uint8Array(16).fill(9),
  agreementHash: `sha256:${'ab'.repeat(32)}`,
});

function nitroVector(): EvidenceVerdict {
  const verdict = verifyEvidence(new Uint8Array(readFileSync(`${V}/nitro/nitro_attestation.b64`)), { at: AT });
  if ('error' in verdict) throw new Error(verdict.error);
  return verdict;
}

/** The real vector's claims with this test's binding in user_data: appraisal is pure over claims. */
function bound(verdict: EvidenceVerdict): EvidenceVerdict {
  return { ...verdict, claims: { ...verdict.claims, userData: Buffer.from(binding).toString('hex') } };
}

const policy = { platforms: ['nitro'], measurements: [PCR0], maxEvidenceAgeSeconds: 300, allowDebug: false };
const options = { now: new Date(AT.getTime() + 10_000), expectedBinding: binding, challengeIssuedAt: new Date(AT.getTime() - 5_000) };

describe('appraisal against the enclave policy', () => {
  it('accepts authentic, pinned, non-debug, fresh evidence that binds the key, challenge and agreement', () => {
    expect(appraise(bound(nitroVector()), policy, options)).toEqual({ ok: true });
  });

  it('defines the binding with length-prefixed parts: moving a byte between parts changes it', () => {
    const shifted = evidenceBinding({
      enclavePublicKey: new Uint8Array(31).fill(7),
      challenge: Uint8Array.of(7, ...new Uint8Array(16).fill(9)),
      agreementHash: `sha256:${'ab'.repeat(32)}`,
    });
    expect(Buffer.from(shifted).equals(Buffer.from(binding))).toBe(false);
  });

  it('refuses each failed condition with its code', () => {
    const codes = (result: ReturnType<typeof appraise>) => (result.ok ? [] : result.reasons.map((r) => r.code));
    expect(codes(appraise(nitroVector(), policy, options))).toEqual(['binding-mismatch']);
    expect(codes(appraise(bound(nitroVector()), { ...policy, platforms: ['tdx'] }, options))).toEqual(['platform-not-allowed']);
    expect(codes(appraise(bound(nitroVector()), { ...policy, measurements: [] }, options))).toEqual(['measurement-not-pinned']);
    expect(codes(appraise(bound(nitroVector()), policy, { ...options, now: new Date(AT.getTime() + 301_000) }))).toEqual(['evidence-stale']);
    expect(codes(appraise(bound({ ...nitroVector(), debug: true }), policy, options))).toEqual(['debug-enclave']);
    const otherChallenge = evidenceBinding({ enclavePublicKey: new Uint8Array(32).fill(7), challenge: new Uint8Array(16), agreementHash: `sha256:${'ab'.repeat(32)}` });
    expect(codes(appraise(bound(nitroVector()), policy, { ...options, expectedBinding: otherChallenge }))).toEqual(['binding-mismatch']);
  });

  it('refuses evidence that did not verify', () => {
    const invalid = verifyEvidence(new Uint8Array(readFileSync(`${V}/nitro/nitro_attestation.b64`)), { at: new Date('2030-01-01T00:00:00Z') });
    if ('error' in invalid) throw new Error(invalid.error);
    expect(appraise(invalid, policy, options)).toMatchObject({ ok: false, reasons: [{ code: 'evidence-invalid' }] });
  });
});
