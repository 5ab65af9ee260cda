import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { z } from 'zod';
import {
  encryptionPublicKey,
  equalBytes,
  fromBase64Url,
  generateEncryptionKeyPair,
  generateSigningKeyPair,
  openWithPassphrase,
  sealWithPassphrase,
  signingPublicKey,
  toBase64Url,
  utf8,
} from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { partyIdFor } from './party-id.js';
import { checkPublicIdentity, type PublicIdentity } from './public-identity.js';

// The party key file (`malus.key/v1`): public identity in the clear, the two 32-byte secrets either
// in the clear (file mode 0600) or sealed under a passphrase with scrypt + AES-256-GCM. The AAD is
// the public part, so a file whose public keys were swapped does not open.

/** A loaded party: its public identity and its secrets, held in memory only. */
export interface PartyKeys {
  readonly identity: PublicIdentity;
  readonly signingSecret: Uint8Array;
  readonly encryptionSecret: Uint8Array;
}

const sealedSchema = z.strictObject({
  kdf: z.literal('scrypt'),
  N: z.number().int(),
  r: z.number().int(),
  p: z.number().int(),
  salt: z.string(),
  cipher: z.literal('aes-256-gcm'),
  iv: z.string(),
  ciphertext: z.string(),
});

const keyFileSchema = z.strictObject({
  format: z.literal('malus.key/v1'),
  id: z.string(),
  name: z.string(),
  signingKey: z.string(),
  encryptionKey: z.string(),
  createdAt: z.string(),
  secrets: z.discriminatedUnion('protection', [
    z.strictObject({ protection: z.literal('none'), signingKey: z.string(), encryptionKey: z.string() }),
    z.strictObject({ protection: z.literal('passphrase'), sealed: sealedSchema }),
  ]),
});

type KeyFile = z.infer<typeof keyFileSchema>;

export function generatePartyKeys(name: string): PartyKeys {
  if (name.trim() === '' || name.length > 200) throw new MalusError('usage', 'name must be 1 to 200 characters');
  const signing = generateSigningKeyPair();
  const encryption = generateEncryptionKeyPair();
  return {
    identity: {
      format: 'malus.identity/v1',
      id: partyIdFor(signing.publicKey),
      name,
      signingKey: toBase64Url(signing.publicKey),
      encryptionKey: toBase64Url(encryption.publicKey),
    },
    signingSecret: signing.secretKey,
    encryptionSecret: encryption.secretKey,
  };
}

function publicAad(file: Pick<KeyFile, 'id' | 'name' | 'signingKey' | 'encryptionKey'>): Uint8Array {
  return utf8(['malus.key/v1', file.id, file.name, file.signingKey, file.encryptionKey].join('\n'));
}

export interface WriteKeyFileOptions {
  /** When set, the secrets are sealed under this passphrase. */
  readonly passphrase?: string;
  readonly now?: Date;
}

/** Writes the key file atomically with mode 0600; refuses to overwrite an existing file. */
export function writeKeyFile(path: string, keys: PartyKeys, options: WriteKeyFileOptions = {}): void {
  const { identity } = keys;
  const base = {
    id: identity.id,
    name: identity.name,
    signingKey: identity.signingKey,
    encryptionKey: identity.encryptionKey,
  };
  const secretsPlain = {
    signingKey: toBase64Url(keys.signingSecret),
    encryptionKey: toBase64Url(keys.encryptionSecret),
  };
  const secrets: KeyFile['secrets'] =
    options.passphrase === undefined
      ? { protection: 'none', ...secretsPlain }
      : {
          protection: 'passphrase',
          sealed: sealWithPassphrase(utf8(JSON.stringify(secretsPlain)), options.passphrase, publicAad(base)),
        };
  const file: KeyFile = {
    format: 'malus.key/v1',
    ...base,
    createdAt: (options.now ?? new Date()).toISOString(),
    secrets,
  };
  writePrivateFile(path, `${JSON.stringify(file, null, 2)}\n`);
}

