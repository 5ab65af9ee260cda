import { describe, expect, it } from 'vitest';
import {
  SIGNATURE_FORMAT,
  agreementHash,
  agreementSignatureSchema,
  signAgreement,
  signatureMessage,
  verifyAgreementSignature,
  type AgreementSignature,
} from '../../src/agreement/index.js';
import { fromBase64Url, signEd25519, toBase64Url, utf8, verifyEd25519 } from '../../src/crypto/index.js';
import { issuesFromZod, type Issue } from '../../src/errors/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { makeAgreement, makeKeys, mutable } from './helpers.js';

const keys = makeKeys();
const agreement = makeAgreement(keys);
const hash = agreementHash(agreement);
const ADV = keys.advertiser.identity.id;
const PUB = keys.publisher.identity.id;
const OP = keys.operator.identity.id;
const stranger = generatePartyKeys('Stranger');
const NOW = new Date('2026-01-05T09:00:00.000Z');

const signer = (party: PartyKeys) => ({ partyId: party.identity.id, signingSecret: party.signingSecret });
const sign = (party: PartyKeys, over = hash): AgreementSignature => signAgreement(agreement, over, signer(party), NOW);

describe('signAgreement', () => {
  it('makes a malus.signature/v1 document that the schema accepts', () => {
    const signature = sign(keys.advertiser);
    expect(signature).toEqual({
      format: SIGNATURE_FORMAT,
      collaboration: 'campaign-measurement',
      version: 1,
      hash,
      signer: ADV,
      signature: expect.stringMatching(/^[A-Za-z0-9_-]{86}$/),
      signedAt: '2026-01-05T09:00:00.000Z',
    });
    expect(SIGNATURE_FORMAT).toBe('malus.signature/v1');
    expect(agreementSignatureSchema.parse(signature)).toEqual(signature);
  });

  it('signs the domain-separated message, checkable with plain Ed25519', () => {
    expect(new TextDecoder().decode(signatureMessage(hash))).toBe(`malus.agreement/v1 signature\n${hash}\n`);
    const signature = sign(keys.publisher);
    const publicKey = fromBase64Url(keys.publisher.identity.signingKey)!;
    expect(verifyEd25519(publicKey, utf8(`malus.agreement/v1 signature\n${hash}\n`), fromBase64Url(signature.signature)!)).toBe(true);
  });

  it('is deterministic (Ed25519) for the same hash and key', () => {
    expect(sign(keys.advertiser).signature).toBe(sign(keys.advertiser).signature);
    expect(sign(keys.advertiser).signature).not.toBe(sign(keys.publisher).signature);
  });
});

