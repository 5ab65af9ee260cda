import type { Command } from 'commander';
import { createClient, type MalusClient } from '../client/index.js';
import { MalusError } from '../errors/index.js';
import { loadKeys, type CliIo } from './io.js';

// The options every command that talks to a server shares, and the client they make.

export interface ServerOptions {
  server: string;
  key: string;
  passphraseEnv?: string;
  json?: boolean;
}

export interface CollabServerOptions extends ServerOptions {
  collab: string;
}

const COLLABORATION_ID = /^[a-z0-9][a-z0-9._-]{2,63}$/;

/** --collab, checked here rather than by the server: a malformed id could never name a collaboration. */
export function collaborationIdOption(value: string): string {
  if (!COLLABORATION_ID.test(value)) {
    throw new MalusError('usage', `--collab ${JSON.stringify(value)}: expected a collaboration id (3 to 64 characters: a-z, 0-9, ".", "_", "-", starting with a letter or digit)`);
  }
  return value;
}

export function withServerOptions(command: Command, options: { collab?: boolean } = {}): Command {
  const withServer = command
    .requiredOption('--server <url>', 'the Malus server, e.g. http://127.0.0.1:8787')
    .requiredOption('--key <keyfile>', 'your party key file (it signs every request)')
    .option('--passphrase-env <var>', 'environment variable holding the key file passphrase');
  return (options.collab === true ? withServer.requiredOption('--collab <id>', 'the collaboration id', collaborationIdOption) : withServer).option('--json', 'print JSON');
}

export function clientFor(io: CliIo, options: ServerOptions): MalusClient {
  return createClient({ server: options.server, keys: loadKeys(io, options.key, options.passphraseEnv) });
}

/** For repeatable options. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const FINGERPRINT = /^[0-9a-f]{64}$/;

/** --sim-root values, checked: SHA-256 fingerprints of development CAs. */
export function simRootFingerprints(values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  for (const root of values) {
    if (!FINGERPRINT.test(root)) throw new MalusError('usage', `--sim-root ${root}: expected the SHA-256 fingerprint of a development CA (64 lower-case hex)`);
  }
  return [...values];
}