/** Writes to a temporary file, then links it into place: never clobbers, never half-written. */
/** Writes a new owner-only (0600) file atomically: temporary file, fsync, hard link; never overwrites. */
export function writePrivateFile(path: string, text: string): void {
  // A random suffix: a temporary file a crashed run left behind (same pid, as in a container) must
  // neither block this write nor be reported as the key file already existing.
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temp, 'wx', 0o600);
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot write ${path}: ${errnoCode(error)}`);
  }
  let open = true;
  try {
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    open = false;
    chmodSync(temp, 0o600);
    linkSync(temp, path);
  } catch (error) {
    const code = errnoCode(error);
    throw code === 'EEXIST'
      ? new MalusError('usage', `${path} already exists; refusing to overwrite a key file`)
      : new MalusError('file-unreadable', `cannot write ${path}: ${code}`);
  } finally {
    if (open) {
      try {
        closeSync(fd);
      } catch {
        // Already reporting the error that got us here.
      }
    }
    rmSync(temp, { force: true });
  }
}

function errnoCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'error';
}

export interface ReadKeyFileOptions {
  /** Needed when the file is passphrase-protected. */
  readonly passphrase?: string;
  /** Name of the environment variable the passphrase came from, for the error message. */
  readonly passphraseSource?: string;
}

/** Reads the public half only; works on passphrase-protected files without the passphrase. */
const publicIdentitySchema = z.strictObject({
  format: z.literal('malus.identity/v1'),
  id: z.string(),
  name: z.string(),
  signingKey: z.string(),
  encryptionKey: z.string(),
});

/**
 * Reads the public half of a key file, or a public identity document (`malus keygen --public`).
 * Works on passphrase-protected key files without the passphrase. The id must derive from the key.
 */
export function readPublicIdentity(path: string): PublicIdentity {
  const text = readText(path);
  let identity: PublicIdentity;
  const asIdentity = publicIdentitySchema.safeParse(safeJson(text));
  if (asIdentity.success) identity = asIdentity.data;
  else identity = toIdentity(parseKeyFile(path, text));
  const issues = checkPublicIdentity(identity);
  if (issues.length > 0) throw new MalusError('key-file-invalid', `${path} holds an inconsistent identity`, { issues });
  return identity;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads and opens a key file, enforcing owner-only permissions. */
export function readKeyFile(path: string, options: ReadKeyFileOptions = {}): PartyKeys {
  const text = readText(path);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new MalusError(
      'key-file-permissions',
      `key file ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`,
    );
  }
  const file = parseKeyFile(path, text);
  const secrets = openSecrets(path, file, options);
  const signingSecret = decodeSecret(path, 'signingKey', secrets.signingKey);
  const encryptionSecret = decodeSecret(path, 'encryptionKey', secrets.encryptionKey);
  const identity = toIdentity(file);
  // The secrets must belong to the public keys the file shows.
  if (
    !equalBytes(signingPublicKey(signingSecret), fromBase64Url(file.signingKey) ?? new Uint8Array()) ||
    !equalBytes(encryptionPublicKey(encryptionSecret), fromBase64Url(file.encryptionKey) ?? new Uint8Array()) ||
    partyIdFor(signingPublicKey(signingSecret)) !== file.id
  ) {
    throw new MalusError('key-file-invalid', `key file ${path}: secret keys do not match the public keys it shows`);
  }
  return { identity, signingSecret, encryptionSecret };
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new MalusError('file-unreadable', `cannot read key file ${path}: ${code}`);
  }
}

function parseKeyFile(path: string, text: string): KeyFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MalusError('key-file-invalid', `key file ${path} is not JSON`);
  }
  const parsed = keyFileSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first === undefined ? '' : first.path.join('.');
    throw new MalusError('key-file-invalid', `key file ${path} is not a malus.key/v1 file (at ${where || 'top level'})`);
  }
  return parsed.data;
}

function openSecrets(
  path: string,
  file: KeyFile,
  options: ReadKeyFileOptions,
): { signingKey: string; encryptionKey: string } {
  const { secrets } = file;
  switch (secrets.protection) {
    case 'none':
      return secrets;
    case 'passphrase': {
      if (options.passphrase === undefined || options.passphrase === '') {
        throw new MalusError(
          'key-file-passphrase',
          `key file ${path} is passphrase-protected; pass --passphrase-env VAR with the passphrase in VAR`,
        );
      }
      const plain = openWithPassphrase(secrets.sealed, options.passphrase, publicAad(file));
      if (plain === undefined) {
        const source = options.passphraseSource === undefined ? '' : ` from ${options.passphraseSource}`;
        throw new MalusError('key-file-passphrase', `wrong passphrase${source} for key file ${path}`);
      }
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder().decode(plain));
      } catch {
        json = undefined;
      } finally {
        plain.fill(0);
      }
      const inner = z.strictObject({ signingKey: z.string(), encryptionKey: z.string() }).safeParse(json);
      if (!inner.success) throw new MalusError('key-file-invalid', `key file ${path}: sealed secrets are malformed`);
      return inner.data;
    }
  }
}

function decodeSecret(path: string, field: string, text: string): Uint8Array {
  const bytes = fromBase64Url(text);
  if (bytes?.length !== 32) throw new MalusError('key-file-invalid', `key file ${path}: secrets.${field} is not 32 bytes of base64url`);
  return bytes;
}

function toIdentity(file: KeyFile): PublicIdentity {
  return {
    format: 'malus.identity/v1',
    id: file.id,
    name: file.name,
    signingKey: file.signingKey,
    encryptionKey: file.encryptionKey,
  };
}
