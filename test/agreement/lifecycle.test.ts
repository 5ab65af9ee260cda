import { describe, expect, it } from 'vitest';
import {
  activeVersion,
  agreementHash,
  assertAgreement,
  checkAgreement,
  collaborationStatus,
  signAgreement,
  versionStatus,
  type Agreement,
  type AgreementSignature,
  type VersionEvidence,
} from '../../src/agreement/index.js';
import { fromBase64Url, toBase64Url } from '../../src/crypto/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';
import { makeAgreement, makeKeys, mutable, VALID_FROM, VALID_UNTIL } from './helpers.js';

const keys = makeKeys();
const ADV = keys.advertiser.identity.id;
const PUB = keys.publisher.identity.id;
const OP = keys.operator.identity.id;
const stranger = generatePartyKeys('Stranger');

const INSIDE = new Date('2026-02-01T00:00:00Z');
const BEFORE = new Date('2025-12-31T23:59:59Z');
const SIGNED_AT = new Date('2025-12-20T00:00:00Z');

const v1 = makeAgreement(keys);
const v1Hash = agreementHash(v1);

/** A validated amendment of `previous`. */
function amend(previous: Agreement, version: number, title: string): Agreement {
  const doc = mutable(previous);
  doc.version = version;
  doc.previous = agreementHash(previous);
  doc.title = title;
  return assertAgreement(doc, `v${version}`);
}

const v2 = amend(v1, 2, 'Campaign reach, conversions and revenue');
const v3 = amend(v2, 3, 'Campaign reach, conversions, revenue and placements');

function sign(agreement: Agreement, ...parties: PartyKeys[]): AgreementSignature[] {
  const hash = agreementHash(agreement);
  return parties.map((p) => signAgreement(agreement, hash, { partyId: p.identity.id, signingSecret: p.signingSecret }, SIGNED_AT));
}

const signedByBoth = (agreement: Agreement): VersionEvidence => ({
  agreement,
  signatures: sign(agreement, keys.advertiser, keys.publisher),
});

describe('versionStatus', () => {
  it('draft: no signatures', () => {
    expect(versionStatus({ agreement: v1, signatures: [] }, INSIDE)).toEqual({
      hash: v1Hash,
      version: 1,
      state: 'draft',
      signed: [],
      missing: [ADV, PUB],
      rejected: [],
      supersededBy: null,
    });
  });

  it('proposed: one of the two signers', () => {
    expect(versionStatus({ agreement: v1, signatures: sign(v1, keys.publisher) }, INSIDE)).toEqual({
      hash: v1Hash,
      version: 1,
      state: 'proposed',
      signed: [PUB],
      missing: [ADV],
      rejected: [],
      supersededBy: null,
    });
  });

  it('active: both signers, inside the window; signed lists parties in agreement order', () => {
    const status = versionStatus({ agreement: v1, signatures: sign(v1, keys.publisher, keys.advertiser) }, INSIDE);
    expect(status).toEqual({
      hash: v1Hash,
      version: 1,
      state: 'active',
      signed: [ADV, PUB],
      missing: [],
      rejected: [],
      supersededBy: null,
    });
  });

  it('counts a repeated signature once', () => {
    const status = versionStatus({ agreement: v1, signatures: sign(v1, keys.advertiser, keys.advertiser) }, INSIDE);
    expect(status.state).toBe('proposed');
    expect(status.signed).toEqual([ADV]);
    expect(status.missing).toEqual([PUB]);
  });

  it('proposed: all signed but validFrom is still ahead', () => {
    expect(versionStatus(signedByBoth(v1), BEFORE).state).toBe('proposed');
  });

  it('the window is validFrom <= now < validUntil', () => {
    expect(versionStatus(signedByBoth(v1), VALID_FROM).state).toBe('active');
    expect(versionStatus(signedByBoth(v1), new Date(VALID_FROM.getTime() - 1)).state).toBe('proposed');
    expect(versionStatus(signedByBoth(v1), new Date(VALID_UNTIL.getTime() - 1)).state).toBe('active');
    expect(versionStatus(signedByBoth(v1), VALID_UNTIL).state).toBe('expired');
  });

  it('expired: now >= validUntil, signed or not', () => {
    const later = new Date('2027-01-01T00:00:00Z');
    expect(versionStatus(signedByBoth(v1), later).state).toBe('expired');
    expect(versionStatus({ agreement: v1, signatures: [] }, later).state).toBe('expired');
    expect(versionStatus({ agreement: v1, signatures: sign(v1, keys.advertiser) }, later).state).toBe('expired');
  });

  it('lists invalid signatures under rejected and does not count them', () => {
    const [advertiser, publisher] = sign(v1, keys.advertiser, keys.publisher);
    const bytes = fromBase64Url(publisher!.signature)!;
    bytes[10] = (bytes[10] ?? 0) ^ 0x01;
    const tampered = { ...publisher!, signature: toBase64Url(bytes) };
    const operator = sign(v1, keys.operator)[0]!;
    const outsider = sign(v1, stranger)[0]!;
    const forged = signAgreement(v1, v1Hash, { partyId: PUB, signingSecret: stranger.signingSecret }, SIGNED_AT);
    const stale = sign(v2, keys.publisher)[0]!;
    const status = versionStatus({ agreement: v1, signatures: [tampered, advertiser!, operator, outsider, forged, stale] }, INSIDE);
    expect(status).toEqual({
      hash: v1Hash,
      version: 1,
      state: 'proposed',
      signed: [ADV],
      missing: [PUB],
      rejected: [
        { signer: PUB, valid: false, code: 'signature-invalid', reason: `signature by ${PUB} (Publisher) does not verify` },
        { signer: OP, valid: false, code: 'signature-not-signer', reason: `party ${OP} (Operator) does not have the signer role` },
        {
          signer: stranger.identity.id,
          valid: false,
          code: 'signature-not-party',
          reason: `signer ${stranger.identity.id} is not a party to this agreement`,
        },
        { signer: PUB, valid: false, code: 'signature-invalid', reason: `signature by ${PUB} (Publisher) does not verify` },
        {
          signer: PUB,
          valid: false,
          code: 'signature-wrong-hash',
          reason: `signature by ${PUB} is over ${agreementHash(v2)}, not this agreement (${v1Hash})`,
        },
      ],
      supersededBy: null,
    });
  });

  it('only invalid signatures: still a draft', () => {
    const status = versionStatus({ agreement: v1, signatures: sign(v1, keys.operator, stranger) }, INSIDE);
    expect(status.state).toBe('draft');
    expect(status.signed).toEqual([]);
    expect(status.rejected.map((r) => r.code)).toEqual(['signature-not-signer', 'signature-not-party']);
  });
});

