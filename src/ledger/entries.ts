import canonicalize from 'canonicalize';
import { z } from 'zod';
import { NORMALIZER_PATTERN } from '../agreement/index.js';
import { MalusError, isErrorCode, issuesFromZod } from '../errors/index.js';

// Log entries (`malus.event/v1`): one canonical JSON record (RFC 8785) per decision. An entry names
// who acted, when, on which collaboration, and hashes of what was decided; it never holds data,
// keys or query results. The bytes of the canonical form are the Merkle leaf.

export const EVENT_FORMAT = 'malus.event/v1';

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const partyId = z.string().regex(/^[0-9a-f]{20}$/);
const collaborationId = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/);
const time = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/);

const actor = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('party'), id: partyId }),
  z.strictObject({ kind: z.literal('enclave'), id: z.string().min(1).max(200) }),
  z.strictObject({ kind: z.literal('server'), id: z.string().min(1).max(200) }),
]);

const resourceId = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/);
const jobId = z.string().regex(/^job-[0-9a-f]{32}$/);
const reasonCode = z.string().regex(/^[a-z][a-z0-9-]{0,63}$/);
/** An attested enclave as a decision saw it: its platform, measurement, and hashes of its evidence and key. */
const enclaveRef = z.strictObject({
  platform: z.string().min(1).max(32),
  measurement: z.string().regex(/^[0-9a-f]{64,128}$/),
  evidence: hash,
  encryptionKey: hash,
});

/** An exact amount of privacy budget: a rational's canonical text (docs/dp.md), never a float. */
const rationalText = z.string().regex(/^(?:0|[1-9][0-9]{0,29}(?:\/[1-9][0-9]{0,29})?)$/);
const privacyCost = z.strictObject({ epsilon: rationalText.optional(), rho: rationalText.optional(), delta: rationalText.optional() });
/** The budget period a charge counts against: `all`, `YYYY-MM-DD` or `YYYY-MM` (UTC). */
const budgetPeriod = z.string().regex(/^(?:all|\d{4}-\d{2}(?:-\d{2})?)$/);

const base = { format: z.literal(EVENT_FORMAT), collaboration: collaborationId, actor, time };

// Relay runs (PSI, secure aggregation): the entries hold the parameters and sizes of a run, never
// its elements. Every field is a bounded number, a closed enum or a value taken from the agreement,
// so a client cannot put a set element into the log through a summary, whatever it sends.
const runId = z.string().regex(/^run-[0-9a-f]{32}$/);
const computationName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/);
export const RUN_KINDS = ['psi', 'secagg'] as const;
export const PSI_RUN_MODES = ['cardinality', 'intersection', 'sum'] as const;
/** How a PSI run sends the sender's set to the receiver: as it is, Golomb-coded or in a Bloom filter (src/psi's SetEncoding). */
export const PSI_SET_ENCODINGS = ['raw', 'gcs', 'bloom'] as const;
const setSize = z.number().int().min(0).max(10_000_000);
/** A failed run's reason: a Malus error code, never free text. */
const failureCode = z.string().refine(isErrorCode, 'expected a Malus error code (docs/errors.md)');

/** What the party starting a PSI run chooses: the protocol's knobs (src/psi ReceiverOptions). */
export const psiRunOptionsSchema = z.strictObject({
  setEncoding: z.enum(PSI_SET_ENCODINGS).optional(),
  /** A false match has a chance of at most 2^-falsePositiveBits (gcs and bloom). */
  falsePositiveBits: z.number().int().min(0).max(64).optional(),
  /** Sums are below 2^sumBits (sum mode). */
  sumBits: z.number().int().min(1).max(64).optional(),
});

