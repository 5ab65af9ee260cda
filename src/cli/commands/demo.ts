import type { Command } from 'commander';
import type { CliIo } from '../io.js';

export function registerDemo(program: Command, io: CliIo): void {
  program
    .command('demo')
    .description('run a whole collaboration on this machine with embedded defaults, narrating each step')
    .option('--data-dir <dir>', 'use (and keep) this data directory instead of a temporary one')
    .option('--keep', 'keep the temporary data directory afterwards')
    .action(async (options: { dataDir?: string; keep?: boolean }) => {
      const { runDemo } = await import('../../demo/index.js');
      await runDemo({
        ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
        keep: options.keep === true,
        write: (text) => {
          io.out(text);
        },
      });
    });
}
