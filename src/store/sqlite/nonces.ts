import type Database from 'better-sqlite3';
import { MalusError } from '../../errors/index.js';
import type { NonceRepository } from '../types.js';
import { attempt } from './errors.js';

/** Bounds the work one remember() spends on housekeeping, so a backlog cannot stall a request. */
const PRUNE_BATCH = 100;

export function sqliteNonces(db: Database.Database): NonceRepository {
  const prune = db.prepare<[number, number]>(
    `DELETE FROM nonces WHERE (key_id, nonce) IN
       (SELECT key_id, nonce FROM nonces WHERE expires_at <= ? LIMIT ?)`,
  );
  // One statement decides: a new pair is inserted, an expired pair is taken over, a live pair is
  // left alone and changes is 0. No read-then-write window, so replays cannot slip between.
  const claim = db.prepare<[string, string, number, number]>(
    `INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
     ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
     WHERE nonces.expires_at <= ?`,
  );
  const rememberOnce = db.transaction((keyId: string, nonce: string, expiresAt: number, now: number): boolean => {
    prune.run(now, PRUNE_BATCH);
    return claim.run(keyId, nonce, expiresAt, now).changes === 1;
  });

  return {
    remember(keyId, nonce, expiresAt, now) {
      return attempt(db, 'record the nonce', () => {
        const expiresMs = expiresAt.getTime();
        const nowMs = now.getTime();
        if (Number.isNaN(expiresMs) || Number.isNaN(nowMs)) {
          throw new MalusError('invalid-input', 'Nonce expiry and current time must be valid dates');
        }
        if (expiresMs <= nowMs) {
          throw new MalusError('invalid-input', 'A nonce must expire after the current time');
        }
        return rememberOnce.immediate(keyId, nonce, expiresMs, nowMs);
      });
    },
  };
}