/** A run's parameters as logged: the computation's terms from the agreement, and for PSI the options chosen. */
const psiRunParameters = psiRunOptionsSchema.extend({
  maxSetSize: z.number().int().min(1).max(10_000_000),
  normalize: z.array(z.string().regex(NORMALIZER_PATTERN)).max(8).optional(),
});
const secaggRunParameters = z.strictObject({
  threshold: z.number().int().min(2),
  vectorLength: z.number().int().min(1).max(10_000_000),
  clip: z.number().positive().max(1e9),
  fractionBits: z.number().int().min(0).max(24),
  receivers: z.array(partyId).min(1).max(1000),
});
export const runParametersSchema = z.union([psiRunParameters, secaggRunParameters]);

/** What a party reports as it ends a run: sizes and parameters only. */
export const runSummarySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('psi'),
    /** The sizes of the two input sets, distinct elements (PSI reveals them to both sides). */
    setSizes: z.strictObject({ sender: setSize.optional(), receiver: setSize.optional() }).optional(),
    setEncoding: z.enum(PSI_SET_ENCODINGS).optional(),
    /** The bound on the chance that the result counts an element that is not shared (0 for raw). */
    falsePositiveRate: z.number().min(0).max(1).optional(),
    code: failureCode.optional(),
  }),
  z.strictObject({
    kind: z.literal('secagg'),
    /** Parties whose masked input is in the sum. */
    contributors: z.number().int().min(0).max(1000).optional(),
    /** Parties that shared their keys but dropped out before sending a masked input. */
    dropouts: z.number().int().min(0).max(1000).optional(),
    code: failureCode.optional(),
  }),
]);

export const eventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    ...base,
    type: z.literal('agreement.proposed'),
    agreement: hash,
    version: z.number().int().min(1),
    previous: hash.nullable(),
  }),
  z.strictObject({
    ...base,
    type: z.literal('agreement.signed'),
    agreement: hash,
    version: z.number().int().min(1),
    signer: partyId,
  }),
  z.strictObject({
    ...base,
    type: z.literal('agreement.activated'),
    agreement: hash,
    version: z.number().int().min(1),
    /** When the agreement takes effect: the later of the last signature and validFrom. */
    effectiveFrom: time,
    supersedes: hash.nullable(),
  }),
  z.strictObject({
    ...base,
    type: z.literal('key.registered'),
    /** The dataset whose data key a key-release service now holds (wrapped, never the key). */
    dataset: resourceId,
    table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/),
    owner: partyId,
    /** The key commitment (docs/key-release.md): lets the owner recognise its own key, reveals nothing of it. */
    keyCommitment: hash,
  }),
  z.strictObject({
    ...base,
    type: z.literal('dataset.registered'),
    /** An uploaded dataset the control plane now holds (encrypted; docs/datasets.md): hashes and counts only. */
    dataset: resourceId,
    table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/),
    owner: partyId,
    rows: z.number().int().min(0),
    bytes: z.number().int().min(1),
    /** SHA-256 of the whole encrypted file. */
    ciphertext: hash,
    /** SHA-256 of the file's header bytes (magic, length, header JSON). */
    headerHash: hash,
    schemaHash: hash,
    /** The agreement the dataset was prepared under. */
    agreementHash: hash,
    keyCommitment: hash,
  }),
  z.strictObject({
    ...base,
    type: z.literal('job.submitted'),
    job: jobId,
    kind: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
    agreement: hash,
    datasets: z.array(resourceId).max(256),
  }),
  z.strictObject({
    ...base,
    type: z.literal('key.granted'),
    job: jobId,
    agreement: hash,
    datasets: z.array(resourceId).max(256),
    enclave: enclaveRef,
  }),
  z.strictObject({
    ...base,
    type: z.literal('key.denied'),
    job: jobId.nullable(),
    agreement: hash.nullable(),
    /** SHA-256 of the evidence presented, when there was any. */
    evidence: hash.nullable(),
    reasons: z.array(reasonCode).min(1).max(32),
  }),
  z.strictObject({
    ...base,
    type: z.literal('job.started'),
    job: jobId,
    /** The enclave worker the control plane gave the job to (its signing key) and what its evidence showed. */
    worker: z.string().min(1).max(200),
    platform: z.string().min(1).max(32),
    measurement: z.string().regex(/^[0-9a-f]{64,128}$/),
  }),
  z.strictObject({
    ...base,
    type: z.literal('job.finished'),
    job: jobId,
    outcome: z.enum(['succeeded', 'failed']),
    /** SHA-256 of the enclave-signed result statement, or null when the job failed. */
    result: hash.nullable(),
    /** Why a failed job failed: a stable reason code, never the message (which is not logged). */
    code: reasonCode.optional(),
  }),
  z.strictObject({
    ...base,
    type: z.literal('privacy.charged'),
    /** A query's privacy cost, taken from the budget in the transaction that queued the job. */
    job: jobId,
    analyst: partyId,
    period: budgetPeriod,
    cost: privacyCost,
  }),
  z.strictObject({
    ...base,
    type: z.literal('privacy.refunded'),
    /** The charge of a job that failed before its query ran on data, given back to the period it was taken from. */
    job: jobId,
    analyst: partyId,
    period: budgetPeriod,
    cost: privacyCost,
    /** The failure code that made it refundable. */
    code: reasonCode,
  }),
  z.strictObject({
    ...base,
    type: z.literal('run.started'),
    /** A relayed computation without an enclave (docs/relay.md), under the active agreement named. */
    run: runId,
    kind: z.enum(RUN_KINDS),
    computation: computationName,
    /** The PSI mode; null for secure aggregation. */
    mode: z.enum(PSI_RUN_MODES).nullable(),
    agreement: hash,
    parties: z.array(partyId).min(2).max(1000),
    parameters: runParametersSchema,
  }),
  z.strictObject({
    ...base,
    type: z.literal('run.finished'),
    run: runId,
    kind: z.enum(RUN_KINDS),
    computation: computationName,
    outcome: z.enum(['succeeded', 'failed']),
    summary: runSummarySchema,
    /** What the server relayed in the run, counted by the server itself. */
    relayed: z.strictObject({ messages: z.number().int().min(0), bytes: z.number().int().min(0) }),
  }),
]);

