import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreementHash, exampleAgreement, signAgreement, type Agreement } from '../../src/agreement/index.js';
import { createSimCa, simCaFingerprint } from '../../src/attestation/index.js';
import {
  appraiseKeyReleaseService,
  createClient,
  listDataKeys,
  proposeCollaboration,
  registerDataKey,
  signCollaboration,
  type MalusClient,
} from '../../src/client/index.js';
import { fromBase64Url, hpkeSeal, toBase64, toBase64Url, toHex } from '../../src/crypto/index.js';
import { isMalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { REGISTRATION_INFO, appraiseEnclave, keyCommitment, registrationAad, type EnclaveAppraisal } from '../../src/keyrelease/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { inject, makeParties, prepare, uniqueId, type InjectResponse, type Parties, type SendOptions } from '../server/helpers.js';

// Registering a data key (docs/key-release.md): the provider's SDK appraises the service's evidence
// against the agreement it signed before sealing anything, and the service takes a key only from the
// owner of the table, only when it opens for exactly that dataset, and only once.

const MEASUREMENT = 'c3'.repeat(48);
const clock = {
  get now(): Date {
    return new Date();
  },
};

let dataDir: string;
let server: RunningServer;
let parties: Parties;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'malus-registration-'));
  server = await startServer({ dataDir, host: '127.0.0.1', port: 0, worker: false, simMeasurement: MEASUREMENT });
  parties = makeParties('Registration ');
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function clientOf(keys: PartyKeys): MalusClient {
  return createClient({ server: server.url, keys });
}

function send(options: SendOptions): Promise<InjectResponse> {
  return inject(server, prepare({ clock }, options));
}

function signatureOf(agreement: Agreement, party: PartyKeys) {
  return signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
}

async function establish(measurements: string[] = [server.simMeasurement]): Promise<{ id: string; agreement: Agreement; hash: string }> {
  const id = uniqueId('registration');
  const agreement = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id, validFrom: new Date(Date.now() - 60_000), measurements },
  );
  await proposeCollaboration(clientOf(parties.advertiser), { agreement, signature: signatureOf(agreement, parties.advertiser) });
  expect((await signCollaboration(clientOf(parties.publisher), id, signatureOf(agreement, parties.publisher))).state).toBe('active');
  return { id, agreement, hash: agreementHash(agreement) };
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; reasons: string[] }> {
  try {
    await promise;
  } catch (error) {
    if (isMalusError(error)) return { code: error.code, reasons: error.reasons.map((r) => r.code) };
    throw error;
  }
  throw new Error('expected a rejection');
}

async function eventsOf(collaborationId: string): Promise<{ type: string; dataset?: string; keyCommitment?: string; owner?: string }[]> {
  return (await server.store.log.entriesOf([collaborationId])).map((e) => JSON.parse(new TextDecoder().decode(e.data)) as { type: string });
}

interface ServiceEvidence {
  readonly agreement: string;
  readonly platform: 'sim';
  readonly evidence: string;
  readonly certificates: string[];
  readonly encryptionKey: string;
  readonly simRoot?: string;
}

const decoded = (text: string): Uint8Array => fromBase64Url(text) ?? new Uint8Array();

/** The service's evidence for a nonce, as the route gives it. */
async function serviceEvidence(as: PartyKeys, id: string, nonce: Uint8Array): Promise<ServiceEvidence> {
  const response = await send({ method: 'GET', path: `/v1/kms/collaborations/${id}/attestation?nonce=${toBase64Url(nonce)}`, as });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as ServiceEvidence;
}

/** What the SDK does with the service's evidence: appraise it against the agreement the caller holds. */
function appraiseService(attestation: ServiceEvidence, agreement: Agreement, nonce: Uint8Array, simRoots?: string[]): EnclaveAppraisal {
  const now = new Date();
  return appraiseEnclave({
    presented: { platform: attestation.platform, evidence: decoded(attestation.evidence), certificates: [] },
    policy: agreement.enclave,
    enclavePublicKey: decoded(attestation.encryptionKey),
    challenge: nonce,
    challengeIssuedAt: now,
    agreementHash: agreementHash(agreement),
    trust: { simRoots: simRoots ?? [simCaFingerprint({ certificate: decoded(attestation.simRoot ?? '') })] },
    now,
  });
}

function flipped(text: string, offset: number): string {
  const bytes = Uint8Array.from(decoded(text));
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
  return toBase64Url(bytes);
}

