import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fromBase64Url, generateSigningKeyPair, sha256, signingPublicKey, toBase64Url, toHex } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { writePrivateFile } from '../identity/index.js';

// The log's signing key lives in the data directory (`log-key.json`, mode 0600), made on first
// start. Its origin line names the log in every checkpoint; the default derives from the key, so
// two data directories never claim the same log.

export interface LogKey {
  readonly origin: string;
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

const logKeySchema = z.strictObject({
  format: z.literal('malus.log-key/v1'),
  origin: z.string().min(1).max(200),
  secretKey: z.string(),
  createdAt: z.string(),
});

export function defaultOrigin(publicKey: Uint8Array): string {
  return `malus.local/log/${toHex(sha256(publicKey).subarray(0, 8))}`;
}

/** Loads the log key from the data directory, or creates it. An explicit origin must match a stored one. */
export function loadOrCreateLogKey(dataDir: string, origin: string | undefined, now: Date): LogKey {
  const path = join(dataDir, 'log-key.json');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new MalusError('file-unreadable', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (text === undefined) {
    const pair = generateSigningKeyPair();
    const key: LogKey = { origin: origin ?? defaultOrigin(pair.publicKey), secretKey: pair.secretKey, publicKey: pair.publicKey };
    const file = { format: 'malus.log-key/v1', origin: key.origin, secretKey: toBase64Url(pair.secretKey), createdAt: now.toISOString() };
    writePrivateFile(path, `${JSON.stringify(file, null, 2)}\n`);
    return key;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MalusError('store-failure', `${path} is not JSON`);
  }
  const parsed = logKeySchema.safeParse(json);
  const secretKey = parsed.success ? fromBase64Url(parsed.data.secretKey) : undefined;
  if (!parsed.success || secretKey?.length !== 32) throw new MalusError('store-failure', `${path} is not a malus.log-key/v1 file`);
  if (origin !== undefined && origin !== parsed.data.origin) {
    throw new MalusError('usage', `this data directory's log is ${parsed.data.origin}; it cannot be renamed to ${origin}`);
  }
  return { origin: parsed.data.origin, secretKey, publicKey: signingPublicKey(secretKey) };
}
