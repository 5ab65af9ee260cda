import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MalusError } from '../errors/index.js';

// The measurement of a Malus build, as a sim enclave reports it and an agreement pins it:
//
//   SHA-384( "malus.measurement/v1\n"
//            ‖ for each file, sorted by path:  path ‖ "\0" ‖ hex(SHA-256(file)) ‖ "\n" )
//
// over every .js and .json file under dist/, and package-lock.json (paths relative to the package
// root, with "/"). The compiler's output is deterministic, so the same sources and lockfile give the
// same measurement on any machine (docs/enclave.md). A real TEE measures its own image instead.

export const MEASUREMENT_LABEL = 'malus.measurement/v1\n';

/** The package root: two levels above this file, in src/ or in dist/. */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function builtFiles(root: string, dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...builtFiles(root, path));
    else if (entry.isFile() && (entry.name.endsWith('.js') || entry.name.endsWith('.json'))) found.push(relative(root, path).split(sep).join('/'));
  }
  return found;
}

export interface BuildMeasurement {
  /** SHA-384, 96 lower-case hex characters. */
  readonly measurement: string;
  readonly files: number;
}

export function measureBuild(root: string = packageRoot()): BuildMeasurement {
  let files: string[];
  try {
    files = [...builtFiles(root, join(root, 'dist')), 'package-lock.json'].sort();
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot measure the build in ${root}: ${(error as NodeJS.ErrnoException).code ?? 'error'} (run npm run build)`);
  }
  const hash = createHash('sha384').update(MEASUREMENT_LABEL);
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(root, file));
    } catch (error) {
      throw new MalusError('file-unreadable', `cannot measure ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    hash.update(`${file}\0${createHash('sha256').update(bytes).digest('hex')}\n`);
  }
  return { measurement: hash.digest('hex'), files: files.length };
}