/** Seals a key to the service the way the SDK does, with the AAD's parts overridable. */
async function sealedBody(
  as: PartyKeys,
  agreement: Agreement,
  key: Uint8Array,
  target: { dataset: string; table: string },
  aad: Partial<{ datasetId: string; table: string; owner: string; collaborationId: string }> = {},
) {
  const { attestation } = await appraiseKeyReleaseService(clientOf(as), { agreement });
  const sealed = await hpkeSeal(
    decoded(attestation.encryptionKey),
    key,
    REGISTRATION_INFO,
    registrationAad({ collaborationId: agreement.id, datasetId: target.dataset, table: target.table, owner: as.identity.id, ...aad }),
  );
  return { dataset: target.dataset, table: target.table, sealedKey: { enc: toBase64Url(sealed.enc), ciphertext: toBase64Url(sealed.ciphertext) } };
}

function postKey(as: PartyKeys, id: string, body: unknown): Promise<InjectResponse> {
  return send({ method: 'POST', path: `/v1/kms/collaborations/${id}/keys`, json: body, as });
}

describe("the provider's appraisal of the key-release service", () => {
  it('refuses to register when the agreement pins another measurement than the service shows (attestation-refused)', async () => {
    const { id, agreement } = await establish(['d4'.repeat(48)]);
    const dataset = `${id}-impressions`;
    const refused = await rejection(registerDataKey(clientOf(parties.publisher), { agreement, dataset, table: 'impressions', dataKey: randomBytes(32) }));
    expect(refused).toEqual({ code: 'attestation-refused', reasons: ['measurement-not-pinned'] });
    expect((await listDataKeys(clientOf(parties.publisher), id)).keys).toEqual([]);
    expect((await eventsOf(id)).map((e) => e.type)).not.toContain('key.registered');
  });

  it('refuses when the service attests to another agreement than the one the provider holds (attestation-refused)', async () => {
    const { id, agreement } = await establish();
    const held: Agreement = { ...agreement, title: `${agreement.title} (as the provider read it)` };
    const refused = await rejection(registerDataKey(clientOf(parties.publisher), { agreement: held, dataset: `${id}-impressions`, table: 'impressions', dataKey: randomBytes(32) }));
    expect(refused.code).toBe('attestation-refused');
    expect(refused.reasons).toEqual(['agreement-mismatch', 'binding-mismatch']);
  });

  it('accepts the evidence as served, and refuses it with one byte flipped (evidence-invalid)', async () => {
    const { id, agreement } = await establish();
    const nonce = randomBytes(32);
    const attestation = await serviceEvidence(parties.publisher, id, nonce);
    expect(appraiseService(attestation, agreement, nonce)).toMatchObject({ ok: true, verdict: { measurement: server.simMeasurement } });
    const evidence = decoded(attestation.evidence);
    for (const offset of [evidence.length - 5, Math.floor(evidence.length / 2)]) {
      const tampered = appraiseService({ ...attestation, evidence: flipped(attestation.evidence, offset) }, agreement, nonce);
      expect(tampered.ok ? [] : tampered.reasons.map((r) => r.code)).toEqual(['evidence-invalid']);
    }
  });

  it('refuses evidence for another nonce, another service key, or under a CA it does not trust', async () => {
    const { id, agreement } = await establish();
    const nonce = randomBytes(32);
    const attestation = await serviceEvidence(parties.publisher, id, nonce);
    const codes = (appraisal: EnclaveAppraisal): string[] => (appraisal.ok ? [] : appraisal.reasons.map((r) => r.code));
    expect(codes(appraiseService(attestation, agreement, randomBytes(32)))).toEqual(['binding-mismatch']);
    expect(codes(appraiseService({ ...attestation, encryptionKey: toBase64Url(randomBytes(32)) }, agreement, nonce))).toEqual(['binding-mismatch']);
    const stranger = simCaFingerprint(await createSimCa(new Date()));
    expect(codes(appraiseService(attestation, agreement, nonce, [stranger]))).toEqual(['evidence-invalid']);
  });

  it('refuses evidence changed on the wire, through the real SDK (attestation-refused), and sends no key', async () => {
    const { id, agreement } = await establish();
    const realFetch = globalThis.fetch;
    const posted: string[] = [];
    globalThis.fetch = async (input, init) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (init?.method === 'POST') posted.push(url);
      const response = await realFetch(input, init);
      if (!url.includes('/attestation?')) return response;
      const json = (await response.json()) as ServiceEvidence;
      const evidence = decoded(json.evidence);
      return new Response(JSON.stringify({ ...json, evidence: flipped(json.evidence, evidence.length - 5) }), {
        status: response.status,
        headers: { 'content-type': 'application/json' },
      });
    };
    try {
      const refused = await rejection(registerDataKey(clientOf(parties.publisher), { agreement, dataset: `${id}-impressions`, table: 'impressions', dataKey: randomBytes(32) }));
      expect(refused).toEqual({ code: 'attestation-refused', reasons: ['evidence-invalid'] });
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(posted).toEqual([]);
  });
});

