// The collaboration routes through app.inject() over a real SQLite store: proposing, signing,
// reading, amending, and who may do which.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agreementHash, verifyAgreementSignature, type Agreement, type AgreementSignature } from '../../src/agreement/index.js';
import { fromBase64Url, toBase64Url } from '../../src/crypto/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import {
  NOW,
  agreementFor,
  amendment,
  establish,
  expectProblem,
  fetchAgreement,
  list,
  makeParties,
  propose,
  show,
  sign,
  startTestServer,
  submitSignature,
  uniqueId,
  type InjectResponse,
  type TestServer,
} from './helpers.js';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  server.clock.now = NOW;
});

function expectJson(response: InjectResponse, status: number): any {
  expect(response.statusCode, response.body).toBe(status);
  expect(String(response.headers['content-type'])).toMatch(/^application\/json(?:;|$)/);
  return response.json();
}

function flipByte(signature: AgreementSignature): AgreementSignature {
  const bytes = fromBase64Url(signature.signature)!;
  bytes[10] = (bytes[10] ?? 0) ^ 0x01;
  return { ...signature, signature: toBase64Url(bytes) };
}

describe('happy path: propose, sign, read', () => {
  it('proposes, collects the second signature, accepts a duplicate, and shows the same state everywhere', async () => {
    const parties = makeParties();
    const { advertiser: adv, publisher: pub, operator: op } = parties;
    const id = uniqueId('campaign');
    const agreement = agreementFor(parties, id);
    const hash = agreementHash(agreement);

    const proposed = expectJson(await propose(server, adv, agreement), 201);
    const version1 = {
      version: 1,
      hash,
      previous: null,
      validFrom: agreement.validFrom,
      validUntil: agreement.validUntil,
      proposedBy: adv.identity.id,
      createdAt: NOW.toISOString(),
      supersededBy: null,
    };
    expect(proposed).toEqual({
      id,
      title: agreement.title,
      state: 'proposed',
      activeHash: null,
      latestHash: hash,
      versions: [{ ...version1, state: 'proposed', signed: [adv.identity.id], missing: [pub.identity.id] }],
    });

    const signed = expectJson(await submitSignature(server, pub, id, sign(agreement, pub)), 201);
    const active = {
      id,
      title: agreement.title,
      state: 'active',
      activeHash: hash,
      latestHash: hash,
      versions: [{ ...version1, state: 'active', signed: [adv.identity.id, pub.identity.id], missing: [] }],
    };
    expect(signed).toEqual(active);

    // The same signature again, and the proposer's own (stored with the proposal): 200, unchanged.
    expect(expectJson(await submitSignature(server, pub, id, sign(agreement, pub)), 200)).toEqual(active);
    expect(expectJson(await submitSignature(server, adv, id, sign(agreement, adv)), 200)).toEqual(active);

    // Every member reads the same view, the operator (a party without the signer role) included.
    for (const party of [adv, pub, op]) {
      expect(expectJson(await show(server, party, id), 200)).toEqual(active);
    }
  });

  it('serves the agreement with its hash and every signature, by default and by version', async () => {
    const parties = makeParties();
    const { advertiser: adv, publisher: pub } = parties;
    const { id, agreement, hash } = await establish(server, parties, { signed: true });

    const latest = expectJson(await fetchAgreement(server, adv, id), 200);
    expect(Object.keys(latest).sort()).toEqual(['agreement', 'hash', 'signatures']);
    expect(latest.hash).toBe(hash);
    expect(latest.agreement).toEqual(agreement);
    expect(agreementHash(latest.agreement as Agreement)).toBe(hash);
    const signatures = latest.signatures as AgreementSignature[];
    expect(signatures.map((s) => s.signer).sort()).toEqual([adv.identity.id, pub.identity.id].sort());
    for (const signature of signatures) {
      const mine = [adv, pub].find((p) => p.identity.id === signature.signer)!;
      expect(signature).toEqual({ ...sign(agreement, mine), signedAt: NOW.toISOString() });
      expect(verifyAgreementSignature(agreement, hash, signature)).toEqual({ signer: signature.signer, valid: true });
    }

    expect(expectJson(await fetchAgreement(server, pub, id, '?version=1'), 200)).toEqual(latest);
  });

  it('lists only the collaborations the caller is a party to', async () => {
    const first = makeParties('first ');
    const second = { ...makeParties('second '), publisher: first.publisher };
    const a = await establish(server, first, { id: uniqueId('list-a') });
    const b = await establish(server, second, { id: uniqueId('list-b') });
    const stranger = generatePartyKeys('Stranger');

    const ids = async (party: typeof stranger): Promise<string[]> =>
      (expectJson(await list(server, party), 200).collaborations as { id: string }[]).map((c) => c.id);

    expect(await ids(first.publisher)).toEqual([a.id, b.id].sort());
    expect(await ids(first.advertiser)).toEqual([a.id]);
    expect(await ids(first.operator)).toEqual([a.id]);
    expect(await ids(second.advertiser)).toEqual([b.id]);
    expect(await ids(stranger)).toEqual([]);

    // Each listed view is the one GET /v1/collaborations/:id gives.
    const listed = expectJson(await list(server, first.advertiser), 200);
    expect(listed).toEqual({ collaborations: [expectJson(await show(server, first.advertiser, a.id), 200)] });
  });

  it('derives the state from the server clock: proposed before validFrom, expired after validUntil', async () => {
    const parties = makeParties();
    const id = uniqueId('future');
    const agreement = agreementFor(parties, id, new Date(NOW.getTime() + 24 * 3600 * 1000));
    expectJson(await propose(server, parties.advertiser, agreement), 201);
    const signed = expectJson(await submitSignature(server, parties.publisher, id, sign(agreement, parties.publisher)), 201);
    expect(signed.state).toBe('proposed');
    expect(signed.versions[0]).toMatchObject({ state: 'proposed', missing: [] });

    server.clock.now = new Date(Date.parse(agreement.validFrom) + 1000);
    expect(expectJson(await show(server, parties.advertiser, id), 200).state).toBe('active');

    server.clock.now = new Date(Date.parse(agreement.validUntil));
    const expired = expectJson(await show(server, parties.advertiser, id), 200);
    expect(expired).toMatchObject({ state: 'expired', activeHash: null, versions: [{ state: 'expired' }] });
  });
});

