import type { Command } from 'commander';
import type { CliIo } from '../io.js';

// `malus secagg`: secure aggregation over the relay (docs/secagg.md).
export function registerSecagg(program: Command, io: CliIo): void {
  void io;
  program.command('secagg').description('secure aggregation of vectors over the relay');
}
