// Helpers for the end-to-end CLI tests: they run the real `malus` binary (bin/malus.js, which loads
// the compiled dist/) as a child process, and a real `malus serve` on a loopback port.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'malus.js');
const DIST_ENTRY = join(ROOT, 'dist', 'cli', 'index.js');

function newestFile(dir: string): { path: string; mtimeMs: number } | undefined {
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const candidate = entry.isDirectory() ? newestFile(path) : { path, mtimeMs: statSync(path).mtimeMs };
    if (candidate !== undefined && (newest === undefined || candidate.mtimeMs > newest.mtimeMs)) newest = candidate;
  }
  return newest;
}

/** The tests run the compiled CLI: refuse to run against a missing or stale build. */
export function assertFreshBuild(): void {
  let built: number;
  try {
    built = statSync(DIST_ENTRY).mtimeMs;
  } catch {
    throw new Error(`${DIST_ENTRY} does not exist: run npm run build before the CLI tests`);
  }
  const newest = newestFile(join(ROOT, 'src'));
  if (newest !== undefined && newest.mtimeMs > built) {
    throw new Error(`dist/ is older than ${newest.path.slice(ROOT.length + 1)}: run npm run build before the CLI tests`);
  }
}

/** A fresh temporary directory (resolved, so paths printed by the CLI compare equal). */
export function tempDir(prefix = 'malus-cli-test-'): string {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export function removeDir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}

/** A small, predictable environment: nothing from the developer's shell leaks in (no MALUS_DEBUG). */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'SYSTEMROOT']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd: string;
  /** Extra environment variables on top of baseEnv(). */
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** Runs `node bin/malus.js ...args` to completion. Never rejects on a non-zero exit code. */
export function malus(args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: baseEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`malus ${args.join(' ')} did not finish in ${options.timeoutMs ?? 20_000} ms\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** True when the text holds a JavaScript stack frame (`    at fn (file:line:col)`). */
export function hasStackTrace(text: string): boolean {
  return /^\s{4}at /m.test(text);
}

export interface ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running; for afterAll. */
  kill(): Promise<void>;
}

/** Starts `malus serve` on 127.0.0.1 port 0 and reads the URL it prints on standard error. */
export function startServe(dataDir: string, cwd: string, timeoutMs = 15_000, extraArgs: readonly string[] = []): Promise<ServerProcess> {
  return startDaemon(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], cwd, /malus serving on (http:\/\/\S+)/, timeoutMs);
}

/**
 * Starts a long-running `malus` command and resolves once its standard error matches `ready`
 * (the first group, if any, becomes `url`).
 */
export function startDaemon(args: readonly string[], cwd: string, ready: RegExp, timeoutMs = 15_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  // The request log goes to standard output: always drain it so the server never blocks on a full pipe.
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8');
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on('close', (code, signal) => {
      running = false;
      resolveExit({ code, signal });
    });
  });
  const kill = async (): Promise<void> => {
    if (running) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      void kill();
      reject(new Error(`malus ${args[0] ?? ''} was not ready in ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    const onData = (chunk: string): void => {
      stderr += chunk;
      const match = ready.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolvePromise({ url: match[1] ?? '', child, stdout: () => stdout, stderr: () => stderr, exited, kill });
      }
    };
    child.stderr.on('data', onData);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`malus ${args[0] ?? ''} exited (code ${code}, signal ${signal}) before it was ready\nstderr: ${stderr}`));
    });
  });
}
