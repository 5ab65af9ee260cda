import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMalusError, type ErrorCode } from '../../src/errors/index.js';
import type { AgreementRecord, DatasetRecord, DatasetUploadRecord, SignatureRecord, Store } from '../../src/store/index.js';

/** A content-like hash, unique per label, in the 'sha256:<64 hex>' form the store is given. */
export function fakeHash(label: string): string {
  return `sha256:${createHash('sha256').update(label).digest('hex')}`;
}

export function agreement(
  collaborationId: string,
  version: number,
  overrides: Partial<AgreementRecord> = {},
): AgreementRecord {
  return {
    hash: fakeHash(`${collaborationId}/v${version}`),
    collaborationId,
    version,
    previous: version === 1 ? null : fakeHash(`${collaborationId}/v${version - 1}`),
    document: { collaboration: collaborationId, version, purpose: 'measure overlap' },
    proposedBy: 'party-alice',
    createdAt: '2025-01-02T03:04:05Z',
    ...overrides,
  };
}

export function signature(
  agreementHash: string,
  partyId: string,
  overrides: Partial<SignatureRecord> = {},
): SignatureRecord {
  return {
    agreementHash,
    partyId,
    signature: `sig-${partyId}-${agreementHash.slice(7, 15)}`,
    signedAt: '2025-01-02T03:04:05Z',
    ...overrides,
  };
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(isMalusError(error) ? error.code : error).toBe(code);
}

/**
 * The behaviour every Store implementation must show. Each test gets a fresh, empty store from
 * `open` and closes it afterwards.
 */