describe('collaborationStatus', () => {
  it('a single version has the same status as versionStatus', () => {
    expect(collaborationStatus([signedByBoth(v1)], INSIDE)).toEqual([versionStatus(signedByBoth(v1), INSIDE)]);
  });

  it('superseded: v2 amending v1 is active, so v1 is superseded by v2', () => {
    expect(v2.previous).toBe(v1Hash);
    const v2Hash = agreementHash(v2);
    const [s1, s2] = collaborationStatus([signedByBoth(v1), signedByBoth(v2)], INSIDE);
    expect(s2).toMatchObject({ hash: v2Hash, version: 2, state: 'active', supersededBy: null });
    expect(s1).toEqual({
      hash: v1Hash,
      version: 1,
      state: 'superseded',
      signed: [ADV, PUB],
      missing: [],
      rejected: [],
      supersededBy: v2Hash,
    });
  });

  it('a proposed amendment does not supersede the active version', () => {
    const [s1, s2] = collaborationStatus([signedByBoth(v1), { agreement: v2, signatures: sign(v2, keys.advertiser) }], INSIDE);
    expect(s1).toMatchObject({ state: 'active', supersededBy: null });
    expect(s2).toMatchObject({ state: 'proposed', supersededBy: null });
  });

  it('v3 active superseding v2 makes v1 superseded too (by v2), whatever the input order', () => {
    const v2Hash = agreementHash(v2);
    const v3Hash = agreementHash(v3);
    const statuses = collaborationStatus([signedByBoth(v3), signedByBoth(v1), signedByBoth(v2)], INSIDE);
    expect(statuses.map((s) => [s.version, s.state, s.supersededBy])).toEqual([
      [3, 'active', null],
      [1, 'superseded', v2Hash],
      [2, 'superseded', v3Hash],
    ]);
  });

  it('the chain holds even when the middle version was never signed', () => {
    const statuses = collaborationStatus([signedByBoth(v1), { agreement: v2, signatures: [] }, signedByBoth(v3)], INSIDE);
    expect(statuses.map((s) => s.state)).toEqual(['superseded', 'superseded', 'active']);
  });

  it('before v3 is active, v2 is active and v1 superseded', () => {
    const statuses = collaborationStatus([signedByBoth(v1), signedByBoth(v2), { agreement: v3, signatures: sign(v3, keys.publisher) }], INSIDE);
    expect(statuses.map((s) => s.state)).toEqual(['superseded', 'active', 'proposed']);
  });

  it('an expired amendment does not supersede', () => {
    const doc = mutable(v1);
    doc.version = 2;
    doc.previous = v1Hash;
    doc.validFrom = '2025-01-01T00:00:00Z';
    doc.validUntil = '2025-06-01T00:00:00Z';
    const expiredV2 = assertAgreement(doc);
    const statuses = collaborationStatus([signedByBoth(v1), signedByBoth(expiredV2)], INSIDE);
    expect(statuses.map((s) => s.state)).toEqual(['active', 'expired']);
  });

  it('an amendment of a version not in the list changes nothing', () => {
    const statuses = collaborationStatus([signedByBoth(v3)], INSIDE);
    expect(statuses.map((s) => [s.state, s.supersededBy])).toEqual([['active', null]]);
  });

  it('activeVersion finds the active one, or none', () => {
    const all = [signedByBoth(v1), signedByBoth(v2), signedByBoth(v3)];
    expect(activeVersion(all, INSIDE)?.hash).toBe(agreementHash(v3));
    expect(activeVersion(all, BEFORE)).toBeUndefined();
    expect(activeVersion([{ agreement: v1, signatures: [] }], INSIDE)).toBeUndefined();
    expect(activeVersion([], INSIDE)).toBeUndefined();
  });
});