describe('amendments', () => {
  it('a member proposes version 2; once both sign it, version 1 is superseded', async () => {
    const parties = makeParties();
    const { advertiser: adv, publisher: pub } = parties;
    const v1 = await establish(server, parties, { signed: true });
    const v2 = amendment(v1.agreement);
    const v2Hash = agreementHash(v2);

    // Proposed by the publisher, who did not propose version 1.
    const proposed = expectJson(await propose(server, pub, v2), 201);
    expect(proposed).toMatchObject({ id: v1.id, title: v2.title, state: 'active', activeHash: v1.hash, latestHash: v2Hash });
    expect(proposed.versions).toHaveLength(2);
    expect(proposed.versions[0]).toMatchObject({ version: 1, hash: v1.hash, state: 'active', supersededBy: null });
    expect(proposed.versions[1]).toMatchObject({
      version: 2,
      hash: v2Hash,
      previous: v1.hash,
      state: 'proposed',
      signed: [pub.identity.id],
      missing: [adv.identity.id],
      proposedBy: pub.identity.id,
    });

    const signed = expectJson(await submitSignature(server, adv, v1.id, sign(v2, adv)), 201);
    expect(signed).toMatchObject({ state: 'active', activeHash: v2Hash, latestHash: v2Hash });
    expect(signed.versions[0]).toMatchObject({ version: 1, state: 'superseded', supersededBy: v2Hash });
    expect(signed.versions[1]).toMatchObject({ version: 2, state: 'active', signed: [adv.identity.id, pub.identity.id], missing: [] });
    expect(expectJson(await show(server, parties.operator, v1.id), 200)).toEqual(signed);

    // The agreement route serves the newest version by default and any version on request.
    const latest = expectJson(await fetchAgreement(server, adv, v1.id), 200);
    expect(latest.hash).toBe(v2Hash);
    expect(latest.agreement).toEqual(v2);
    const first = expectJson(await fetchAgreement(server, adv, v1.id, '?version=1'), 200);
    expect(first.hash).toBe(v1.hash);
    expect(first.agreement).toEqual(v1.agreement);
    expect((first.signatures as AgreementSignature[]).every((s) => s.hash === v1.hash && s.version === 1)).toBe(true);
    expect(expectJson(await fetchAgreement(server, adv, v1.id, '?version=2'), 200)).toEqual(latest);

    expectProblem(await fetchAgreement(server, adv, v1.id, '?version=3'), 404, 'not-found', `collaboration ${v1.id} has no version 3`);
    const badQuery = expectProblem(await fetchAgreement(server, adv, v1.id, '?version=zero'), 400, 'invalid-input', 'request querystring is invalid');
    expect(badQuery.issues).toEqual([{ path: 'querystring.version', message: 'expected number, received string' }]);
    const unknownQuery = expectProblem(await fetchAgreement(server, adv, v1.id, '?latest=1'), 400, 'invalid-input');
    expect(unknownQuery.issues).toEqual([{ path: 'querystring.latest', message: 'unknown field' }]);
  });

  it('refuses amendments that do not extend the newest version', async () => {
    const parties = makeParties();
    const { advertiser: adv, publisher: pub } = parties;
    const v1 = await establish(server, parties);
    const expected = `an amendment must have version 2 and previous ${v1.hash}`;

    // Version 1 again: the very same document, and a different one.
    expectProblem(await propose(server, adv, v1.agreement), 409, 'conflict', expected);
    expectProblem(await propose(server, pub, { ...v1.agreement, title: 'Another title' }), 409, 'conflict', expected);
    // Version 2 that amends something else, and version 3.
    const elsewhere = `sha256:${'ab'.repeat(32)}`;
    expectProblem(await propose(server, adv, amendment(v1.agreement, { previous: elsewhere })), 409, 'conflict', expected);
    expectProblem(await propose(server, adv, amendment(v1.agreement, { version: 3 })), 409, 'conflict', expected);

    // Nothing was stored by the refused proposals.
    const view = expectJson(await show(server, adv, v1.id), 200);
    expect(view.versions).toHaveLength(1);
  });

  it('refuses a version 2 for a collaboration that does not exist', async () => {
    const parties = makeParties();
    const v1 = agreementFor(parties, uniqueId('never'));
    const v2 = amendment(v1);
    expectProblem(await propose(server, parties.advertiser, v2), 409, 'conflict', `collaboration ${v1.id} does not exist; a new one starts at version 1`);
  });

  it('refuses an amendment from a party that is not yet a member, as if the id were taken', async () => {
    const parties = makeParties();
    const v1 = await establish(server, parties);
    const newcomer = generatePartyKeys('Newcomer');
    const { id, name, signingKey, encryptionKey } = newcomer.identity;
    const v2 = amendment(v1.agreement, { parties: [...v1.agreement.parties, { id, name, signingKey, encryptionKey, roles: ['signer'] }] });
    expectProblem(await propose(server, newcomer, v2), 409, 'conflict', `collaboration id ${v1.id} is not available`);
  });
});

