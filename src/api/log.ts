import { z } from 'zod';
import { receiptSchema } from '../ledger/index.js';

// Wire schemas of the transparency-log routes.

const b64hash = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 SHA-256 hash');
const count = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const inclusionQuery = z.strictObject({ index: count, size: count });
export const consistencyQuery = z.strictObject({ from: count, to: count });
export const entriesQuery = z.strictObject({
  collaboration: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'expected a collaboration id'),
});
export const receiptQuery = z.strictObject({ index: count });

export const inclusionProofView = z.strictObject({
  index: z.number().int(),
  size: z.number().int(),
  leafHash: b64hash,
  proof: z.array(b64hash),
});

export const consistencyProofView = z.strictObject({
  from: z.number().int(),
  to: z.number().int(),
  proof: z.array(b64hash),
});

export const logKeyView = z.strictObject({
  origin: z.string(),
  /** The signed-note verifier key: `<origin>+<key id hex>+<base64(0x01 || key)>`. */
  verifierKey: z.string(),
});

export const checkpointListView = z.strictObject({
  checkpoints: z.array(z.strictObject({ size: z.number().int(), createdAt: z.string(), note: z.string() })),
});

export const logEntryView = z.strictObject({
  index: z.number().int(),
  leafHash: b64hash,
  /** The entry's canonical JSON text: hash these exact bytes to get the leaf hash. */
  entry: z.string(),
});

export const logEntriesView = z.strictObject({ entries: z.array(logEntryView) });

export const cosignatureBody = z.strictObject({
  size: z.number().int().min(0),
  /** One tlog-cosignature/v1 note signature line: `— <name> <base64>`. */
  cosignature: z.string().min(1).max(1000),
});

export const cosignatureAccepted = z.strictObject({ size: z.number().int(), witness: z.string(), added: z.boolean() });

export { receiptSchema as receiptView };

export type InclusionProofView = z.infer<typeof inclusionProofView>;
export type ConsistencyProofView = z.infer<typeof consistencyProofView>;
export type LogEntryView = z.infer<typeof logEntryView>;
export type LogKeyView = z.infer<typeof logKeyView>;
export type CheckpointListView = z.infer<typeof checkpointListView>;
