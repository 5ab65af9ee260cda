import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { cliReference, replaceReference } from '../reference.js';
import type { CliIo } from '../io.js';

export function registerDocs(program: Command, io: CliIo, root: () => Command): void {
  program
    .command('docs')
    .description('print generated documentation')
    .command('cli')
    .description('print the CLI reference in Markdown (or rewrite its block in a README)')
    .option('--write <readme>', 'replace the generated block in this file')
    .action((options: { write?: string }) => {
      const reference = cliReference(root());
      if (options.write === undefined) {
        io.out(reference);
        return;
      }
      writeFileSync(options.write, replaceReference(readFileSync(options.write, 'utf8'), reference));
      io.err(`updated ${options.write}\n`);
    });
}
