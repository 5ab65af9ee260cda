import type { Agreement } from '../agreement/index.js';
import type { MalusClient } from '../client/index.js';
import type { PartyKeys } from '../identity/index.js';
import type { RunningServer } from '../server/index.js';

/** What the demo's steps share as the story goes on. */
export interface DemoContext {
  readonly dataDir: string;
  readonly server: RunningServer;
  readonly now: () => Date;
  parties?: { advertiser: PartyKeys; publisher: PartyKeys; operator: PartyKeys };
  clients?: { advertiser: MalusClient; publisher: MalusClient; operator: MalusClient };
  agreement?: Agreement;
  hash?: string;
  logVerifierKey?: string;
  /** The providers' data keys by dataset (in a real collaboration, each stays on its owner's machine). */
  dataKeys?: Record<string, Uint8Array>;
  /** The providers' shared join secret and the commitment the agreement records. */
  joinSecret?: Uint8Array;
  joinKeyCommitment?: string;
  /** Prepared dataset folders by dataset id, on their owners' machines. */
  prepared?: Record<string, string>;
  /** The governed query jobs the analyst ran, whose sealed results the receiver opens. */
  queryJobs?: { reach: string; overlap: string; template?: string };
  /** The enclave's differentially private count of buyers among the viewers, with its 95% half-width. */
  enclaveOverlap?: { value: number; ci95: number };
}
