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
}