describe('verifyAgreementSignature', () => {
  it('accepts each signer’s own signature', () => {
    expect(verifyAgreementSignature(agreement, hash, sign(keys.advertiser))).toEqual({ signer: ADV, valid: true });
    expect(verifyAgreementSignature(agreement, hash, sign(keys.publisher))).toEqual({ signer: PUB, valid: true });
  });

  it('signature-wrong-hash: a signature over another version of the document', () => {
    const other = mutable(agreement);
    other.title = 'Something else';
    const otherHash = agreementHash(other);
    expect(otherHash).not.toBe(hash);
    expect(verifyAgreementSignature(agreement, hash, sign(keys.advertiser, otherHash))).toEqual({
      signer: ADV,
      valid: false,
      code: 'signature-wrong-hash',
      reason: `signature by ${ADV} is over ${otherHash}, not this agreement (${hash})`,
    });
  });

  it('signature-invalid: a signature over another hash relabelled with this one', () => {
    const other = mutable(agreement);
    other.version = 2;
    const relabelled = { ...sign(keys.advertiser, agreementHash(other)), hash };
    expect(verifyAgreementSignature(agreement, hash, relabelled)).toEqual({
      signer: ADV,
      valid: false,
      code: 'signature-invalid',
      reason: `signature by ${ADV} (Advertiser) does not verify`,
    });
  });

  it('signature-not-party: a signer that is not a party', () => {
    expect(verifyAgreementSignature(agreement, hash, sign(stranger))).toEqual({
      signer: stranger.identity.id,
      valid: false,
      code: 'signature-not-party',
      reason: `signer ${stranger.identity.id} is not a party to this agreement`,
    });
  });

  it('signature-not-signer: a party without the signer role, even with a genuine signature', () => {
    expect(verifyAgreementSignature(agreement, hash, sign(keys.operator))).toEqual({
      signer: OP,
      valid: false,
      code: 'signature-not-signer',
      reason: `party ${OP} (Operator) does not have the signer role`,
    });
  });

  it('signature-invalid: a flipped byte anywhere in the signature', () => {
    const genuine = sign(keys.publisher);
    const bytes = fromBase64Url(genuine.signature)!;
    for (const index of [0, 31, 32, 63]) {
      const flipped = new Uint8Array(bytes);
      flipped[index] = (flipped[index] ?? 0) ^ 0x80;
      expect(verifyAgreementSignature(agreement, hash, { ...genuine, signature: toBase64Url(flipped) })).toEqual({
        signer: PUB,
        valid: false,
        code: 'signature-invalid',
        reason: `signature by ${PUB} (Publisher) does not verify`,
      });
    }
  });

  it('signature-invalid: a different key claiming a party’s id', () => {
    const forged = signAgreement(agreement, hash, { partyId: ADV, signingSecret: stranger.signingSecret }, NOW);
    expect(verifyAgreementSignature(agreement, hash, forged)).toEqual({
      signer: ADV,
      valid: false,
      code: 'signature-invalid',
      reason: `signature by ${ADV} (Advertiser) does not verify`,
    });
  });

  it('signature-invalid: a signature text that is not canonical base64url', () => {
    const genuine = sign(keys.advertiser);
    // 64 bytes leave 4 unused bits in the last character; setting one makes the text non-canonical.
    const last = genuine.signature.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const nonCanonical = `${genuine.signature.slice(0, -1)}${alphabet[alphabet.indexOf(last) | 1]!}`;
    expect(nonCanonical).not.toBe(genuine.signature);
    expect(verifyAgreementSignature(agreement, hash, { ...genuine, signature: nonCanonical })).toMatchObject({
      valid: false,
      code: 'signature-invalid',
    });
  });

  it('signature-invalid: the party’s key over the bare hash, without the domain prefix', () => {
    const bare = toBase64Url(signEd25519(keys.advertiser.signingSecret, utf8(hash)));
    expect(verifyAgreementSignature(agreement, hash, { ...sign(keys.advertiser), signature: bare })).toMatchObject({
      signer: ADV,
      valid: false,
      code: 'signature-invalid',
    });
  });

  it('checks the hash first: a stranger’s signature over another hash is wrong-hash', () => {
    expect(verifyAgreementSignature(agreement, hash, sign(stranger, `sha256:${'0'.repeat(64)}`))).toMatchObject({
      code: 'signature-wrong-hash',
    });
  });
});

describe('agreementSignatureSchema', () => {
  it.each<[string, (s: Record<string, unknown>) => void, Issue]>([
    ['a short signature', (s) => (s.signature = String(s.signature).slice(1)), { path: 'signature', message: 'expected 64 bytes of base64url' }],
    ['an unknown field', (s) => (s.comment = 'hi'), { path: 'comment', message: 'unknown field' }],
    ['a wrong format', (s) => (s.format = 'malus.signature/v2'), { path: 'format', message: 'expected malus.signature/v1' }],
    ['an upper-case hash', (s) => (s.hash = String(s.hash).toUpperCase()), { path: 'hash', message: 'expected sha256:<64 lower-case hex>' }],
    ['a signer that is not a party id', (s) => (s.signer = 'advertiser'), { path: 'signer', message: 'expected a party id' }],
    ['a missing signedAt', (s) => delete s.signedAt, { path: 'signedAt', message: 'required (expected string)' }],
  ])('refuses %s', (_name, change, issue) => {
    const signature: Record<string, unknown> = { ...sign(keys.advertiser) };
    change(signature);
    const result = agreementSignatureSchema.safeParse(signature);
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(issuesFromZod(result.error, signature)).toEqual([issue]);
  });
});
