import { Decoder } from 'cbor-x';
import { z } from 'zod';
import { agreementHash, checkAgreement, type Agreement } from '../agreement/index.js';
import { EVIDENCE_FORMATS, appraise, decodeEvidence, evidenceBinding, type EvidenceFormat } from '../attestation/index.js';
import { fromBase64Url } from '../crypto/index.js';
import { issuesFromZod } from '../errors/index.js';
import { verifyPresented, type EvidenceTrust } from '../keyrelease/index.js';
import { verifyReceipt, type Checkpoint, type LogEvent, type ReceiptPolicy, type ReceiptStep } from '../ledger/index.js';
import { RESULT_FORMAT, SIMULATED_NOTICE, statementHash, verifyStatementSignature, type ResultStatement, type SignedStatement } from './statement.js';
import { registrationSubject } from './worker.js';

// A job receipt (docs/log.md, "Job receipts") proves a job's result offline, to someone who trusts
// neither the operator nor the server: the log holds the job.finished entry (the receipt's log
// steps), that entry records the hash of a statement the enclave signed ('statement'), the signing
// key is the one the worker's attestation evidence bound at registration ('evidence'), and that
// enclave is one the agreement the job ran under allows ('policy'). Freshness is not re-checked:
// the key release checked it when it released the keys, and its key.granted entry records that.

export type JobReceiptStep = ReceiptStep | 'statement' | 'evidence' | 'policy';

export interface JobReceiptPolicy extends ReceiptPolicy {
  /** Trust for the evidence: pinned vendor roots, and the development CAs whose sim evidence counts. */
  readonly trust: EvidenceTrust;
  /** The agreement the verifier holds; without it, the one the receipt embeds (and the verdict says so). */
  readonly agreement?: Agreement;
  /** The verifier's clock: a statement dated after it does not verify. */
  readonly now: Date;
}

export type JobFinished = Extract<LogEvent, { type: 'job.finished' }>;

export type JobReceiptVerdict =
  | {
      readonly ok: true;
      readonly event: JobFinished;
      readonly index: number;
      readonly checkpoint: Checkpoint;
      readonly cosignedBy: string[];
      readonly statement: ResultStatement;
      readonly signature: string;
      /** statementHash(statement): the value the entry records. */
      readonly result: string;
      readonly evidence: {
        readonly platform: EvidenceFormat;
        readonly measurement: string;
        readonly debug: boolean | null;
        /** The time the certificates were checked at (see `evidenceTime`). */
        readonly verifiedAt: string;
      };
      readonly agreement: { readonly hash: string; readonly source: 'given' | 'embedded' };
      /** True on the sim platform: the result is genuine, but nothing about it was confidential. */
      readonly simulated: boolean;
    }
  | { readonly ok: false; readonly step: JobReceiptStep; readonly reason: string };

/** How far the evidence's clock may run ahead of the statement's (different clocks in a real TEE). */
const CLOCK_SKEW_MS = 5 * 60_000;

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const time = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/);
const key32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes as base64url');

/** The shape of a signed statement (src/engine/statement.ts), as any reader of a receipt checks it. */
export const signedStatementShape = z.strictObject({
  statement: z.strictObject({
    format: z.literal(RESULT_FORMAT),
    job: z.string().regex(/^job-[0-9a-f]{32}$/),
    collaboration: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/),
    agreement: hash,
    kind: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
    output: z.record(z.string(), z.unknown()),
    enclave: z.strictObject({
      platform: z.string().min(1).max(32),
      measurement: z.string().regex(/^[0-9a-f]{64,128}$/),
      signingKey: key32,
      evidence: z.array(hash).max(64),
    }),
    notice: z.literal(SIMULATED_NOTICE).optional(),
    time,
  }),
  /** Ed25519: 64 bytes, 86 base64url characters. */
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
});

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });

/**
 * The time a Nitro-shaped document (nitro, sim) says it was made, read before it is verified: the
 * verification then checks the certificates at that time and the signature over that very claim.
 * Undefined for the other platforms, whose evidence states no time.
 */