describe('registering a data key with the service', () => {
  let id: string;
  let agreement: Agreement;
  const dek = new Uint8Array(randomBytes(32));
  let dataset: string;

  beforeAll(async () => {
    ({ id, agreement } = await establish());
    dataset = `${id}-impressions`;
  });

  it('refuses the owner of another table (forbidden)', async () => {
    const refused = await rejection(registerDataKey(clientOf(parties.advertiser), { agreement, dataset, table: 'impressions', dataKey: dek }));
    expect(refused.code).toBe('forbidden');
  });

  it('refuses a party that is not a provider (forbidden)', async () => {
    const refused = await rejection(registerDataKey(clientOf(parties.operator), { agreement, dataset, table: 'impressions', dataKey: dek }));
    expect(refused.code).toBe('forbidden');
  });

  it('refuses a table the agreement does not have (forbidden)', async () => {
    const response = await postKey(parties.publisher, id, await sealedBody(parties.publisher, agreement, dek, { dataset, table: 'clicks' }));
    expect(response.statusCode, response.body).toBe(403);
    expect((response.json() as { code: string }).code).toBe('forbidden');
  });

  it('refuses a sealed key that does not open for this dataset, table, owner or collaboration (invalid-input)', async () => {
    const wrongAads = [{ datasetId: `${id}-other` }, { table: 'conversions' }, { owner: parties.advertiser.identity.id }, { collaborationId: `${id}-x` }];
    for (const aad of wrongAads) {
      const response = await postKey(parties.publisher, id, await sealedBody(parties.publisher, agreement, dek, { dataset, table: 'impressions' }, aad));
      expect(response.statusCode, `${JSON.stringify(aad)}: ${response.body}`).toBe(400);
      expect((response.json() as { code: string }).code).toBe('invalid-input');
    }
  });

  it('refuses a sealed key that is not 32 bytes (invalid-input)', async () => {
    const response = await postKey(parties.publisher, id, await sealedBody(parties.publisher, agreement, dek.subarray(0, 16), { dataset, table: 'impressions' }));
    expect(response.statusCode, response.body).toBe(400);
    expect((response.json() as { code: string }).code).toBe('invalid-input');
  });

  it('registers the owner\'s key once (201), then answers the same key again with 200 created: false', async () => {
    const registered = await registerDataKey(clientOf(parties.publisher), { agreement, dataset, table: 'impressions', dataKey: dek });
    const commitment = keyCommitment(dek, id, dataset);
    expect(registered).toMatchObject({ dataset, table: 'impressions', owner: parties.publisher.identity.id, keyCommitment: commitment, created: true });
    expect(registered.service.measurement).toBe(server.simMeasurement);

    const again = await postKey(parties.publisher, id, await sealedBody(parties.publisher, agreement, dek, { dataset, table: 'impressions' }));
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json()).toEqual({ dataset, table: 'impressions', owner: parties.publisher.identity.id, keyCommitment: commitment, created: false });
    // And through the SDK as well.
    expect((await registerDataKey(clientOf(parties.publisher), { agreement, dataset, table: 'impressions', dataKey: dek })).created).toBe(false);
  });

  it('refuses a different key under the same dataset id (409 conflict)', async () => {
    const response = await postKey(parties.publisher, id, await sealedBody(parties.publisher, agreement, randomBytes(32), { dataset, table: 'impressions' }));
    expect(response.statusCode, response.body).toBe(409);
    expect((response.json() as { code: string }).code).toBe('conflict');
  });

  it('has logged exactly one key.registered entry, with the commitment, and the key nowhere in the log', async () => {
    const registeredEvents = (await eventsOf(id)).filter((e) => e.type === 'key.registered');
    expect(registeredEvents).toEqual([
      expect.objectContaining({ dataset, table: 'impressions', owner: parties.publisher.identity.id, keyCommitment: keyCommitment(dek, id, dataset) }),
    ]);
    const size = await server.store.log.size();
    const everything = (await server.store.log.entries(0, size)).map((e) => Buffer.from(e.data).toString('latin1')).join('\n');
    for (const encoding of [toBase64Url(dek), toBase64(dek), toHex(dek), Buffer.from(dek).toString('latin1')]) {
      expect(everything).not.toContain(encoding);
    }
    // The listing shows the commitment, never the key.
    const listed = await listDataKeys(clientOf(parties.advertiser), id);
    expect(listed.keys).toEqual([expect.objectContaining({ dataset, owner: parties.publisher.identity.id, keyCommitment: keyCommitment(dek, id, dataset) })]);
  });
});
