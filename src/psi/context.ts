// The run a PSI belongs to, as the hash-to-group domain separation tag (RFC 9380 §3.1). Points
// hashed for one collaboration or run never match another's, so a replayed or misrouted message
// gives no information; the tag's hash rides in every message so a mismatch fails loudly instead.
import { MalusError } from '../errors/index.js';

export interface PsiContext {
  /** The collaboration the PSI runs under. */
  readonly collaborationId: string;
  /** This run; a fresh id per run keeps runs unlinkable. */
  readonly runId: string;
}

export const DST_PREFIX = 'MALUS-PSI-V1-ristretto255-SHA512-';

const encoder = new TextEncoder();

/**
 * `MALUS-PSI-V1-ristretto255-SHA512-` || len(c) ":" c || "-" || len(r) ":" r, with c the
 * collaboration id and r the run id in UTF-8 and each length in decimal bytes. The lengths make
 * the tag unambiguous when an id holds a "-" (a UUID does). At most 255 bytes, as RFC 9380 asks.
 */
export function psiDst(context: PsiContext): Uint8Array {
  const collaboration = encoder.encode(context.collaborationId);
  const run = encoder.encode(context.runId);
  const issues = [
    ...(collaboration.length === 0 ? [{ path: 'context.collaborationId', message: 'must not be empty' }] : []),
    ...(run.length === 0 ? [{ path: 'context.runId', message: 'must not be empty' }] : []),
  ];
  if (issues.length > 0) throw new MalusError('invalid-input', 'a PSI context needs a collaboration id and a run id', { issues });
  const dst = encoder.encode(`${DST_PREFIX}${collaboration.length}:${context.collaborationId}-${run.length}:${context.runId}`);
  if (dst.length > 255) {
    throw new MalusError('invalid-input', `the PSI domain separation tag would be ${dst.length} bytes; RFC 9380 allows 255 (shorten the collaboration or run id)`, {
      issues: [{ path: 'context', message: `the ids take ${collaboration.length + run.length} bytes` }],
    });
  }
  return dst;
}
