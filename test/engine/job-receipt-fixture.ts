import { randomBytes } from 'node:crypto';
import { agreementHash, exampleAgreement, type Agreement } from '../../src/agreement/index.js';
import { createSimAttester, createSimCa, evidenceBinding, simCaFingerprint, simPlatformAttester } from '../../src/attestation/index.js';
import { generateSigningKeyPair, toBase64Url } from '../../src/crypto/index.js';
import {
  SIMULATED_NOTICE,
  createWorkerIdentity,
  registrationSubject,
  signStatement,
  statementHash,
  type ResultStatement,
  type SignedStatement,
  type WorkerIdentity,
} from '../../src/engine/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import {
  MerkleTree,
  buildReceipt,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  encodeEvent,
  leafHash,
  signCheckpoint,
  verifierKeyString,
  type LogEvent,
  type NoteVerifier,
  type Receipt,
} from '../../src/ledger/index.js';

// A real job receipt, made in-process as the server makes one: a log of the job's entries signed
// by a log key, a sim worker's registration evidence from a real development CA, and a statement
// the worker's key signed. Every part can be replaced, so that a test tampers with one thing only.

export const MEASUREMENT = 'e5'.repeat(48);
export const OTHER_MEASUREMENT = 'f6'.repeat(48);
export const COLLABORATION = 'receipt-collab';
export const JOB = `job-${'ab'.repeat(16)}`;
export const OTHER_JOB = `job-${'cd'.repeat(16)}`;
/** When the worker registered (its evidence's time). */
export const REGISTERED_AT = new Date('2026-03-01T12:00:00.000Z');
/** When the job finished: 30 hours on, after the sim leaf of the registration evidence (24 h) expired. */
export const FINISHED_AT = new Date(REGISTERED_AT.getTime() + 30 * 3_600_000);
/** When a verifier checks the receipt: years later. */
export const VERIFIED_AT = new Date('2031-06-01T00:00:00.000Z');

export interface JobReceiptEnclave {
  platform: string;
  evidence: string;
  certificates: string[];
  encryptionKey: string;
  challenge: string;
}

export type JobReceipt = Omit<Receipt, 'statement' | 'enclave' | 'agreement'> & { statement: SignedStatement; enclave: JobReceiptEnclave; agreement: Agreement };

export interface Fixture {
  readonly logKey: string;
  readonly log: NoteVerifier;
  readonly simRoot: string;
  readonly identity: WorkerIdentity;
  readonly agreement: Agreement;
  /** An agreement of the same collaboration pinning another measurement. */
  readonly unpinned: Agreement;
  readonly enclave: JobReceiptEnclave;
  readonly statement: ResultStatement;
  readonly signed: SignedStatement;
  readonly receipt: JobReceipt;
  /** A statement of the job under an agreement, signed by the worker (or by another key). */
  statementUnder(agreement: Agreement, changes?: Partial<ResultStatement>): ResultStatement;
  sign(statement: ResultStatement, secretKey?: Uint8Array): SignedStatement;
  /** A receipt whose log holds `finished` (default: the job succeeded with `signed`'s hash). */
  receiptOf(parts: {
    signed?: SignedStatement;
    finished?: Partial<Extract<LogEvent, { type: 'job.finished' }>>;
    enclave?: JobReceiptEnclave;
    agreement?: Agreement;
    /** Which entry the receipt is for: job.submitted 0, job.started 1, job.finished 2 (the default). */
    index?: number;
  }): JobReceipt;
}

