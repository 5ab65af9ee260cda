import { beforeAll, describe, expect, it } from 'vitest';
import { agreementHash } from '../../src/agreement/index.js';
import { generateSigningKeyPair, toBase64Url } from '../../src/crypto/index.js';
import { SIMULATED_NOTICE, evidenceTime, statementHash, verifyJobReceipt, type JobReceiptPolicy } from '../../src/engine/index.js';
import { verifyReceipt } from '../../src/ledger/index.js';
import {
  FINISHED_AT,
  JOB,
  OTHER_JOB,
  REGISTERED_AT,
  VERIFIED_AT,
  flipByte,
  flipChar,
  jobReceiptFixture,
  type Fixture,
  type JobReceipt,
} from './job-receipt-fixture.js';

// verifyJobReceipt over a real job receipt: a real log, real sim evidence from a development CA, a
// statement signed by the worker's key. Each negative test tampers with one real thing.

let f: Fixture;
let policy: JobReceiptPolicy;
/** A copy without one member. */
function without<T extends object, K extends keyof T & string>(value: T, key: K): Omit<T, K> {
  return Object.fromEntries(Object.entries(value).filter(([name]) => name !== key)) as Omit<T, K>;
}

const verify = (receipt: unknown, changes: Partial<JobReceiptPolicy> = {}) => verifyJobReceipt(receipt, { ...policy, ...changes });

beforeAll(async () => {
  f = await jobReceiptFixture();
  policy = { log: f.log, trust: { simRoots: [f.simRoot] }, now: VERIFIED_AT };
});