export type LogEvent = z.infer<typeof eventSchema>;
export type EventType = LogEvent['type'];
export const EVENT_TYPES: readonly EventType[] = [
  'agreement.proposed',
  'agreement.signed',
  'agreement.activated',
  'key.registered',
  'dataset.registered',
  'job.submitted',
  'key.granted',
  'key.denied',
  'job.started',
  'job.finished',
  'privacy.charged',
  'privacy.refunded',
  'run.started',
  'run.finished',
];

/** The leaf bytes of an event: its RFC 8785 canonical JSON, validated first. */
export function encodeEvent(event: LogEvent): Uint8Array {
  const parsed = eventSchema.safeParse(event);
  if (!parsed.success) {
    throw new MalusError('invalid-input', 'log event is malformed', { issues: issuesFromZod(parsed.error, event) });
  }
  const text = canonicalize(event);
  if (text === undefined) throw new MalusError('invalid-input', 'log event cannot be canonicalized');
  return new TextEncoder().encode(text);
}

/** Parses leaf bytes back into an event; refuses anything that is not exactly canonical. */
export function decodeEvent(bytes: Uint8Array): { ok: true; event: LogEvent } | { ok: false; reason: string } {
  let value: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'entry is not UTF-8 JSON' };
  }
  const parsed = eventSchema.safeParse(value);
  if (!parsed.success) {
    const first = issuesFromZod(parsed.error, value)[0];
    return { ok: false, reason: `entry is not a ${EVENT_FORMAT} record (${first?.path ?? ''}: ${first?.message ?? 'invalid'})` };
  }
  if (canonicalize(value) !== text) return { ok: false, reason: 'entry is not in RFC 8785 canonical form' };
  return { ok: true, event: parsed.data };
}
