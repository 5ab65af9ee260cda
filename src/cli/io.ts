import { readFileSync, writeFileSync } from 'node:fs';
import { MalusError } from '../errors/index.js';
import { readKeyFile, type PartyKeys } from '../identity/index.js';

/** Where a command writes. Tests capture it; the binary binds it to the process streams. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Standard error as a stream, when it is one: progress bars draw on it only when it is a TTY. */
  readonly errStream?: NodeJS.WriteStream;
  /** Resolves when the command should stop (SIGINT/SIGTERM for long-running commands). */
  readonly stopSignal: () => Promise<string>;
}

export function readTextFile(path: string, what = 'file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new MalusError('file-unreadable', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** The passphrase named by --passphrase-env, if any; the value never appears in a message. */
export function passphraseFromEnv(io: CliIo, variable: string | undefined): string | undefined {
  if (variable === undefined) return undefined;
  const value = io.env[variable];
  if (value === undefined || value === '') {
    throw new MalusError('key-file-passphrase', `environment variable ${variable} (from --passphrase-env) is not set`);
  }
  return value;
}

export function loadKeys(io: CliIo, path: string, passphraseEnv: string | undefined): PartyKeys {
  const passphrase = passphraseFromEnv(io, passphraseEnv);
  return readKeyFile(path, {
    ...(passphrase === undefined ? {} : { passphrase }),
    ...(passphraseEnv === undefined ? {} : { passphraseSource: `$${passphraseEnv}` }),
  });
}

export function printJson(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints the text, or writes it to a new file (never overwriting one) and says so on standard error. */
export function writeOrPrint(io: CliIo, out: string | undefined, text: string, what: string, options: { mode?: number } = {}): void {
  if (out === undefined) {
    io.out(text);
    return;
  }
  try {
    writeFileSync(out, text, { flag: 'wx', ...(options.mode === undefined ? {} : { mode: options.mode }) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new MalusError(code === 'EEXIST' ? 'usage' : 'file-unreadable', `cannot write ${what} ${out}: ${code === 'EEXIST' ? 'it already exists' : (code ?? 'error')}`);
  }
  io.err(`wrote ${what} ${out}\n`);
}
