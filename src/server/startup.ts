import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { SimCa } from '../attestation/index.js';
import { fromHex } from '../crypto/index.js';
import { loadOrCreateSimCa, measureBuild } from '../engine/index.js';
import { MalusError } from '../errors/index.js';

// What `malus serve` and `malus kms serve` do alike before and after they listen: the owner-only
// data directory and database file, the sim platform's CA and measurement, the listening URL, and
// the translation of listen errors.

/** Creates the data directory (owner-only) if needed. */
export function prepareDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot use data directory ${dataDir}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** The data directory and its database file, both owner-only (SQLite gives -wal and -shm the same mode). */
export function prepareDatabaseFile(dataDir: string, file: string): string {
  prepareDataDir(dataDir);
  const path = join(dataDir, file);
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
  return path;
}

/** The sim platform of this data directory: its CA, and the measurement its evidence reports (default: the build's). */
export async function simPlatformOf(
  dataDir: string,
  now: Date,
  measurement: string | undefined,
): Promise<{ ca: SimCa; measurement: string; measurementBytes: Uint8Array }> {
  const ca = await loadOrCreateSimCa(dataDir, now);
  const hex = measurement ?? measureBuild().measurement;
  const measurementBytes = fromHex(hex);
  if (measurementBytes?.length !== 48) throw new MalusError('usage', 'a sim measurement is 96 lower-case hex characters (SHA-384)');
  return { ca, measurement: hex, measurementBytes };
}

export function listeningUrl(app: FastifyInstance, options: { host: string; port: number }): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `http://${host}:${port}`;
}

/** A listen error as a usage error when the address is the problem; anything else as it is. */
export function listenError(error: unknown, options: { host: string; port: number }): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new MalusError('usage', `cannot listen on ${options.host}:${options.port}: ${code}`);
  }
  return error;
}
