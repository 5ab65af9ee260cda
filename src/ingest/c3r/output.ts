// Output files are never half-written: the data goes to a temporary file next to the output, which
// is renamed over the output only once everything succeeded. An existing output is replaced only
// when asked (C3R's --overwrite).
import { accessSync, chmodSync, closeSync, constants, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { MalusError } from '../../errors/index.js';

/** Refuses an output that is the input, that exists (unless `overwrite`), or whose directory is missing. */
export function checkOutputPath(input: string, output: string, overwrite: boolean): void {
  if (resolve(input) === resolve(output)) throw new MalusError('invalid-input', `the output ${output} is the input file; choose another --output`);
  if (existsSync(output)) {
    if (statSync(output).isDirectory()) throw new MalusError('invalid-input', `the output ${output} is a directory`);
    if (!overwrite) throw new MalusError('invalid-input', `${output} already exists; pass --overwrite to replace it`);
  }
  const directory = dirname(resolve(output));
  if (!existsSync(directory) || !statSync(directory).isDirectory()) {
    throw new MalusError('file-unreadable', `cannot write ${output}: directory ${dirname(output)} does not exist`);
  }
  // Checked before any work, and on a dry run too: the output goes to a new file in this folder.
  try {
    accessSync(directory, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot write ${output}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/**
 * Runs `write` against a fresh temporary path in the output's directory, then renames it to
 * `output`. On any failure the temporary file is removed and `output` is left as it was.
 */
export async function writeAtomically(output: string, overwrite: boolean, write: (temporaryPath: string) => Promise<void>): Promise<void> {
  const temporary = join(dirname(output), `.${basename(output)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await write(temporary);
    // Decrypted output is plaintext: readable by its owner only, whoever wrote the file (DuckDB too).
    chmodSync(temporary, 0o600);
    // Checked again: the output may have appeared while we worked.
    if (!overwrite && existsSync(output)) throw new MalusError('invalid-input', `${output} already exists; pass --overwrite to replace it`);
    renameSync(temporary, output);
  } catch (error) {
    rmSync(temporary, { force: true });
    // A system error (a full disk, a folder made read-only meanwhile) names the output and its code.
    const code = (error as NodeJS.ErrnoException).code;
    if (!(error instanceof MalusError) && typeof code === 'string') throw new MalusError('file-unreadable', `cannot write ${output}: ${code}`);
    throw error;
  }
}

/** Buffered text writes to a new file (created exclusively): `write` appends, `close` flushes. */
export function openTextOutput(path: string): { write(text: string): void; close(): void } {
  const fd = openSync(path, 'wx', 0o600);
  let pending: string[] = [];
  let size = 0;
  const flush = (): void => {
    if (pending.length === 0) return;
    writeSync(fd, pending.join(''));
    pending = [];
    size = 0;
  };
  return {
    write(text) {
      pending.push(text);
      size += text.length;
      if (size >= 1 << 20) flush();
    },
    close() {
      try {
        flush();
      } finally {
        closeSync(fd);
      }
    },
  };
}
