import type { Command } from 'commander';
import type { CliIo } from '../io.js';

// `malus psi`: private set intersection over the relay or directly (docs/psi.md).
export function registerPsi(program: Command, io: CliIo): void {
  void io;
  program.command('psi').description('private set intersection with another party');
}
