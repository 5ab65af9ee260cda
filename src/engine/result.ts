import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  DuckDBBlobValue,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { fromBase64Url, hpkeOpen, hpkeSeal, toBase64Url, utf8 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import type { PrivacyCost } from '../dp/index.js';

// A query's result as it leaves the enclave (docs/enclave.md): rows as canonical JSON, encrypted
// once under a fresh content key (AES-256-GCM), that key sealed with HPKE to each receiver. Only
// the receivers can read the rows; the operator stores ciphertext it cannot open.

export const RESULT_ROWS_FORMAT = 'malus.result-rows/v1';
export const SEALED_RESULT_FORMAT = 'malus.sealed-result/v1';
/** HPKE `info` of a sealed content key: a key sealed for anything else does not open as one. */
export const RESULT_KEY_INFO = 'malus.result-key/v1';
const CONTENT_AAD_LABEL = 'malus.result/v1\0';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A value as the payload carries it: JSON-safe, no precision lost. */
export type ResultValue = string | number | boolean | null;

export interface ResultColumn {
  readonly name: string;
  /** The DuckDB type, as DuckDB names it (`BIGINT`, `DECIMAL(12,2)`, `TIMESTAMP WITH TIME ZONE`). */
  readonly type: string;
}

export interface NoiseOf {
  readonly mechanism: 'laplace' | 'gaussian';
  readonly scale: string;
  readonly ci95: string;
}

/** What a result says about one noisy column: enough for a reader to judge its accuracy. */
export interface NoisyColumn {
  readonly column: string;
  readonly mechanism: 'laplace' | 'gaussian';
  /** The noise scale in the column's own units, rational text (b of the Laplace, sigma of the Gaussian); absent for AVG. */
  readonly scale?: string;
  /** Half-width of the 95% interval of the noise, in the column's units: the answer lies within ±ci95 of the exact bounded value with probability 0.95; absent for AVG. */
  readonly ci95?: string;
  /** AVG: the noisy sum over the noisy count; their scales and half-widths are given instead. */
  readonly of?: { readonly sum: NoiseOf; readonly count: NoiseOf };
  /** AVG: for each released row, in order, a 95% interval [low, high] of the exact bounded average; null where the value is. */
  readonly rows95?: readonly (readonly [number, number] | null)[];
}

export interface PrivacyReport {
  readonly accounting: 'pure' | 'zcdp';
  readonly cost: PrivacyCost;
  readonly columns: readonly NoisyColumn[];
}

export interface ResultRows {
  readonly format: typeof RESULT_ROWS_FORMAT;
  readonly columns: readonly ResultColumn[];
  readonly rows: readonly (readonly ResultValue[])[];
  /** Under differential privacy: the accounting, the cost spent, and each noisy column's mechanism, scale and 95% interval. */
  readonly privacy?: PrivacyReport;
}

export interface SealedResult {
  readonly format: typeof SEALED_RESULT_FORMAT;
  /** base64url, 12 bytes. */
  readonly nonce: string;
  /** base64url: the AES-256-GCM ciphertext followed by its 16-byte tag. */
  readonly ciphertext: string;
  /** The content key sealed to each receiver: `enc` and `key` (the HPKE ciphertext) in base64url. */
  readonly recipients: readonly { readonly party: string; readonly enc: string; readonly key: string }[];
}

/** Proleptic Gregorian year, month, day of a day count since 1970-01-01 (H. Hinnant's civil_from_days). */
function civilFromDays(days: number): [number, number, number] {
  const z0 = days + 719_468;
  const era = Math.floor(z0 / 146_097);
  const doe = z0 - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

const pad = (n: number | bigint, width: number): string => String(n).padStart(width, '0');

/** ISO 8601 date; years outside 0..9999 in the expanded form (±YYYYYY), 1 BC being year 0 as ISO counts. */
function isoDate(days: number): string {
  const [year, month, day] = civilFromDays(days);
  const y = year >= 0 && year <= 9999 ? pad(year, 4) : `${year < 0 ? '-' : '+'}${pad(Math.abs(year), 6)}`;
  return `${y}-${pad(month, 2)}-${pad(day, 2)}`;
}

/** ISO 8601 date and time of `units` since the epoch at `perSecond` units a second; the fraction only when not zero. */
function isoTimestamp(units: bigint, perSecond: bigint, zone: string): string {
  const perDay = 86_400n * perSecond;
  let days = units / perDay;
  let rest = units % perDay;
  if (rest < 0n) {
    rest += perDay;
    days -= 1n;
  }
  const seconds = rest / perSecond;
  const fraction = rest % perSecond;
  const digits = String(perSecond).length - 1;
  const fractionText = fraction === 0n ? '' : `.${pad(fraction, digits).replace(/0+$/, '')}`;
  const time = `${pad(seconds / 3600n, 2)}:${pad((seconds / 60n) % 60n, 2)}:${pad(seconds % 60n, 2)}${fractionText}`;
  return `${isoDate(Number(days))}T${time}${zone}`;
}

function infinite(value: { isFinite: boolean }, positive: boolean): string | undefined {
  return value.isFinite ? undefined : positive ? 'infinity' : '-infinity';
}

/**
 * A DuckDB value as the payload carries it: integers wider than a double and decimals as decimal
 * strings, dates and timestamps as ISO 8601 text (TIMESTAMPTZ in UTC, with Z), doubles as numbers
 * (NaN and infinities as null), BLOBs as base64url, and any other type as DuckDB prints it.
 */
export function resultValue(value: DuckDBValue): ResultValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof DuckDBDecimalValue) return value.toString();
  if (value instanceof DuckDBDateValue) return infinite(value, value.days > 0) ?? isoDate(value.days);
  if (value instanceof DuckDBTimestampTZValue) return infinite(value, value.micros > 0n) ?? isoTimestamp(value.micros, 1_000_000n, 'Z');
  if (value instanceof DuckDBTimestampValue) return infinite(value, value.micros > 0n) ?? isoTimestamp(value.micros, 1_000_000n, '');
  if (value instanceof DuckDBTimestampSecondsValue) return infinite(value, value.seconds > 0n) ?? isoTimestamp(value.seconds, 1n, '');
  if (value instanceof DuckDBTimestampMillisecondsValue) return infinite(value, value.millis > 0n) ?? isoTimestamp(value.millis, 1000n, '');
  if (value instanceof DuckDBTimestampNanosecondsValue) return infinite(value, value.nanos > 0n) ?? isoTimestamp(value.nanos, 1_000_000_000n, '');
  if (value instanceof DuckDBBlobValue) return toBase64Url(value.bytes);
  return value.toString();
}