export function describeStoreContract(name: string, open: () => Promise<Store> | Store): void {
  describe(`${name}: store contract`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close();
    });

    async function insert(record: AgreementRecord, members: readonly string[] = [record.proposedBy]): Promise<void> {
      await store.collaborations.insertAgreement({
        agreement: record,
        members,
        signature: signature(record.hash, record.proposedBy),
      });
    }

    describe('agreements', () => {
      it('reads back an inserted agreement equal to what was written', async () => {
        const document = {
          zeta: 'last key first',
          tables: [{ name: 'orders', columns: [{ name: 'id', type: 'int' }] }],
          limits: { minRows: 10, epsilon: 0.5, big: 9007199254740991, negative: -3 },
          flags: [true, false, null],
          text: 'naïve 名前 😀 "quoted" \\ \n',
          empty: {},
        };
        const record = agreement('collab-1', 1, { document });
        await insert(record, ['party-alice', 'party-bob']);

        const stored = await store.collaborations.getAgreement(record.hash);
        expect(stored).toEqual(record);
        expect(stored?.document).toStrictEqual(document);
      });

      it('keeps its own copy of the document', async () => {
        const record = agreement('collab-1', 1, { document: { nested: { value: 1 } } });
        await insert(record);
        (record.document['nested'] as { value: number }).value = 2;

        const stored = await store.collaborations.getAgreement(record.hash);
        expect(stored?.document).toEqual({ nested: { value: 1 } });
      });

      it('stores a later version with its previous hash', async () => {
        const first = agreement('collab-1', 1);
        const second = agreement('collab-1', 2, { previous: first.hash, proposedBy: 'party-bob' });
        await insert(first);
        await insert(second);

        expect(await store.collaborations.getAgreement(second.hash)).toEqual(second);
      });

      it('answers undefined for an unknown hash', async () => {
        expect(await store.collaborations.getAgreement(fakeHash('nothing'))).toBeUndefined();
      });

      it('stores the proposer signature with the agreement', async () => {
        const record = agreement('collab-1', 1);
        await insert(record);

        expect(await store.collaborations.listSignatures(record.hash)).toEqual([signature(record.hash, 'party-alice')]);
      });

      it('refuses a duplicate hash and writes nothing of the failed insert', async () => {
        const original = agreement('collab-1', 1);
        await insert(original);
        const clash = agreement('collab-2', 1, { hash: original.hash, proposedBy: 'party-mallory' });

        await expectCode(insert(clash, ['party-mallory']), 'conflict');

        expect(await store.collaborations.getAgreement(original.hash)).toEqual(original);
        expect(await store.collaborations.listVersions('collab-2')).toEqual([]);
        expect(await store.collaborations.isMember('collab-1', 'party-mallory')).toBe(false);
        expect(await store.collaborations.isMember('collab-2', 'party-mallory')).toBe(false);
        expect(await store.collaborations.listCollaborationIds('party-mallory')).toEqual([]);
        const signatures = await store.collaborations.listSignatures(original.hash);
        expect(signatures).toEqual([signature(original.hash, 'party-alice')]);
      });

      it('refuses a duplicate (collaborationId, version) and writes nothing of the failed insert', async () => {
        const original = agreement('collab-1', 1);
        await insert(original);
        const clash = agreement('collab-1', 1, { hash: fakeHash('other'), proposedBy: 'party-mallory' });

        await expectCode(insert(clash, ['party-mallory', 'party-alice']), 'conflict');

        expect(await store.collaborations.getAgreement(clash.hash)).toBeUndefined();
        expect(await store.collaborations.listSignatures(clash.hash)).toEqual([]);
        expect(await store.collaborations.listVersions('collab-1')).toEqual([original]);
        expect(await store.collaborations.isMember('collab-1', 'party-mallory')).toBe(false);
        expect(await store.collaborations.listCollaborationIds('party-mallory')).toEqual([]);
      });

      it('refuses a proposer signature over another hash and writes nothing', async () => {
        const record = agreement('collab-1', 1);
        const insertion = store.collaborations.insertAgreement({
          agreement: record,
          members: ['party-alice'],
          signature: signature(fakeHash('elsewhere'), 'party-alice'),
        });

        await expectCode(insertion, 'invalid-input');

        expect(await store.collaborations.getAgreement(record.hash)).toBeUndefined();
        expect(await store.collaborations.isMember('collab-1', 'party-alice')).toBe(false);
      });

      it('refuses a version that is not a positive integer', async () => {
        for (const version of [0, -1, 1.5, Number.NaN]) {
          await expectCode(insert(agreement('collab-1', version)), 'invalid-input');
        }
        expect(await store.collaborations.listVersions('collab-1')).toEqual([]);
      });

      it('lists versions in ascending order, whatever the insertion order', async () => {
        const v3 = agreement('collab-1', 3);
        const v1 = agreement('collab-1', 1);
        const v2 = agreement('collab-1', 2);
        const v10 = agreement('collab-1', 10);
        for (const record of [v3, v10, v1, v2]) await insert(record);
        await insert(agreement('collab-2', 1));

        const versions = await store.collaborations.listVersions('collab-1');
        expect(versions.map((record) => record.version)).toEqual([1, 2, 3, 10]);
        expect(versions).toEqual([v1, v2, v3, v10]);
      });

      it('lists no versions for an unknown collaboration', async () => {
        expect(await store.collaborations.listVersions('collab-unknown')).toEqual([]);
      });
    });

    describe('signatures', () => {
      it('adds a signature by another party', async () => {
        const record = agreement('collab-1', 1);
        await insert(record, ['party-alice', 'party-bob']);
        const bob = signature(record.hash, 'party-bob', { signedAt: '2025-01-03T00:00:00Z' });

        expect(await store.collaborations.addSignature(bob)).toBe('added');
        const signatures = await store.collaborations.listSignatures(record.hash);
        expect(signatures).toEqual([signature(record.hash, 'party-alice'), bob]);
      });

      it('answers duplicate for a second signature by the same party and keeps the first', async () => {
        const record = agreement('collab-1', 1);
        await insert(record, ['party-alice', 'party-bob']);
        const first = signature(record.hash, 'party-bob', { signature: 'first', signedAt: '2025-01-03T00:00:00Z' });
        const second = signature(record.hash, 'party-bob', { signature: 'second', signedAt: '2025-01-04T00:00:00Z' });

        expect(await store.collaborations.addSignature(first)).toBe('added');
        expect(await store.collaborations.addSignature(second)).toBe('duplicate');
        const proposerAgain = signature(record.hash, 'party-alice', { signature: 'again' });
        expect(await store.collaborations.addSignature(proposerAgain)).toBe('duplicate');

        const stored = await store.collaborations.listSignatures(record.hash);
        expect(stored).toEqual([signature(record.hash, 'party-alice'), first]);
      });

      it('refuses a signature over an unknown hash', async () => {
        const unknown = fakeHash('unknown');

        await expectCode(store.collaborations.addSignature(signature(unknown, 'party-bob')), 'not-found');
        expect(await store.collaborations.listSignatures(unknown)).toEqual([]);
      });

      it('lists signatures by signedAt, then by party id', async () => {
        const record = agreement('collab-1', 1, { proposedBy: 'party-m' });
        await store.collaborations.insertAgreement({
          agreement: record,
          members: ['party-m'],
          signature: signature(record.hash, 'party-m', { signedAt: '2025-01-05T00:00:00Z' }),
        });
        const later = signature(record.hash, 'party-a', { signedAt: '2025-01-06T00:00:00Z' });
        const tieZ = signature(record.hash, 'party-z', { signedAt: '2025-01-04T00:00:00Z' });
        const tieB = signature(record.hash, 'party-b', { signedAt: '2025-01-04T00:00:00Z' });
        for (const entry of [later, tieZ, tieB]) await store.collaborations.addSignature(entry);

        const parties = (await store.collaborations.listSignatures(record.hash)).map((entry) => entry.partyId);
        expect(parties).toEqual(['party-b', 'party-z', 'party-m', 'party-a']);
      });

      it('keeps the signatures of each version apart', async () => {
        const v1 = agreement('collab-1', 1);
        const v2 = agreement('collab-1', 2);
        await insert(v1, ['party-alice', 'party-bob']);
        await insert(v2, ['party-alice', 'party-bob']);
        await store.collaborations.addSignature(signature(v1.hash, 'party-bob'));

        const signers = async (hash: string): Promise<string[]> =>
          (await store.collaborations.listSignatures(hash)).map((entry) => entry.partyId);
        expect(await signers(v1.hash)).toEqual(['party-alice', 'party-bob']);
        expect(await signers(v2.hash)).toEqual(['party-alice']);
      });
    });

    describe('membership', () => {
      it('counts a party as a member when it belongs to any version', async () => {
        await insert(agreement('collab-1', 1), ['party-alice', 'party-bob']);
        await insert(agreement('collab-1', 2), ['party-alice', 'party-carol']);

        expect(await store.collaborations.isMember('collab-1', 'party-alice')).toBe(true);
        expect(await store.collaborations.isMember('collab-1', 'party-bob')).toBe(true);
        expect(await store.collaborations.isMember('collab-1', 'party-carol')).toBe(true);
        expect(await store.collaborations.isMember('collab-1', 'party-dave')).toBe(false);
        expect(await store.collaborations.isMember('collab-unknown', 'party-alice')).toBe(false);
      });

      it('does not count the proposer as a member unless listed', async () => {
        await insert(agreement('collab-1', 1, { proposedBy: 'party-admin' }), ['party-alice']);

        expect(await store.collaborations.isMember('collab-1', 'party-admin')).toBe(false);
      });

      it('lists the collaborations of a party sorted and without repeats', async () => {
        await insert(agreement('collab-c', 1), ['party-alice']);
        await insert(agreement('collab-a', 1), ['party-alice', 'party-bob']);
        await insert(agreement('collab-a', 2), ['party-alice', 'party-bob']);
        await insert(agreement('collab-b', 1), ['party-bob']);
        await insert(agreement('collab-b', 2), ['party-bob', 'party-alice']);

        const aliceIn = await store.collaborations.listCollaborationIds('party-alice');
        expect(aliceIn).toEqual(['collab-a', 'collab-b', 'collab-c']);
        expect(await store.collaborations.listCollaborationIds('party-bob')).toEqual(['collab-a', 'collab-b']);
        expect(await store.collaborations.listCollaborationIds('party-nobody')).toEqual([]);
      });

      it('stores a repeated member once', async () => {
        await insert(agreement('collab-1', 1), ['party-alice', 'party-alice', 'party-bob']);

        expect(await store.collaborations.listCollaborationIds('party-alice')).toEqual(['collab-1']);
        expect(await store.collaborations.isMember('collab-1', 'party-bob')).toBe(true);
      });
    });

    describe('nonces', () => {
      const now = new Date('2025-01-01T00:00:00Z');
      const inSeconds = (seconds: number): Date => new Date(now.getTime() + seconds * 1000);

      it('accepts a new nonce and refuses its replay', async () => {
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(300), now)).toBe(true);
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(300), inSeconds(1))).toBe(false);
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(600), inSeconds(299))).toBe(false);
      });

      it('keeps nonces of different keys apart', async () => {
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(300), now)).toBe(true);
        expect(await store.nonces.remember('key-2', 'nonce-1', inSeconds(300), now)).toBe(true);
        expect(await store.nonces.remember('key-1', 'nonce-2', inSeconds(300), now)).toBe(true);
      });

      it('accepts a nonce again once its record has expired', async () => {
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(300), now)).toBe(true);
        // Expired exactly at expiresAt.
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(600), inSeconds(300))).toBe(true);
        // The new record runs to the new expiry.
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(900), inSeconds(599))).toBe(false);
        expect(await store.nonces.remember('key-1', 'nonce-1', inSeconds(900), inSeconds(600))).toBe(true);
      });

      it('does not lose live nonces while pruning expired ones', async () => {
        for (let index = 0; index < 250; index += 1) {
          await store.nonces.remember('key-1', `old-${index}`, inSeconds(10), now);
        }
        expect(await store.nonces.remember('key-1', 'live', inSeconds(1000), now)).toBe(true);
        for (let index = 0; index < 5; index += 1) {
          await store.nonces.remember('key-2', `new-${index}`, inSeconds(1000), inSeconds(20));
        }

        expect(await store.nonces.remember('key-1', 'live', inSeconds(1000), inSeconds(30))).toBe(false);
        expect(await store.nonces.remember('key-1', 'old-7', inSeconds(1000), inSeconds(30))).toBe(true);
      });

      it('lets exactly one of 20 concurrent calls with the same nonce through', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.nonces.remember('key-1', 'raced', inSeconds(300), now)),
        );

        expect(results.filter((result) => result)).toHaveLength(1);
      });

      it('refuses an invalid date or an expiry not after now', async () => {
        await expectCode(store.nonces.remember('key-1', 'n', new Date(Number.NaN), now), 'invalid-input');
        await expectCode(store.nonces.remember('key-1', 'n', inSeconds(300), new Date(Number.NaN)), 'invalid-input');
        await expectCode(store.nonces.remember('key-1', 'n', now, now), 'invalid-input');
        await expectCode(store.nonces.remember('key-1', 'n', inSeconds(-1), now), 'invalid-input');
        expect(await store.nonces.remember('key-1', 'n', inSeconds(300), now)).toBe(true);
      });
    });

    describe('log', () => {
      const leaf = (label: string, collaborationId: string | null = 'collab-1', type = 'agreement.proposed') => ({
        data: new TextEncoder().encode(label),
        leafHash: new Uint8Array(createHash('sha256').update(label).digest()),
        collaborationId,
        type,
      });

      it('assigns dense indexes in call order and reads entries and hashes back', async () => {
        expect(await store.log.size()).toBe(0);
        expect(await store.log.append([leaf('a'), leaf('b')])).toBe(0);
        expect(await store.log.append([leaf('c', 'collab-2')])).toBe(2);
        expect(await store.log.size()).toBe(3);
        const entries = await store.log.entries(0, 3);
        expect(entries.map((e) => [e.index, new TextDecoder().decode(e.data), e.collaborationId])).toEqual([
          [0, 'a', 'collab-1'],
          [1, 'b', 'collab-1'],
          [2, 'c', 'collab-2'],
        ]);
        expect((await store.log.leafHashes(1, 3)).map((h) => Buffer.from(h).toString('hex'))).toEqual([
          createHash('sha256').update('b').digest('hex'),
          createHash('sha256').update('c').digest('hex'),
        ]);
        expect((await store.log.entry(2))?.type).toBe('agreement.proposed');
        expect(await store.log.entry(3)).toBeUndefined();
        expect((await store.log.entriesOf(['collab-2'])).map((e) => e.index)).toEqual([2]);
        expect((await store.log.entriesOf(['collab-1', 'collab-2'])).map((e) => e.index)).toEqual([0, 1, 2]);
        expect(await store.log.entriesOf([])).toEqual([]);
      });

      it('keeps concurrent appends dense and unique', async () => {
        const firsts = await Promise.all(Array.from({ length: 20 }, (_, i) => store.log.append([leaf(`x${i}`), leaf(`y${i}`)])));
        expect(firsts.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i * 2));
        expect(await store.log.size()).toBe(40);
      });

      it('refuses a leaf hash of the wrong length and writes nothing of that batch', async () => {
        await expectCode(store.log.append([leaf('ok'), { ...leaf('bad'), leafHash: new Uint8Array(31) }]), 'invalid-input');
        expect(await store.log.size()).toBe(0);
      });

      it('refuses a bad range', async () => {
        await expectCode(store.log.entries(2, 1), 'invalid-input');
        await expectCode(store.log.leafHashes(-1, 1), 'invalid-input');
      });

      it('appends the events of an agreement and of a signature in the same transaction', async () => {
        const v1 = agreement('collab-1', 1);
        await store.collaborations.insertAgreement({
          agreement: v1,
          members: ['party-alice', 'party-bob'],
          signature: signature(v1.hash, 'party-alice'),
          events: [leaf('proposed'), leaf('signed')],
        });
        expect(await store.log.size()).toBe(2);
        // A conflicting insert writes no events either.
        await expectCode(
          store.collaborations.insertAgreement({
            agreement: v1,
            members: ['party-alice'],
            signature: signature(v1.hash, 'party-alice'),
            events: [leaf('again')],
          }),
          'conflict',
        );
        expect(await store.log.size()).toBe(2);
        expect(await store.collaborations.addSignature(signature(v1.hash, 'party-bob'), [leaf('bob signed')])).toBe('added');
        expect(await store.collaborations.addSignature(signature(v1.hash, 'party-bob'), [leaf('bob again')])).toBe('duplicate');
        expect((await store.log.entries(0, 10)).map((e) => new TextDecoder().decode(e.data))).toEqual([
          'proposed',
          'signed',
          'bob signed',
        ]);
      });

      it('stores checkpoints once per size and finds the one covering an index', async () => {
        const root = new Uint8Array(32).fill(7);
        await store.log.saveCheckpoint({ size: 2, root, note: 'note 2\n', createdAt: '2025-01-01T00:00:00Z' });
        await store.log.saveCheckpoint({ size: 5, root, note: 'note 5\n', createdAt: '2025-01-01T00:00:01Z' });
        await expectCode(store.log.saveCheckpoint({ size: 5, root, note: 'other\n', createdAt: 'x' }), 'conflict');
        expect((await store.log.latestCheckpoint())?.size).toBe(5);
        expect((await store.log.checkpointCovering(1))?.size).toBe(2);
        expect((await store.log.checkpointCovering(3))?.note).toBe('note 5\n');
        expect(await store.log.checkpointCovering(6)).toBeUndefined();
        expect((await store.log.listCheckpoints()).map((c) => c.size)).toEqual([2, 5]);
        expect(Buffer.from((await store.log.latestCheckpoint())?.root ?? []).equals(Buffer.from(root))).toBe(true);
      });

      it('keeps one cosignature per witness per checkpoint', async () => {
        await store.log.saveCheckpoint({ size: 1, root: new Uint8Array(32), note: 'n\n', createdAt: 't' });
        const cosignature = { size: 1, witness: 'party-alice', line: '— w abc', createdAt: 't' };
        expect(await store.log.addCosignature(cosignature)).toBe('added');
        expect(await store.log.addCosignature({ ...cosignature, line: '— w other' })).toBe('duplicate');
        expect(await store.log.addCosignature({ ...cosignature, witness: 'party-bob' })).toBe('added');
        expect((await store.log.cosignatures(1)).map((c) => [c.witness, c.line])).toEqual([
          ['party-alice', '— w abc'],
          ['party-bob', '— w abc'],
        ]);
        await expectCode(store.log.addCosignature({ ...cosignature, size: 9 }), 'not-found');
      });
    });

    describe('datasets', () => {
      const owner = '0123456789abcdef0123';
      const leaf = (label: string) => ({
        data: new TextEncoder().encode(label),
        leafHash: new Uint8Array(createHash('sha256').update(label).digest()),
        collaborationId: 'collab-1',
        type: 'dataset.registered',
      });
      const manifest = (label: string) => ({ manifest: { dataset: label, ciphertext: { sha256: fakeHash(label), bytes: 100 } }, signature: { signer: owner } });
      const upload = (datasetId: string, overrides: Partial<DatasetUploadRecord> = {}): DatasetUploadRecord => ({
        collaborationId: 'collab-1',
        datasetId,
        owner,
        manifest: manifest(datasetId),
        bytesExpected: 100,
        bytesReceived: 0,
        startedAt: '2025-01-02T03:04:05Z',
        ...overrides,
      });
      const dataset = (datasetId: string, overrides: Partial<DatasetRecord> = {}): DatasetRecord => ({
        collaborationId: 'collab-1',
        datasetId,
        table: 'impressions',
        owner,
        agreementHash: fakeHash('agreement'),
        schemaHash: fakeHash('schema'),
        headerHash: fakeHash(`${datasetId}/header`),
        rows: 42,
        bytes: 100,
        ciphertextSha256: fakeHash(datasetId),
        keyCommitment: fakeHash(`${datasetId}/key`),
        manifest: manifest(datasetId),
        createdAt: '2025-01-02T03:05:00Z',
        ...overrides,
      });

      it('keeps an upload pending until it completes, then shows the dataset and drops the upload, with its events', async () => {
        await store.datasets.putUpload(upload('d-1'));
        expect(await store.datasets.getUpload('collab-1', 'd-1')).toEqual(upload('d-1'));
        expect(await store.datasets.get('collab-1', 'd-1')).toBeUndefined();
        expect(await store.datasets.list('collab-1')).toEqual([]);

        expect(await store.datasets.complete(dataset('d-1'), [leaf('registered d-1')])).toBe('added');
        expect(await store.datasets.get('collab-1', 'd-1')).toEqual(dataset('d-1'));
        expect(await store.datasets.getUpload('collab-1', 'd-1')).toBeUndefined();
        expect((await store.log.entries(0, 10)).map((e) => new TextDecoder().decode(e.data))).toEqual(['registered d-1']);
      });

      it('answers the same ciphertext again as a duplicate and refuses another one, writing nothing', async () => {
        await store.datasets.complete(dataset('d-1'), [leaf('first')]);
        expect(await store.datasets.complete(dataset('d-1', { createdAt: '2025-02-01T00:00:00Z' }), [leaf('again')])).toBe('duplicate');
        await expectCode(store.datasets.complete(dataset('d-1', { ciphertextSha256: fakeHash('other') }), [leaf('other')]), 'conflict');
        expect(await store.log.size()).toBe(1);
        expect(await store.datasets.get('collab-1', 'd-1')).toEqual(dataset('d-1'));
        // No upload can start under the id of a complete dataset.
        await expectCode(store.datasets.putUpload(upload('d-1')), 'conflict');
        expect(await store.datasets.getUpload('collab-1', 'd-1')).toBeUndefined();
      });

      it('moves an upload forward only from the offset it is at, and never past its size', async () => {
        await store.datasets.putUpload(upload('d-1'));
        expect(await store.datasets.advanceUpload('collab-1', 'd-1', 0, 40)).toBe(true);
        expect(await store.datasets.advanceUpload('collab-1', 'd-1', 0, 80)).toBe(false);
        expect(await store.datasets.advanceUpload('collab-1', 'd-1', 40, 101)).toBe(false);
        expect(await store.datasets.advanceUpload('collab-1', 'd-1', 40, 100)).toBe(true);
        expect((await store.datasets.getUpload('collab-1', 'd-1'))?.bytesReceived).toBe(100);
        // Back to the start (a file that failed its check).
        expect(await store.datasets.advanceUpload('collab-1', 'd-1', 100, 0)).toBe(true);
        expect(await store.datasets.advanceUpload('collab-2', 'd-1', 0, 10)).toBe(false);
        expect(await store.datasets.advanceUpload('collab-1', 'unknown', 0, 10)).toBe(false);
        await expectCode(store.datasets.advanceUpload('collab-1', 'd-1', -1, 10), 'invalid-input');
      });

      it('lets exactly one of concurrent moves from the same offset through', async () => {
        await store.datasets.putUpload(upload('d-1'));
        const moved = await Promise.all(Array.from({ length: 10 }, (_, i) => store.datasets.advanceUpload('collab-1', 'd-1', 0, 10 + i)));
        expect(moved.filter((m) => m)).toHaveLength(1);
      });

      it('replaces a pending upload under the same id', async () => {
        await store.datasets.putUpload(upload('d-1'));
        await store.datasets.advanceUpload('collab-1', 'd-1', 0, 50);
        const newer = upload('d-1', { manifest: manifest('newer'), bytesExpected: 200, startedAt: '2025-01-03T00:00:00Z' });
        await store.datasets.putUpload(newer);
        expect(await store.datasets.getUpload('collab-1', 'd-1')).toEqual(newer);
        await expectCode(store.datasets.putUpload(upload('d-2', { bytesReceived: 101 })), 'invalid-input');
        await expectCode(store.datasets.putUpload(upload('d-2', { bytesExpected: 0 })), 'invalid-input');
        expect(await store.datasets.getUpload('collab-1', 'd-2')).toBeUndefined();
      });

      it('scopes dataset ids to their collaboration and lists one collaboration sorted by id', async () => {
        await store.datasets.complete(dataset('d-b'));
        await store.datasets.complete(dataset('d-a'));
        const elsewhere = dataset('d-a', { collaborationId: 'collab-2', ciphertextSha256: fakeHash('elsewhere') });
        expect(await store.datasets.complete(elsewhere)).toBe('added');
        expect((await store.datasets.list('collab-1')).map((d) => d.datasetId)).toEqual(['d-a', 'd-b']);
        expect(await store.datasets.list('collab-2')).toEqual([elsewhere]);
        expect(await store.datasets.list('collab-none')).toEqual([]);
      });
    });

    describe('close', () => {
      it('is idempotent, and later calls reject with store-failure', async () => {
        await store.close();
        await store.close();

        await expectCode(store.collaborations.getAgreement(fakeHash('x')), 'store-failure');
        await expectCode(store.collaborations.listVersions('collab-1'), 'store-failure');
        await expectCode(store.nonces.remember('key-1', 'n', new Date(2_000), new Date(1_000)), 'store-failure');
      });
    });
  });
}
