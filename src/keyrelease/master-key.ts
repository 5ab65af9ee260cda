import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MalusError } from '../errors/index.js';

// Data keys at rest: wrapped under a master key with AES-256-GCM. The AAD binds the dataset,
// collaboration and owner, so a wrapped key moved to another row of the store does not unwrap.
// The master key is a 32-byte file in the data directory (mode 0600) by default; an external KMS
// implements the same interface.

export interface KeyWrapContext {
  readonly collaborationId: string;
  readonly datasetId: string;
  readonly owner: string;
}

export interface KeyWrapper {
  wrap(dek: Uint8Array, context: KeyWrapContext): Promise<Uint8Array>;
  /** Undefined when the wrapped bytes, the context or the master key do not match. */
  unwrap(wrapped: Uint8Array, context: KeyWrapContext): Promise<Uint8Array | undefined>;
}

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const MASTER_KEY_FILE = 'kms-master.key';

function aad(context: KeyWrapContext): Buffer {
  return Buffer.from(['malus.wrapped-key/v1', context.collaborationId, context.datasetId, context.owner].join('\0'));
}

/** A wrapper over a master key held in memory. */
export function aesKeyWrapper(masterKey: Uint8Array): KeyWrapper {
  if (masterKey.length !== 32) throw new RangeError('a master key is 32 bytes');
  const key = Buffer.from(masterKey);
  return {
    wrap(dek, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(aad(context));
      const body = Buffer.concat([cipher.update(dek), cipher.final()]);
      return Promise.resolve(new Uint8Array(Buffer.concat([Buffer.from([VERSION]), iv, body, cipher.getAuthTag()])));
    },
    unwrap(wrapped, context) {
      if (wrapped.length < 1 + IV_BYTES + TAG_BYTES || wrapped[0] !== VERSION) return Promise.resolve(undefined);
      const bytes = Buffer.from(wrapped);
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(1, 1 + IV_BYTES)).setAAD(aad(context));
        decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
        const plain = Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
        return Promise.resolve(new Uint8Array(plain));
      } catch {
        return Promise.resolve(undefined);
      }
    },
  };
}

/**
 * Loads the data directory's master key, creating it (mode 0600, never overwritten) on first use.
 * A key file readable by others, or of the wrong size, is refused rather than used.
 */
export function loadOrCreateMasterKey(dataDir: string): Uint8Array {
  const path = join(dataDir, MASTER_KEY_FILE);
  try {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, randomBytes(32));
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new MalusError('file-unreadable', `cannot create the master key ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const mode = statSync(path).mode & 0o077;
  if (mode !== 0) throw new MalusError('key-file-permissions', `master key ${path} is readable by others; chmod 600 it`);
  const key = readFileSync(path);
  if (key.length !== 32) throw new MalusError('key-file-invalid', `master key ${path} is not 32 bytes`);
  return new Uint8Array(key);
}