describe('authorization', () => {
  /** The stranger's three requests against one collaboration id. */
  async function strangerRequests(id: string, agreement: Agreement, stranger: ReturnType<typeof generatePartyKeys>): Promise<InjectResponse[]> {
    return [
      await show(server, stranger, id),
      await fetchAgreement(server, stranger, id),
      await fetchAgreement(server, stranger, id, '?version=1'),
      await submitSignature(server, stranger, id, sign(agreement, stranger)),
    ];
  }

  function comparable(response: InjectResponse): unknown {
    return { status: response.statusCode, type: response.headers['content-type'], body: response.body };
  }

  it('answers a non-member exactly as it answers for an id that does not exist', async () => {
    const parties = makeParties();
    const stranger = generatePartyKeys('Stranger');
    const id = uniqueId('secret');
    const agreement = agreementFor(parties, id);

    const before = await strangerRequests(id, agreement, stranger);
    await establish(server, parties, { id, signed: true });
    const after = await strangerRequests(id, agreement, stranger);

    for (const [i, response] of after.entries()) {
      const problem = expectProblem(response, 404, 'not-found', `collaboration ${id} not found`);
      expect(problem.instance).toMatch(new RegExp(`^/v1/collaborations/${id}(?:/agreement|/signatures)?$`));
      expect(comparable(response)).toEqual(comparable(before[i]!));
    }

    // Against another id that does not exist, only the id (in detail and instance) differs.
    const otherId = uniqueId('missing');
    const other = await strangerRequests(otherId, { ...agreement, id: otherId }, stranger);
    for (const [i, response] of other.entries()) {
      const body = response.body.replaceAll(otherId, id);
      expect({ ...(comparable(response) as object), body }).toEqual(comparable(after[i]!));
    }
    const withoutInstance = ({ instance: _instance, ...rest }: { instance?: string }): unknown => rest;
    expect(withoutInstance(after[0]!.json())).toEqual(withoutInstance(after[1]!.json()));
  });

  it('refuses to propose an agreement the caller is not a party to', async () => {
    const parties = makeParties();
    const stranger = generatePartyKeys('Stranger');
    const agreement = agreementFor(parties, uniqueId('not-mine'));
    expectProblem(
      await propose(server, stranger, agreement, sign(agreement, stranger)),
      403,
      'forbidden',
      'the proposer must be a party to the agreement it proposes',
    );
    // Not even with a genuine signature of a party.
    expectProblem(await propose(server, stranger, agreement, sign(agreement, parties.advertiser)), 403, 'forbidden');
    expectProblem(await show(server, parties.advertiser, agreement.id), 404, 'not-found');
  });

  it("refuses a proposal carrying someone else's signature", async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('borrowed'));
    expectProblem(
      await propose(server, parties.advertiser, agreement, sign(agreement, parties.publisher)),
      403,
      'forbidden',
      `the proposal must carry the proposer's own signature, not ${parties.publisher.identity.id}'s`,
    );
    expectProblem(await show(server, parties.advertiser, agreement.id), 404, 'not-found');
  });

  it("refuses to add another party's signature, even a valid one", async () => {
    const parties = makeParties();
    const { id, agreement } = await establish(server, parties);
    expectProblem(
      await submitSignature(server, parties.advertiser, id, sign(agreement, parties.publisher)),
      403,
      'forbidden',
      `you may submit only your own signature, not ${parties.publisher.identity.id}'s`,
    );
    expectProblem(await submitSignature(server, parties.operator, id, sign(agreement, parties.publisher)), 403, 'forbidden');
    expect(expectJson(await show(server, parties.publisher, id), 200).state).toBe('proposed');
  });

  it('refuses signatures by a party without the signer role', async () => {
    const parties = makeParties();
    const agreement = agreementFor(parties, uniqueId('auditor'));
    const operatorId = parties.operator.identity.id;
    expectProblem(
      await propose(server, parties.operator, agreement),
      403,
      'signature-not-signer',
      `party ${operatorId} (Operator) does not have the signer role`,
    );
    await establish(server, parties, { id: agreement.id });
    expectProblem(await submitSignature(server, parties.operator, agreement.id, sign(agreement, parties.operator)), 403, 'signature-not-signer');
  });

  it('refuses a signature on a version that no longer names the signer as a party', async () => {
    const parties = makeParties();
    const v1 = await establish(server, parties, { signed: true });
    // Version 2 drops the operator, who stays a member through version 1.
    const v2 = amendment(v1.agreement, { parties: v1.agreement.parties.filter((p) => p.id !== parties.operator.identity.id) });
    expect(expectJson(await propose(server, parties.advertiser, v2), 201).versions).toHaveLength(2);
    expectProblem(
      await submitSignature(server, parties.operator, v1.id, sign(v2, parties.operator)),
      403,
      'signature-not-party',
      `signer ${parties.operator.identity.id} is not a party to this agreement`,
    );
  });

  it('stores only one of two concurrent proposals of the same new id', async () => {
    const parties = makeParties();
    const id = uniqueId('race');
    const byAdvertiser = agreementFor(parties, id);
    const byPublisher = { ...agreementFor(parties, id), title: 'The publisher version' };
    const responses = await Promise.all([
      propose(server, parties.advertiser, byAdvertiser),
      propose(server, parties.publisher, byPublisher),
      propose(server, parties.advertiser, byAdvertiser),
    ]);
    const statuses = responses.map((r) => r.statusCode).sort();
    expect(statuses).toEqual([201, 409, 409]);
    for (const response of responses.filter((r) => r.statusCode === 409)) expectProblem(response, 409, 'conflict');
    const winner = responses.find((r) => r.statusCode === 201)!.json();
    const view = expectJson(await show(server, parties.operator, id), 200);
    expect(view.versions).toHaveLength(1);
    expect(view.latestHash).toBe(winner.latestHash);
  });

  it('answers 409 when the id is taken by a collaboration the caller is not in', async () => {
    const mine = makeParties('mine ');
    const theirs = makeParties('theirs ');
    const { id } = await establish(server, theirs);
    expectProblem(await propose(server, mine.advertiser, agreementFor(mine, id)), 409, 'conflict', `collaboration id ${id} is not available`);
    // The outsider learns nothing else: the collaboration itself is still 404 to it.
    expectProblem(await show(server, mine.advertiser, id), 404, 'not-found');
  });
});