describe('verifyJobReceipt', () => {
  it('verifies a job receipt years later, with the statement made after the registration leaf expired', () => {
    const verdict = verify(f.receipt);
    expect(verdict).toMatchObject({
      ok: true,
      index: 2,
      result: statementHash(f.statement),
      statement: f.statement,
      evidence: { platform: 'sim', measurement: f.statement.enclave.measurement, debug: false, verifiedAt: REGISTERED_AT.toISOString() },
      agreement: { hash: agreementHash(f.agreement), source: 'embedded' },
      simulated: true,
    });
    if (!verdict.ok) return;
    expect(verdict.event).toMatchObject({ type: 'job.finished', job: JOB, outcome: 'succeeded' });
    // The same receipt is a plain receipt too: the log steps alone pass.
    expect(verifyReceipt(f.receipt, { log: f.log })).toMatchObject({ ok: true, index: 2 });
  });

  it('uses the agreement the verifier gives over the embedded one, and says so', () => {
    const bare = without(f.receipt, 'agreement');
    expect(verify(bare, { agreement: f.agreement })).toMatchObject({ ok: true, agreement: { source: 'given' } });
    expect(verify(bare)).toMatchObject({ ok: false, step: 'policy', reason: 'the receipt embeds no agreement and none was given' });
  });

  it('checks certificates when the evidence was made: the sim leaf was valid then, not at the statement time', () => {
    const evidence = Buffer.from(f.enclave.evidence, 'base64url');
    expect(evidenceTime('sim', evidence, FINISHED_AT)).toEqual(REGISTERED_AT);
    expect(evidenceTime('sev-snp', evidence, FINISHED_AT)).toEqual(FINISHED_AT);
    expect(evidenceTime('sim', new Uint8Array([1, 2, 3]), FINISHED_AT)).toEqual(FINISHED_AT);
  });

  describe('statement step', () => {
    it('refuses one changed output value (the entry records another hash)', () => {
      const output = structuredClone(f.statement.output) as { result: { rows: number } };
      output.result.rows = 4;
      const receipt: JobReceipt = { ...f.receipt, statement: { ...f.signed, statement: { ...f.statement, output } } };
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'statement', reason: expect.stringContaining('is not the result the entry records') });
    });

    it('refuses a flipped signature character', () => {
      const receipt: JobReceipt = { ...f.receipt, statement: { ...f.signed, signature: flipChar(f.signed.signature, 10) } };
      expect(verify(receipt)).toEqual({ ok: false, step: 'statement', reason: 'the statement signature does not verify under its signing key' });
    });

    it('refuses the entry of another job, even one recording this statement', () => {
      const receipt = f.receiptOf({ finished: { job: OTHER_JOB } });
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'statement', reason: expect.stringContaining(`the entry about job ${OTHER_JOB}`) });
    });

    it('refuses a failed job.finished (result null)', () => {
      const receipt = f.receiptOf({ finished: { outcome: 'failed', result: null, code: 'query-failed' } });
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'statement', reason: expect.stringContaining('did not succeed') });
    });

    it('refuses an entry that is not job.finished, a missing or malformed statement, and another collaboration', () => {
      expect(verify(f.receiptOf({ index: 1 }))).toMatchObject({ ok: false, step: 'statement', reason: 'the entry is a job.started event, not job.finished' });
      const noStatement = without(f.receipt, 'statement');
      expect(verify(noStatement)).toEqual({ ok: false, step: 'statement', reason: 'the receipt carries no result statement' });
      expect(verify({ ...f.receipt, statement: { ...f.signed, extra: 1 } })).toMatchObject({ ok: false, step: 'statement' });
      expect(verify({ ...f.receipt, statement: { statement: { ...f.statement, time: 'yesterday' }, signature: f.signed.signature } })).toMatchObject({ ok: false, step: 'statement' });
      const elsewhere = f.sign(f.statementUnder(f.agreement, { collaboration: 'another-collab' }));
      expect(verify(f.receiptOf({ signed: elsewhere }))).toMatchObject({ ok: false, step: 'statement', reason: expect.stringContaining('another-collab') });
    });

    it('refuses a statement dated after the verifier\'s clock', () => {
      expect(verify(f.receipt, { now: REGISTERED_AT })).toMatchObject({ ok: false, step: 'statement', reason: expect.stringContaining('in the future') });
    });
  });

  describe('evidence step', () => {
    it('refuses a statement signed by another key than the one the evidence binds', () => {
      const other = generateSigningKeyPair();
      const signed = f.sign(f.statementUnder(f.agreement, { enclave: { ...f.statement.enclave, signingKey: toBase64Url(other.publicKey) } }), other.secretKey);
      expect(verify(f.receiptOf({ signed }))).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('another key signed the statement') });
    });

    it('refuses a flipped evidence byte', () => {
      const evidence = Buffer.from(f.enclave.evidence, 'base64url');
      // A byte of the payload (the signed part), and a byte of the signature at the very end.
      for (const at of [Math.floor(evidence.length / 2), evidence.length - 5]) {
        const receipt = { ...f.receipt, enclave: { ...f.enclave, evidence: flipByte(f.enclave.evidence, at) } };
        expect(verify(receipt), `byte ${at}`).toMatchObject({ ok: false, step: 'evidence' });
      }
    });

    it('refuses a wrong challenge and another encryption key', () => {
      const challenge = { ...f.receipt, enclave: { ...f.enclave, challenge: flipChar(f.enclave.challenge, 5) } };
      expect(verify(challenge)).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('does not bind') });
      const key = { ...f.receipt, enclave: { ...f.enclave, encryptionKey: flipChar(f.enclave.encryptionKey, 5) } };
      expect(verify(key)).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('does not bind') });
    });

    it('refuses sim evidence when no development CA is trusted, or another one is', () => {
      expect(verify(f.receipt, { trust: { simRoots: [] } })).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('no development CA is trusted') });
      expect(verify(f.receipt, { trust: { simRoots: ['00'.repeat(32)] } })).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('untrusted-root') });
    });

    it('refuses a statement claiming another measurement or platform than the evidence shows', () => {
      const measurement = f.sign(f.statementUnder(f.agreement, { enclave: { ...f.statement.enclave, measurement: 'f6'.repeat(48) } }));
      expect(verify(f.receiptOf({ signed: measurement }))).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('the evidence shows measurement') });
      const platform = f.sign(f.statementUnder(f.agreement, { enclave: { ...f.statement.enclave, platform: 'nitro' } }));
      expect(verify(f.receiptOf({ signed: platform }))).toMatchObject({ ok: false, step: 'evidence', reason: 'the evidence is sim, the statement says nitro' });
    });

    it('refuses evidence made after the statement: it cannot be what the worker registered with', () => {
      const early = f.sign(f.statementUnder(f.agreement, { time: new Date(REGISTERED_AT.getTime() - 3_600_000).toISOString() }));
      expect(verify(f.receiptOf({ signed: early }))).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('after the statement') });
    });

    it('refuses evidence presented as another platform, and a missing enclave', () => {
      expect(verify({ ...f.receipt, enclave: { ...f.enclave, platform: 'nitro' } })).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('untrusted-root') });
      expect(verify({ ...f.receipt, enclave: { ...f.enclave, platform: 'sgx' } })).toMatchObject({ ok: false, step: 'evidence', reason: expect.stringContaining('not an evidence platform') });
      const bare = without(f.receipt, 'enclave');
      expect(verify(bare)).toMatchObject({ ok: false, step: 'evidence' });
    });
  });

  describe('policy step', () => {
    it('refuses evidence whose measurement the agreement does not pin', () => {
      const signed = f.sign(f.statementUnder(f.unpinned));
      const receipt = f.receiptOf({ signed, agreement: f.unpinned });
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'policy', reason: expect.stringContaining('does not pin measurement') });
    });

    it('refuses an agreement of another hash, given or embedded', () => {
      expect(verify(f.receipt, { agreement: f.unpinned })).toMatchObject({ ok: false, step: 'policy', reason: expect.stringContaining('the given agreement has hash') });
      const embedded = { ...f.receipt, agreement: { ...f.agreement, title: 'Another title' } };
      expect(verify(embedded)).toMatchObject({ ok: false, step: 'policy', reason: expect.stringContaining('the embedded agreement has hash') });
      expect(verify({ ...f.receipt, agreement: { ...f.agreement, format: 'x' } })).toMatchObject({ ok: false, step: 'policy', reason: expect.stringContaining('not valid') });
    });

    it('refuses a platform the agreement does not allow', () => {
      const nitroOnly = { ...f.agreement, enclave: { ...f.agreement.enclave, platforms: ['nitro' as const] } };
      const receipt = f.receiptOf({ signed: f.sign(f.statementUnder(nitroOnly)), agreement: nitroOnly });
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'policy', reason: 'the agreement does not allow the sim platform' });
    });

    it('refuses a sim statement without the simulated notice', () => {
      const receipt = f.receiptOf({ signed: f.sign(without(f.statementUnder(f.agreement), 'notice')) });
      expect(verify(receipt)).toMatchObject({ ok: false, step: 'policy', reason: expect.stringContaining(SIMULATED_NOTICE) });
    });
  });

  it('keeps the log steps of a plain receipt', () => {
    expect(verify({ ...f.receipt, index: 1 })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(verify(f.receipt, { log: { ...f.log, verify: () => false } })).toMatchObject({ ok: false, step: 'checkpoint' });
    expect(verify({ ...f.receipt, enclave: { ...f.enclave, evidence: 'not base64url!' } })).toMatchObject({ ok: false, step: 'shape' });
  });

  it('never throws on hostile input', () => {
    const hostile: unknown[] = [
      null,
      42,
      'receipt',
      [],
      { ...f.receipt, statement: null },
      { ...f.receipt, statement: { statement: { ...f.statement, output: [] }, signature: f.signed.signature } },
      { ...f.receipt, enclave: { ...f.enclave, evidence: 'AAAA' } },
      { ...f.receipt, enclave: { ...f.enclave, evidence: toBase64Url(new Uint8Array(70_000).fill(0x84)) } },
      { ...f.receipt, enclave: { ...f.enclave, platform: 'sev-snp', certificates: ['AAAA', toBase64Url(new Uint8Array(16_000).fill(0x30))] } },
      { ...f.receipt, enclave: { ...f.enclave, platform: 'sev-snp' } },
      { ...f.receipt, enclave: { ...f.enclave, platform: 'tdx' } },
      { ...f.receipt, enclave: { ...f.enclave, platform: 'nvidia' } },
      { ...f.receipt, agreement: { __proto__: { format: 'malus.agreement/v1' } } },
      JSON.parse(JSON.stringify({ ...f.receipt, agreement: { constructor: 1, toString: 2 } })),
    ];
    for (const input of hostile) expect(() => verify(input)).not.toThrow();
    for (const [i, input] of hostile.entries()) expect(verify(input).ok, `input ${i}`).toBe(false);
  });
});
