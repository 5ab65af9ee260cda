import type { Attester } from '../attestation/index.js';
import type { EvidenceTrust, KeyReleaseContext } from '../keyrelease/index.js';
import type { Store } from '../store/index.js';
import type { TransparencyLog } from './transparency.js';

/** What the server's plugins share. `now` is injectable so tests can move the clock. */
export interface ServerContext {
  readonly store: Store;
  readonly now: () => Date;
  readonly log: TransparencyLog;
  /**
   * The scheme and authority clients use to reach this server (`https://malus.example.com`).
   * Signatures cover the full target URI, so behind a proxy this must be the public one. When
   * unset, it is `http://` plus the request's Host header.
   */
  readonly publicBaseUrl?: string;
  /**
   * The data directory (docs/data-directory.md): uploaded datasets live under it. Without it the
   * dataset routes are absent.
   */
  readonly dataDir?: string;
  /** How much disk uploads may claim (default DEFAULT_UPLOAD_LIMITS). */
  readonly uploadLimits?: UploadLimits;
  /** The embedded key-release service, worker registry and job queue; absent, their routes are too. */
  readonly confidential?: ConfidentialServices;
}

export interface ConfidentialServices {
  readonly keyRelease: KeyReleaseContext;
  /** Produces the key-release service's own evidence (the sim platform under `malus serve`). */
  readonly attester: Attester;
  /** The development CA certificate (DER) when the service runs on sim. */
  readonly simRoot?: Uint8Array;
  /** What worker evidence is verified against (the pinned vendor roots and the development CA). */
  readonly trust: EvidenceTrust;
  /** How long a running job's worker may go unseen before the job fails (default JOB_LEASE_MS). */
  readonly jobLeaseMs?: number;
  /** When the server started: no job expires within a lease of it. */
  readonly startedAt: Date;
}

/**
 * What an upload may claim of the server's disk. A manifest states its ciphertext's size and the
 * upload is started for it, so without a limit one provider could claim the whole disk and fill
 * it piece by piece (docs/datasets.md, "Limits").
 */
export interface UploadLimits {
  /** The largest ciphertext one dataset may have, in bytes. */
  readonly maxDatasetBytes: number;
  /** Uploads in progress one party may have in one collaboration. */
  readonly maxPendingPerParty: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxDatasetBytes: 2 ** 40, maxPendingPerParty: 8 };