describe('signature checks', () => {
  it('refuses a signature over a different hash (422 signature-wrong-hash)', async () => {
    const parties = makeParties();
    const { id, agreement, hash } = await establish(server, parties);
    const other = { ...agreement, title: 'Not what was proposed' };
    const otherHash = agreementHash(other);

    // Over a document that is not a version of the collaboration.
    const stray = sign(other, parties.publisher);
    expectProblem(
      await submitSignature(server, parties.publisher, id, stray),
      422,
      'signature-wrong-hash',
      `signature is over ${otherHash}, which is not a version of ${id}`,
    );
    // Over the right hash but naming another collaboration or version.
    const good = sign(agreement, parties.publisher);
    expectProblem(await submitSignature(server, parties.publisher, id, { ...good, version: 2 }), 422, 'signature-wrong-hash');
    expectProblem(await submitSignature(server, parties.publisher, id, { ...good, collaboration: 'elsewhere' }), 422, 'signature-wrong-hash');

    // On proposal: the signature over another document, or naming another collaboration.
    const fresh = agreementFor(parties, uniqueId('wrong-hash'));
    expectProblem(
      await propose(server, parties.advertiser, fresh, sign({ ...fresh, title: 'Other' }, parties.advertiser)),
      422,
      'signature-wrong-hash',
      `is over ${agreementHash({ ...fresh, title: 'Other' })}, not this agreement (${agreementHash(fresh)})`,
    );
    expectProblem(
      await propose(server, parties.advertiser, fresh, { ...sign(fresh, parties.advertiser), collaboration: id }),
      422,
      'signature-wrong-hash',
      'signature names a different collaboration or version',
    );
    expect(expectJson(await show(server, parties.advertiser, id), 200).versions[0].hash).toBe(hash);
    expectProblem(await show(server, parties.advertiser, fresh.id), 404, 'not-found');
  });

  it('refuses a signature with a flipped byte (422 signature-invalid)', async () => {
    const parties = makeParties();
    const { id, agreement } = await establish(server, parties);
    expectProblem(
      await submitSignature(server, parties.publisher, id, flipByte(sign(agreement, parties.publisher))),
      422,
      'signature-invalid',
      `signature by ${parties.publisher.identity.id} (Publisher) does not verify`,
    );
    const fresh = agreementFor(parties, uniqueId('flipped'));
    expectProblem(await propose(server, parties.advertiser, fresh, flipByte(sign(fresh, parties.advertiser))), 422, 'signature-invalid');
    expectProblem(await show(server, parties.advertiser, fresh.id), 404, 'not-found');
    expect(expectJson(await show(server, parties.advertiser, id), 200).versions[0].signed).toEqual([parties.advertiser.identity.id]);
  });
});
