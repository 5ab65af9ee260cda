import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSimCa, type SimCa } from '../attestation/index.js';
import { fromBase64, toBase64 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import { writePrivateFile } from '../identity/index.js';

// The development CA of the sim platform lives in the data directory of `malus serve` (mode 0600).
// Whoever can read it can make sim evidence for any measurement: that is why sim is accepted only
// where an agreement lists it, and why everything made under it says it is not confidential.

export const SIM_CA_FILE = 'sim-ca.json';
const FORMAT = 'malus.sim-ca/v1';

export function readSimCa(path: string): SimCa {
  let text: string;
  try {
    if ((statSync(path).mode & 0o077) !== 0) throw new MalusError('key-file-permissions', `${path} is readable by others; chmod 600 it`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('file-unreadable', `cannot read the sim CA ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new MalusError('key-file-invalid', `${path} is not JSON`);
  }
  const record = parsed as { format?: unknown; certificate?: unknown; privateKey?: unknown };
  const certificate = typeof record.certificate === 'string' ? fromBase64(record.certificate) : undefined;
  const privateKey = typeof record.privateKey === 'string' ? fromBase64(record.privateKey) : undefined;
  if (record.format !== FORMAT || certificate === undefined || privateKey === undefined) {
    throw new MalusError('key-file-invalid', `${path} is not a ${FORMAT} file`);
  }
  return { certificate, privateKey };
}

/** Loads the data directory's development CA, creating it on first use (atomically, never overwritten). */
export async function loadOrCreateSimCa(dataDir: string, now: Date): Promise<SimCa> {
  const path = join(dataDir, SIM_CA_FILE);
  if (existsSync(path)) return readSimCa(path);
  const ca = await createSimCa(now);
  try {
    writePrivateFile(path, `${JSON.stringify({ format: FORMAT, certificate: toBase64(ca.certificate), privateKey: toBase64(ca.privateKey) }, null, 2)}\n`);
  } catch (error) {
    // Another process made it first: use that one.
    if (existsSync(path)) return readSimCa(path);
    throw error;
  }
  return ca;
}
