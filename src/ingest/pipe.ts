import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MalusError } from '../errors/index.js';

// DuckDB reads and writes files by name. A named pipe gives it a name whose bytes go straight to
// (or from) this process through the kernel and are never stored: Parquet is written front to
// back, so DuckDB can stream a dataset's plaintext into the encryptor without it touching disk.

const run = promisify(execFile);

export interface NamedPipe {
  readonly path: string;
  remove(): void;
}

export async function createNamedPipe(): Promise<NamedPipe> {
  const dir = mkdtempSync(join(tmpdir(), 'malus-pipe-'));
  const path = join(dir, 'stream');
  try {
    await run('mkfifo', ['-m', '600', path]);
  } catch {
    rmSync(dir, { recursive: true, force: true });
    throw new MalusError('internal', 'cannot create a named pipe (mkfifo): Malus needs a POSIX system to stream datasets');
  }
  return { path, remove: () => { rmSync(dir, { recursive: true, force: true }); } };
}