/** About how many bytes a value adds to the payload: for the size cap while rows stream in. */
export function resultValueBytes(value: ResultValue): number {
  if (value === null) return 4;
  if (typeof value === 'string') return Buffer.byteLength(value) + 3;
  if (typeof value === 'boolean') return 6;
  return String(value).length + 1;
}

/** The payload: UTF-8 RFC 8785 canonical JSON of `{ format, columns, rows }`. */
export function encodeResultRows(columns: readonly ResultColumn[], rows: readonly (readonly DuckDBValue[])[], privacy?: PrivacyReport): Uint8Array {
  const document: ResultRows = {
    format: RESULT_ROWS_FORMAT,
    columns: columns.map(({ name, type }) => ({ name, type })),
    rows: rows.map((row) => {
      if (row.length !== columns.length) throw new MalusError('internal', 'a result row does not have one value per column');
      return row.map(resultValue);
    }),
    ...(privacy === undefined ? {} : { privacy }),
  };
  const text = canonicalize(document);
  if (text === undefined) throw new MalusError('internal', 'the result cannot be canonicalized');
  return utf8(text);
}

const noiseSchema = z.strictObject({ mechanism: z.enum(['laplace', 'gaussian']), scale: z.string(), ci95: z.string() });
const privacyReportSchema = z.strictObject({
  accounting: z.enum(['pure', 'zcdp']),
  cost: z.strictObject({ epsilon: z.string().optional(), rho: z.string().optional(), delta: z.string().optional() }),
  columns: z.array(
    z.strictObject({
      column: z.string(),
      mechanism: z.enum(['laplace', 'gaussian']),
      scale: z.string().optional(),
      ci95: z.string().optional(),
      of: z.strictObject({ sum: noiseSchema, count: noiseSchema }).optional(),
      rows95: z.array(z.tuple([z.number(), z.number()]).nullable()).optional(),
    }),
  ),
});

