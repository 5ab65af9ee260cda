// Real encrypted datasets for the sandbox and query-job tests: Parquet written by DuckDB from a
// SELECT, sealed in the dataset format with a signed manifest (test/ingest/make-dataset.ts).

import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Agreement } from '../../src/agreement/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { DEFAULT_MEMORY_DIR, literal, openIngestDb } from '../../src/ingest/index.js';
import { writePreparedDataset, type PreparedDataset } from '../ingest/make-dataset.js';

/** The Parquet bytes of a SELECT, as `dataset prepare` would have written them. */
export async function parquetOf(sql: string): Promise<Uint8Array> {
  const db = await openIngestDb({ threads: 1 });
  const file = join(DEFAULT_MEMORY_DIR, `malus-test-${randomBytes(6).toString('hex')}.parquet`);
  try {
    await db.connection.run(`COPY (${sql}) TO ${literal(file)} (FORMAT parquet)`);
    return new Uint8Array(readFileSync(file));
  } finally {
    rmSync(file, { force: true });
    db.close();
  }
}

/** An encrypted dataset of an agreement table whose rows are the SELECT's. */
export async function datasetOf(
  dir: string,
  options: { agreement: Agreement; table: string; keys: PartyKeys; sql: string; rows: number; dataset?: string },
): Promise<PreparedDataset> {
  const payload = await parquetOf(options.sql);
  return writePreparedDataset(join(dir, options.dataset ?? `${options.table}-${randomBytes(4).toString('hex')}`), {
    agreement: options.agreement,
    table: options.table,
    keys: options.keys,
    payload,
    rows: options.rows,
    ...(options.dataset === undefined ? {} : { dataset: options.dataset }),
  });
}

/** The ciphertext as a download: 64 KiB pieces. */
export async function* piecesOf(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += 65_536) {
    await Promise.resolve();
    yield bytes.subarray(offset, offset + 65_536);
  }
}

/**
 * Impressions: `viewers0` distinct people saw cmp-0 (one row each, `rows0` rows in all), and 10
 * distinct people saw cmp-1 (40 rows). Pseudonyms are 64 hex characters, as prepare makes them.
 */
export function impressionsSql(options: { viewers0?: number; placement?: string } = {}): { sql: string; rows: number } {
  const viewers0 = options.viewers0 ?? 60;
  const placement = literal(options.placement ?? 'homepage');
  return {
    sql: `SELECT * FROM (
      SELECT sha256('a' || i) AS email_hash, 'cmp-0' AS campaign_id, TIMESTAMP '2026-11-01 10:00:00' + to_days(CAST(i % 9 AS INTEGER)) AS shown_at,
             ${placement} AS placement, 'mobile' AS device_type FROM range(${viewers0}) t(i)
      UNION ALL
      SELECT sha256('b' || (i % 10)), 'cmp-1', TIMESTAMP '2026-11-05 12:30:00', ${placement}, 'desktop' FROM range(40) t(i)
    ) ORDER BY campaign_id, email_hash`,
    rows: viewers0 + 40,
  };
}

/** Conversions: the first `buyers` people of cmp-0 bought, once each, for 12.50. */
export function conversionsSql(buyers = 55): { sql: string; rows: number } {
  return {
    sql: `SELECT sha256('a' || i) AS email_hash, 'cmp-0' AS campaign_id, DATE '2026-11-10' AS order_date, CAST(12.50 AS DECIMAL(12,2)) AS order_value FROM range(${buyers}) t(i)`,
    rows: buyers,
  };
}
