import { z } from 'zod';
import { PSI_RUN_MODES, RUN_KINDS, psiRunOptionsSchema, runParametersSchema, runSummarySchema } from '../ledger/index.js';
import { collaborationIdParams } from './schemas.js';

// Wire schemas of the relay (docs/relay.md): runs of computations that need no enclave (PSI, secure
// aggregation), whose parties exchange opaque messages through the server. The summary a run ends
// with is the log's own schema, so what the API accepts is exactly what the log can hold.

const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const partyId = z.string().regex(/^[0-9a-f]{20}$/, 'expected a party id (20 lower-case hex characters)');
const computationName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'expected a computation name of the agreement');

/** The largest body of the message route: a message's bytes are sent as base64url inside it. */
export const RUN_MESSAGE_BODY_LIMIT = 64 * 1024 * 1024;
/** The base64url text of one message: the body limit less room for the other members. */
const MAX_RUN_MESSAGE_CHARS = RUN_MESSAGE_BODY_LIMIT - 4096;
/** The most bytes one message holds (48 MiB less 3 KiB): a protocol splits anything larger over several steps. */
export const MAX_RUN_MESSAGE_BYTES = (MAX_RUN_MESSAGE_CHARS / 4) * 3;
/** The highest step a message may have. */
export const MAX_RUN_STEP = 1_000_000;

const runIdSchema = z.string().regex(/^run-[0-9a-f]{32}$/, 'expected a run id (run-<32 hex>)');
export const runParams = collaborationIdParams.extend({ run: runIdSchema });

export const startRunBody = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('psi'),
    computation: computationName,
    mode: z.enum(PSI_RUN_MODES),
    parameters: psiRunOptionsSchema.optional(),
  }),
  z.strictObject({ kind: z.literal('secagg'), computation: computationName }),
]);

export const runView = z.strictObject({
  id: runIdSchema,
  collaboration: z.string(),
  kind: z.enum(RUN_KINDS),
  computation: z.string(),
  /** The PSI mode; null for secure aggregation. */
  mode: z.enum(PSI_RUN_MODES).nullable(),
  /** The active agreement the run started under. */
  agreement: hash,
  /** Everyone who may send and receive: PSI [sender, receiver]; secure aggregation its parties, then receivers that are not parties. */
  parties: z.array(partyId),
  parameters: runParametersSchema,
  state: z.enum(['open', 'finished', 'failed']),
  startedBy: partyId,
  finishedBy: partyId.nullable(),
  summary: runSummarySchema.nullable(),
  /** What the server holds for the run. */
  relayed: z.strictObject({ messages: z.number().int(), bytes: z.number().int() }),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});

export const runList = z.strictObject({ runs: z.array(runView) });

export const runMessageBody = z.strictObject({
  /** A party of the run other than the sender, or '*' for all of them. */
  to: z.union([partyId, z.literal('*')]),
  step: z.number().int().min(0).max(MAX_RUN_STEP),
  /** The message's bytes, base64url without padding. */
  data: z.string().max(MAX_RUN_MESSAGE_CHARS).regex(/^[A-Za-z0-9_-]*$/, 'expected base64url without padding'),
});

/** A message as stored, without its bytes. */
export const runMessageReceipt = z.strictObject({
  seq: z.number().int(),
  sender: partyId,
  to: z.union([partyId, z.literal('*')]),
  step: z.number().int(),
  bytes: z.number().int(),
  sha256: hash,
  createdAt: z.string(),
  /** False when the same message was relayed before (nothing was written). */
  added: z.boolean(),
});

export const runMessagesQuery = z.strictObject({
  /** Messages of steps after this one (-1, the default: every step). */
  after: z.coerce.number().int().min(-1).max(MAX_RUN_STEP).optional(),
  /** With `after`: also the messages of step `after` whose seq is above this (to go on after a partial answer). */
  afterSeq: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

export const runMessagesView = z.strictObject({
  messages: z.array(
    z.strictObject({
      seq: z.number().int(),
      sender: partyId,
      to: z.union([partyId, z.literal('*')]),
      step: z.number().int(),
      data: z.string().regex(/^[A-Za-z0-9_-]*$/),
      sha256: hash,
      createdAt: z.string(),
    }),
  ),
  /** More messages follow the last one: ask again with its step as `after` and its seq as `afterSeq`. */
  more: z.boolean(),
});

export const finishRunBody = z.strictObject({
  outcome: z.enum(['succeeded', 'failed']),
  summary: runSummarySchema,
});

export type StartRunBody = z.infer<typeof startRunBody>;
export type RunView = z.infer<typeof runView>;
export type RunMessageBody = z.infer<typeof runMessageBody>;
export type RunMessageReceipt = z.infer<typeof runMessageReceipt>;
export type RunMessagesView = z.infer<typeof runMessagesView>;
export type FinishRunBody = z.infer<typeof finishRunBody>;
export type RunSummary = FinishRunBody['summary'];