export async function jobReceiptFixture(): Promise<Fixture> {
  const parties = {
    advertiser: generatePartyKeys('Receipt advertiser').identity,
    publisher: generatePartyKeys('Receipt publisher').identity,
    operator: generatePartyKeys('Receipt operator').identity,
  };
  const validFrom = new Date(REGISTERED_AT.getTime() - 86_400_000);
  const agreement = exampleAgreement(parties, { id: COLLABORATION, validFrom, measurements: [MEASUREMENT] });
  const unpinned = exampleAgreement(parties, { id: COLLABORATION, validFrom, measurements: [OTHER_MEASUREMENT] });

  // Registration, as registerWorker does it: evidence binding the encryption key, a challenge and the signing key.
  const ca = await createSimCa(REGISTERED_AT);
  const attester = simPlatformAttester(await createSimAttester(ca, REGISTERED_AT), new Uint8Array(Buffer.from(MEASUREMENT, 'hex')));
  const identity = createWorkerIdentity();
  const challenge = new Uint8Array(randomBytes(32));
  const binding = evidenceBinding({ enclavePublicKey: identity.encryption.publicKey, challenge, agreementHash: registrationSubject(identity.id) });
  const { evidence, certificates } = await attester.attest({ binding, publicKey: identity.encryption.publicKey, now: REGISTERED_AT });
  const enclave: JobReceiptEnclave = {
    platform: 'sim',
    evidence: toBase64Url(evidence),
    certificates: certificates.map(toBase64Url),
    encryptionKey: toBase64Url(identity.encryption.publicKey),
    challenge: toBase64Url(challenge),
  };

  const statementUnder = (under: Agreement, changes: Partial<ResultStatement> = {}): ResultStatement => ({
    format: 'malus.job-result/v1',
    job: JOB,
    collaboration: COLLABORATION,
    agreement: agreementHash(under),
    kind: 'query',
    output: {
      query: { hash: `sha256:${'11'.repeat(32)}`, rewritten: `sha256:${'22'.repeat(32)}` },
      inputs: [{ dataset: 'impressions-1', table: 'impressions', ciphertext: `sha256:${'33'.repeat(32)}`, rows: 1000, keyCommitment: `sha256:${'44'.repeat(32)}` }],
      result: { sha256: `sha256:${'55'.repeat(32)}`, ciphertext: `sha256:${'66'.repeat(32)}`, rows: 3, columns: ['campaign_id', 'reach'], receivers: [parties.advertiser.id] },
    },
    enclave: { platform: 'sim', measurement: MEASUREMENT, signingKey: identity.id, evidence: [`sha256:${'77'.repeat(32)}`] },
    notice: SIMULATED_NOTICE,
    time: FINISHED_AT.toISOString(),
    ...changes,
  });
  const sign = (statement: ResultStatement, secretKey = identity.signing.secretKey): SignedStatement => signStatement(statement, secretKey);

  const logKeys = generateSigningKeyPair();
  const origin = 'receipts.example/log';
  const log = ed25519NoteVerifier(origin, logKeys.publicKey);
  const common = { format: 'malus.event/v1', collaboration: COLLABORATION, time: REGISTERED_AT.toISOString() } as const;

  const receiptOf: Fixture['receiptOf'] = (parts) => {
    const signed = parts.signed ?? sign(statementUnder(agreement));
    const events: LogEvent[] = [
      { ...common, type: 'job.submitted', actor: { kind: 'party', id: parties.advertiser.id }, job: JOB, kind: 'query', agreement: agreementHash(agreement), datasets: ['impressions-1'] },
      { ...common, type: 'job.started', actor: { kind: 'server', id: 'malus-queue' }, job: JOB, worker: identity.id, platform: 'sim', measurement: MEASUREMENT },
      {
        ...common,
        type: 'job.finished',
        actor: { kind: 'enclave', id: identity.id },
        job: JOB,
        outcome: 'succeeded',
        result: statementHash(signed.statement),
        ...parts.finished,
        time: FINISHED_AT.toISOString(),
      },
    ];
    const entries = events.map(encodeEvent);
    const tree = new MerkleTree();
    tree.appendMany(entries.map(leafHash));
    const note = signCheckpoint({ origin, size: entries.length, root: tree.root(), extensions: [] }, ed25519NoteSigner(origin, logKeys.secretKey));
    const index = parts.index ?? entries.length - 1;
    const receipt = buildReceipt({ entry: entries[index]!, index, checkpointNote: note, inclusionProof: tree.inclusionProof(index, entries.length) });
    return { ...receipt, statement: signed, enclave: parts.enclave ?? enclave, agreement: parts.agreement ?? agreement };
  };

  const statement = statementUnder(agreement);
  const signed = sign(statement);
  return {
    logKey: verifierKeyString(origin, logKeys.publicKey),
    log,
    simRoot: simCaFingerprint(ca),
    identity,
    agreement,
    unpinned,
    enclave,
    statement,
    signed,
    receipt: receiptOf({ signed }),
    statementUnder,
    sign,
    receiptOf,
  };
}

/** A copy with one base64url character of `text` at `at` changed (still canonical base64url). */
export function flipChar(text: string, at = Math.floor(text.length / 2)): string {
  const c = text[at] === 'A' ? 'B' : 'A';
  return `${text.slice(0, at)}${c}${text.slice(at + 1)}`;
}

/** A copy of base64url bytes with one byte at `at` XORed. */
export function flipByte(text: string, at: number): string {
  const bytes = Buffer.from(text, 'base64url');
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}