describe('amendments need the consent of the signers they amend', () => {
  it('an amendment signed only by new parties does not take effect, and the version it amends stays active', () => {
    // v2 makes a stranger the only signer and signs it alone: whoever holds the store could write this.
    const doc = mutable(v1);
    doc.version = 2;
    doc.previous = v1Hash;
    const strangerKeys = generatePartyKeys('A stranger');
    const parties = doc.parties as { id: string; name: string; signingKey: string; encryptionKey: string; roles: string[] }[];
    for (const party of parties) party.roles = party.roles.filter((r) => r !== 'signer');
    parties.push({
      id: strangerKeys.identity.id,
      name: 'A stranger',
      signingKey: strangerKeys.identity.signingKey,
      encryptionKey: strangerKeys.identity.encryptionKey,
      roles: ['signer'],
    });
    const hijack = checkAgreement(doc);
    expect(hijack.ok, JSON.stringify(hijack)).toBe(true);
    if (!hijack.ok) throw new Error('unreachable');
    const signatures = [signAgreement(hijack.agreement, agreementHash(hijack.agreement), { partyId: strangerKeys.identity.id, signingSecret: strangerKeys.signingSecret }, INSIDE)];
    expect(versionStatus({ agreement: hijack.agreement, signatures }, INSIDE).state).toBe('active');
    const [s1, s2] = collaborationStatus([signedByBoth(v1), { agreement: hijack.agreement, signatures }], INSIDE);
    expect(s2?.state).toBe('proposed');
    expect(s2?.missing).toEqual(expect.arrayContaining([ADV, PUB]));
    expect(s1).toMatchObject({ state: 'active', supersededBy: null });
  });

  it('amending twice does not launder consent: a v3 under new signers of a v2 nobody else signed stays proposed', () => {
    const doc = mutable(v1);
    doc.version = 2;
    doc.previous = v1Hash;
    const strangerKeys = generatePartyKeys('A stranger');
    const parties = doc.parties as { id: string; name: string; signingKey: string; encryptionKey: string; roles: string[] }[];
    for (const party of parties) party.roles = party.roles.filter((r) => r !== 'signer');
    parties.push({ id: strangerKeys.identity.id, name: 'A stranger', signingKey: strangerKeys.identity.signingKey, encryptionKey: strangerKeys.identity.encryptionKey, roles: ['signer'] });
    const v2b = assertAgreement(doc);
    const v3doc = mutable(v2b);
    v3doc.version = 3;
    v3doc.previous = agreementHash(v2b);
    const v3b = assertAgreement(v3doc);
    const bySigner = (agreement: Agreement) => ({ agreement, signatures: [signAgreement(agreement, agreementHash(agreement), { partyId: strangerKeys.identity.id, signingSecret: strangerKeys.signingSecret }, INSIDE)] });
    const statuses = collaborationStatus([signedByBoth(v1), bySigner(v2b), bySigner(v3b)], INSIDE);
    expect(statuses.map((s) => s.state)).toEqual(['active', 'proposed', 'proposed']);
    expect(activeVersion([signedByBoth(v1), bySigner(v2b), bySigner(v3b)], INSIDE)?.hash).toBe(v1Hash);
  });
});