function claimedTime(platform: EvidenceFormat, evidence: Uint8Array): Date | undefined {
  if (platform !== 'nitro' && platform !== 'sim') return undefined;
  try {
    let outer: unknown = cbor.decode(decodeEvidence(evidence));
    if (outer !== null && typeof outer === 'object' && 'tag' in outer && outer.tag === 18 && 'value' in outer) outer = outer.value;
    if (!Array.isArray(outer) || outer.length !== 4 || !(outer[2] instanceof Uint8Array)) return undefined;
    const payload: unknown = cbor.decode(outer[2]);
    const timestamp = payload instanceof Map ? (payload.get('timestamp') as unknown) : undefined;
    const ms = typeof timestamp === 'bigint' || typeof timestamp === 'number' ? Number(timestamp) : Number.NaN;
    return Number.isSafeInteger(ms) && ms >= 0 ? new Date(ms) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to check the evidence's certificates. Not the verifier's clock: attestation leaves live for
 * hours (Nitro) or a day (sim), and a receipt must still verify years later. Not the statement's
 * time either: a worker registers once and runs jobs for days, past its registration leaf's expiry.
 * The honest time is when the evidence was made: the time it states (signed with it), else, for
 * platforms whose evidence states none (SEV-SNP, TDX, with certificates valid for years), the
 * statement's time, when the key the evidence bound was certainly in use.
 */
export function evidenceTime(platform: EvidenceFormat, evidence: Uint8Array, statementTime: Date): Date {
  return claimedTime(platform, evidence) ?? statementTime;
}

const isEvidenceFormat = (text: string): text is EvidenceFormat => (EVIDENCE_FORMATS as readonly string[]).includes(text);

function firstIssue(error: z.ZodError, value: unknown): string {
  const issue = issuesFromZod(error, value)[0];
  return `${issue?.path ?? ''}: ${issue?.message ?? 'invalid'}`;
}

/** Verifies a job receipt: the log, the signed statement, the enclave's evidence, the agreement. Never throws on hostile input. */
export function verifyJobReceipt(input: unknown, policy: JobReceiptPolicy): JobReceiptVerdict {
  let step: JobReceiptStep = 'shape';
  const fail = (at: JobReceiptStep, reason: string): JobReceiptVerdict => ({ ok: false, step: at, reason });
  try {
    const logged = verifyReceipt(input, policy);
    if (!logged.ok) return logged;
    const receipt = input as { statement?: unknown; enclave?: Record<string, unknown>; agreement?: unknown };

    // Statement: the logged entry records exactly this statement, and its key signed it.
    step = 'statement';
    const { event } = logged;
    if (receipt.statement === undefined) return fail(step, 'the receipt carries no result statement');
    const shape = signedStatementShape.safeParse(receipt.statement);
    if (!shape.success) return fail(step, `the statement is not a signed ${RESULT_FORMAT} statement (${firstIssue(shape.error, receipt.statement)})`);
    // Hash and signature are over the statement as received, not zod's copy of it.
    const signed = receipt.statement as SignedStatement;
    const { statement } = signed;
    if (event.type !== 'job.finished') return fail(step, `the entry is a ${event.type} event, not job.finished`);
    if (event.outcome !== 'succeeded' || event.result === null) return fail(step, `job ${event.job} did not succeed: its job.finished entry records no result`);
    if (statement.job !== event.job) return fail(step, `the statement is about job ${statement.job}, the entry about job ${event.job}`);
    if (statement.collaboration !== event.collaboration) return fail(step, `the statement is of collaboration ${statement.collaboration}, the entry of ${event.collaboration}`);
    const result = statementHash(statement);
    if (result !== event.result) return fail(step, `the statement's hash ${result} is not the result the entry records (${event.result})`);
    if (!verifyStatementSignature(signed)) return fail(step, 'the statement signature does not verify under its signing key');
    const statementTime = new Date(statement.time);
    if (Number.isNaN(statementTime.getTime())) return fail(step, 'the statement time is not a date');
    if (statementTime.getTime() > policy.now.getTime() + CLOCK_SKEW_MS) return fail(step, `the statement is dated ${statement.time}, in the future`);

    // Evidence: the worker's registration evidence verifies and bound the key that signed the statement.
    step = 'evidence';
    const enclave = receipt.enclave;
    if (enclave === undefined) return fail(step, "the receipt carries no enclave evidence");
    const platform = enclave.platform as string;
    if (!isEvidenceFormat(platform)) return fail(step, `${platform} is not an evidence platform (${EVIDENCE_FORMATS.join(', ')})`);
    const evidence = fromBase64Url(enclave.evidence as string);
    const encryptionKey = fromBase64Url(enclave.encryptionKey as string);
    const challenge = fromBase64Url(enclave.challenge as string);
    const certificates = (enclave.certificates as string[]).map((c) => fromBase64Url(c));
    if (evidence === undefined) return fail(step, 'enclave.evidence is not canonical base64url');
    if (encryptionKey === undefined) return fail(step, 'enclave.encryptionKey is not canonical base64url');
    if (challenge === undefined) return fail(step, 'enclave.challenge is not canonical base64url');
    if (certificates.some((c) => c === undefined)) return fail(step, 'an enclave certificate is not canonical base64url');
    const at = evidenceTime(platform, evidence, statementTime);
    if (at.getTime() > statementTime.getTime() + CLOCK_SKEW_MS) {
      return fail(step, `the evidence is dated ${at.toISOString()}, after the statement (${statement.time}): it is not the evidence the worker registered with`);
    }
    const verdict = verifyPresented({ platform, evidence, certificates: certificates as Uint8Array[] }, policy.trust, at);
    if ('error' in verdict) return fail(step, verdict.error);
    if (!verdict.ok) return fail(step, `the ${platform} evidence does not verify: ${verdict.reasons.map((r) => `${r.code}: ${r.message}`).join('; ')}`);
    if (verdict.measurement === null) return fail(step, 'the evidence shows no measurement');
    const stated = verdict.claims?.timestamp;
    if (typeof stated === 'number' && stated !== at.getTime()) return fail(step, 'the evidence states another time than the one it was checked at');
    // appraise() knows where each platform carries the binding; the rest of its policy is moot here
    // (the agreement is checked below, and freshness was the key release's to check).
    const bound = appraise(
      verdict,
      { platforms: [verdict.platform], measurements: [verdict.measurement], maxEvidenceAgeSeconds: 1, allowDebug: true },
      {
        now: at,
        challengeIssuedAt: at,
        expectedBinding: evidenceBinding({ enclavePublicKey: encryptionKey, challenge, agreementHash: registrationSubject(statement.enclave.signingKey) }),
      },
    );
    if (!bound.ok) {
      const mismatch = bound.reasons.some((r) => r.code === 'binding-mismatch');
      return fail(
        step,
        mismatch
          ? "the evidence does not bind the statement's signing key with this encryption key and challenge: another key signed the statement"
          : bound.reasons.map((r) => `${r.code}: ${r.message}`).join('; '),
      );
    }
    if (verdict.platform !== statement.enclave.platform) return fail(step, `the evidence is ${verdict.platform}, the statement says ${statement.enclave.platform}`);
    if (verdict.measurement !== statement.enclave.measurement) {
      return fail(step, `the evidence shows measurement ${verdict.measurement}, the statement ${statement.enclave.measurement}`);
    }

    // Policy: the agreement the statement names allows this enclave.
    step = 'policy';
    let agreement: Agreement;
    let source: 'given' | 'embedded';
    if (policy.agreement !== undefined) {
      agreement = policy.agreement;
      source = 'given';
    } else {
      if (receipt.agreement === undefined) return fail(step, 'the receipt embeds no agreement and none was given');
      const checked = checkAgreement(receipt.agreement);
      if (!checked.ok) return fail(step, `the embedded agreement is not valid (${checked.issues[0]?.path ?? ''}: ${checked.issues[0]?.message ?? 'invalid'})`);
      agreement = checked.agreement;
      source = 'embedded';
    }
    const agreementId = agreementHash(agreement);
    if (agreementId !== statement.agreement) return fail(step, `the ${source} agreement has hash ${agreementId}; the job ran under ${statement.agreement}`);
    if (agreement.id !== statement.collaboration) return fail(step, `the agreement is of collaboration ${agreement.id}, the job of ${statement.collaboration}`);
    const allowed = agreement.enclave;
    if (!(allowed.platforms as readonly string[]).includes(verdict.platform)) return fail(step, `the agreement does not allow the ${verdict.platform} platform`);
    if (!allowed.measurements.includes(verdict.measurement)) return fail(step, `the agreement does not pin measurement ${verdict.measurement}`);
    if (verdict.debug !== false && !allowed.allowDebug) return fail(step, 'the enclave ran in debug mode, which the agreement does not allow');
    const simulated = verdict.platform === 'sim';
    if (simulated && statement.notice !== SIMULATED_NOTICE) return fail(step, `a sim statement must carry the notice "${SIMULATED_NOTICE}"`);

    return {
      ok: true,
      event,
      index: logged.index,
      checkpoint: logged.checkpoint,
      cosignedBy: logged.cosignedBy,
      statement,
      signature: signed.signature,
      result,
      evidence: { platform: verdict.platform, measurement: verdict.measurement, debug: verdict.debug, verifiedAt: at.toISOString() },
      agreement: { hash: agreementId, source },
      simulated,
    };
  } catch {
    // Every check above refuses hostile input by returning; a throw is a bug, never a pass.
    return fail(step, 'the receipt could not be checked');
  }
}