const resultRowsSchema = z
  .strictObject({
    format: z.literal(RESULT_ROWS_FORMAT),
    columns: z.array(z.strictObject({ name: z.string(), type: z.string() })),
    rows: z.array(z.array(z.union([z.string(), z.number(), z.boolean(), z.null()]))),
    privacy: privacyReportSchema.optional(),
  })
  .refine((doc) => doc.rows.every((row) => row.length === doc.columns.length), 'every row has one value per column')
  .refine((doc) => (doc.privacy?.columns ?? []).every((c) => c.rows95 === undefined || c.rows95.length === doc.rows.length), 'an AVG column has one interval per row');

/** Reads a payload back; `invalid-input` unless it is a well-formed malus.result-rows/v1 document. */
export function parseResultRows(bytes: Uint8Array): ResultRows {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new MalusError('invalid-input', 'the result payload is not UTF-8 JSON');
  }
  const parsed = resultRowsSchema.safeParse(json);
  if (!parsed.success) {
    throw new MalusError('invalid-input', 'the result payload is not a malus.result-rows/v1 document', {
      issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    });
  }
  return parsed.data;
}

/** The AES-GCM additional data: the job id under a label, so a result cannot be passed off as another job's. */
const contentAad = (jobId: string): Uint8Array => utf8(`${CONTENT_AAD_LABEL}${jobId}`);

export interface ResultReceiver {
  readonly party: string;
  /** Raw 32-byte X25519 public key. */
  readonly encryptionKey: Uint8Array;
}

/** Encrypts the payload for the receivers; the content key is zeroed before this returns. */
export async function sealResult(parameters: { jobId: string; payload: Uint8Array; receivers: readonly ResultReceiver[] }): Promise<SealedResult> {
  const { jobId, payload, receivers } = parameters;
  if (receivers.length === 0) throw new MalusError('internal', 'a result needs at least one receiver');
  const key = randomBytes(KEY_BYTES);
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(contentAad(jobId));
    const ciphertext = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
    const recipients = [];
    for (const receiver of receivers) {
      const sealed = await hpkeSeal(receiver.encryptionKey, key, RESULT_KEY_INFO, utf8(jobId));
      recipients.push({ party: receiver.party, enc: toBase64Url(sealed.enc), key: toBase64Url(sealed.ciphertext) });
    }
    return { format: SEALED_RESULT_FORMAT, nonce: toBase64Url(nonce), ciphertext: toBase64Url(ciphertext), recipients };
  } finally {
    key.fill(0);
  }
}

/** The ciphertext bytes (with the tag) that the statement's `result.ciphertext` hashes. */
export function sealedCiphertext(sealed: SealedResult): Uint8Array {
  const bytes = fromBase64Url(sealed.ciphertext);
  if (bytes === undefined) throw new MalusError('invalid-input', 'the sealed result ciphertext is not base64url');
  return bytes;
}

const refused = (): MalusError => new MalusError('decryption-failed', 'the sealed result does not open for this party and job');

/**
 * Opens a sealed result with a receiver's X25519 secret key. Any failure (not a receiver, the
 * wrong key, another job, a changed byte) is the same `decryption-failed`.
 */
export async function openResult(parameters: { jobId: string; sealed: SealedResult; party: string; secretKey: Uint8Array }): Promise<Uint8Array> {
  const { jobId, sealed, party, secretKey } = parameters;
  // The envelope usually arrives as parsed JSON: its format is checked, not assumed.
  if ((sealed.format as string) !== SEALED_RESULT_FORMAT) throw refused();
  const recipient = sealed.recipients.find((r) => r.party === party);
  const enc = recipient === undefined ? undefined : fromBase64Url(recipient.enc);
  const sealedKey = recipient === undefined ? undefined : fromBase64Url(recipient.key);
  const nonce = fromBase64Url(sealed.nonce);
  const ciphertext = fromBase64Url(sealed.ciphertext);
  if (enc === undefined || sealedKey === undefined || nonce === undefined || ciphertext === undefined) throw refused();
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw refused();
  const key = await hpkeOpen(secretKey, { enc, ciphertext: sealedKey }, RESULT_KEY_INFO, utf8(jobId));
  if (key === undefined) throw refused();
  try {
    if (key.length !== KEY_BYTES) throw refused();
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(contentAad(jobId));
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
    try {
      return new Uint8Array(Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]));
    } catch {
      throw refused();
    }
  } finally {
    key.fill(0);
  }
}
