import { z } from 'zod';
import { agreementSchema, agreementSignatureSchema } from '../agreement/index.js';

// Request and response schemas: the single source for validation, serialization and /openapi.json.
// Response objects are strict so that a field added by mistake fails loudly instead of leaking.

const partyId = z.string().regex(/^[0-9a-f]{20}$/);
const hash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const state = z.enum(['draft', 'proposed', 'active', 'expired', 'superseded']);

export const collaborationIdParams = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'expected a collaboration id'),
});

export const agreementQuery = z.strictObject({
  version: z.coerce.number().int().min(1).optional(),
});

export const proposeBody = z.strictObject({
  agreement: agreementSchema.describe('The agreement (malus.agreement/v1, docs/agreement.md)'),
  signature: agreementSignatureSchema.describe("The proposer's detached signature over the agreement hash"),
});

export const signatureBody = agreementSignatureSchema;

export const versionView = z.strictObject({
  version: z.number().int(),
  hash,
  previous: hash.nullable(),
  state,
  signed: z.array(partyId),
  missing: z.array(partyId),
  supersededBy: hash.nullable(),
  validFrom: z.string(),
  validUntil: z.string(),
  proposedBy: partyId,
  createdAt: z.string(),
});

export const collaborationView = z.strictObject({
  id: z.string(),
  title: z.string(),
  state,
  activeHash: hash.nullable(),
  latestHash: hash,
  versions: z.array(versionView),
});

export const collaborationList = z.strictObject({ collaborations: z.array(collaborationView) });

export const agreementView = z.strictObject({
  hash,
  agreement: agreementSchema,
  signatures: z.array(agreementSignatureSchema),
});

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    instance: z.string().optional(),
    issues: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
    reasons: z.array(z.strictObject({ code: z.string(), message: z.string() })).optional(),
    violations: z.array(z.strictObject({ code: z.string(), message: z.string(), position: z.number().int().nullable() })).optional(),
  })
  .describe('RFC 9457 problem details (application/problem+json)');

export const healthView = z.strictObject({ status: z.literal('ok'), version: z.string() });

/** Error answers every authenticated route can give. */
export const authenticatedErrors = { 400: problemSchema, 401: problemSchema, 404: problemSchema, 413: problemSchema } as const;

export type CollaborationView = z.infer<typeof collaborationView>;
export type VersionView = z.infer<typeof versionView>;
export type AgreementView = z.infer<typeof agreementView>;
export type ProposeBody = z.infer<typeof proposeBody>;
export type Problem = z.infer<typeof problemSchema>;
export type Health = z.infer<typeof healthView>;
