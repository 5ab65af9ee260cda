import { CommanderError, type Command } from 'commander';
import { MalusError } from '../errors/index.js';
import type { CliIo } from './io.js';
import { buildProgram } from './program.js';

// Exit codes: 0 success, 1 a check ran and failed, 2 bad input or usage, 3 the service or machine failed.

function exitOverrideAll(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) exitOverrideAll(sub);
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  exitOverrideAll(program);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every other commander error is bad usage and already printed.
      return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
    }
    if (error instanceof MalusError) {
      io.err(`error: ${error.describe()}\n`);
      return error.exitCode;
    }
    // Never show a stack trace to a user; MALUS_DEBUG=1 shows it for developers.
    io.err('error: internal error (set MALUS_DEBUG=1 for details)\n');
    if (io.env.MALUS_DEBUG === '1') io.err(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 3;
  }
}

export function processIo(): CliIo {
  // A reader that goes away early (`malus demo | head`) closes the pipe: stop writing to it and let
  // the command finish (and clean up) instead of dying on an unhandled EPIPE with a stack trace.
  let stdoutOpen = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stdoutOpen = false;
  });
  return {
    out: (text) => {
      if (stdoutOpen) process.stdout.write(text);
    },
    err: (text) => process.stderr.write(text),
    env: process.env,
    errStream: process.stderr,
    stopSignal: () =>
      new Promise((resolve) => {
        const stop = (signal: string): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(signal);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }),
  };
}

/** Entry point of the `malus` binary. */
export async function main(argv: readonly string[]): Promise<number> {
  return run(argv, processIo());
}
