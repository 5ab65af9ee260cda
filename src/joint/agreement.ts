import type { Agreement } from '../agreement/index.js';
import { remoteAgreementSource, type MalusClient, type RunView } from '../client/index.js';
import { MalusError } from '../errors/index.js';

// A party takes part in a run only under the agreement it signed: the active version is recomputed
// here from the signed documents (the server's word is not taken), and a run must have started
// under exactly that version.

export interface ActiveTerms {
  readonly agreement: Agreement;
  readonly hash: string;
}

/** The collaboration's active agreement, recomputed from its signatures; a MalusError('conflict') when none is. */
export async function activeTerms(client: MalusClient, collaborationId: string, now = new Date()): Promise<ActiveTerms> {
  const active = await remoteAgreementSource(client).active(collaborationId, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${collaborationId} has no active agreement`);
  return { agreement: active.agreement, hash: active.hash };
}

/** Refuses a run that did not start under the active agreement, or is not open any more. */
export function checkRunTerms(run: RunView, terms: ActiveTerms): void {
  if (run.agreement !== terms.hash) {
    throw new MalusError('conflict', `run ${run.id} started under agreement ${run.agreement}, not the active ${terms.hash}`);
  }
  if (run.state !== 'open') throw new MalusError('conflict', `run ${run.id} is ${run.state}`);
}
