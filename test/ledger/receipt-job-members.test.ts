import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, toBase64Url } from '../../src/crypto/index.js';
import { MerkleTree, buildReceipt, ed25519NoteSigner, ed25519NoteVerifier, encodeEvent, leafHash, receiptSchema, signCheckpoint, verifyReceipt } from '../../src/ledger/index.js';

// The members a job receipt adds to malus.receipt/v1 (statement, enclave, agreement): the ledger
// checks only the enclave's shape; the log steps are those of a plain receipt.

const logKey = generateSigningKeyPair();
const log = ed25519NoteVerifier('example.com/log', logKey.publicKey);
const entry = encodeEvent({
  format: 'malus.event/v1',
  type: 'job.finished',
  collaboration: 'campaign-measurement',
  actor: { kind: 'enclave', id: 'k'.repeat(43) },
  time: '2026-11-22T10:00:00.000Z',
  job: `job-${'a'.repeat(32)}`,
  outcome: 'succeeded',
  result: `sha256:${'0'.repeat(64)}`,
});
const tree = new MerkleTree();
tree.append(leafHash(entry));
const note = signCheckpoint({ origin: 'example.com/log', size: 1, root: tree.root(), extensions: [] }, ed25519NoteSigner('example.com/log', logKey.secretKey));
const plain = buildReceipt({ entry, index: 0, checkpointNote: note, inclusionProof: [] });
const key = toBase64Url(new Uint8Array(32).fill(7));
const enclave = { platform: 'sim', evidence: toBase64Url(new Uint8Array(100).fill(1)), certificates: [], encryptionKey: key, challenge: key };
const job = { ...plain, statement: { statement: {}, signature: 'x' }, enclave, agreement: { format: 'malus.agreement/v1' } };

describe('job receipt members', () => {
  it('are optional, and pass the log steps unchanged', () => {
    expect(verifyReceipt(plain, { log })).toMatchObject({ ok: true, index: 0 });
    expect(verifyReceipt(job, { log })).toMatchObject({ ok: true, index: 0 });
    expect(receiptSchema.safeParse(job).success).toBe(true);
  });

  it('refuse an enclave of the wrong shape, and a statement or agreement that is not an object', () => {
    const bad = [
      { ...job, enclave: { ...enclave, extra: 1 } },
      { ...job, enclave: { ...enclave, evidence: 'not base64url!' } },
      { ...job, enclave: { ...enclave, evidence: 'A'.repeat(90_001) } },
      { ...job, enclave: { ...enclave, evidence: '' } },
      { ...job, enclave: { ...enclave, certificates: Array.from({ length: 9 }, () => 'AAAA') } },
      { ...job, enclave: { ...enclave, encryptionKey: key.slice(1) } },
      { ...job, enclave: { ...enclave, challenge: undefined } },
      { ...job, enclave: { ...enclave, platform: 'SIM' } },
      { ...job, statement: 'signed' },
      { ...job, statement: [] },
      { ...job, agreement: null },
    ];
    for (const [i, receipt] of bad.entries()) expect(verifyReceipt(receipt, { log }), `case ${i}`).toMatchObject({ ok: false, step: 'shape' });
  });
});
