import type { Command } from 'commander';
import { discreteGaussian, discreteLaplace, parseRational } from '../../dp/index.js';
import { MalusError } from '../../errors/index.js';
import type { CliIo } from '../io.js';

// `malus dp sample`: draws from the exact samplers the enclave uses, so an auditor can test them.

const MECHANISMS = ['laplace', 'gaussian'] as const;

export function registerDp(program: Command, io: CliIo): void {
  const dp = program.command('dp').description('differential privacy tools');
  dp.command('sample')
    .description('print samples of the exact discrete Laplace or Gaussian, one integer per line')
    .requiredOption('--mechanism <name>', 'laplace (P(x) ∝ exp(-|x|/S)) or gaussian (P(x) ∝ exp(-x²/2S²))')
    .requiredOption('--scale <S>', 'the scale b (laplace) or sigma (gaussian): a decimal or a fraction a/b')
    .option('--count <n>', 'how many samples', '1')
    .action((options: { mechanism: string; scale: string; count: string }) => {
      if (!(MECHANISMS as readonly string[]).includes(options.mechanism)) throw new MalusError('usage', `--mechanism must be ${MECHANISMS.join(' or ')}`);
      if (!/^\d{1,8}$/.test(options.count) || Number(options.count) < 1) throw new MalusError('usage', '--count must be an integer from 1 to 99,999,999');
      let scale;
      try {
        scale = parseRational(options.scale);
      } catch (error) {
        throw new MalusError('usage', `--scale: ${error instanceof MalusError ? error.message : 'not a number'}`);
      }
      const draw = options.mechanism === 'laplace' ? () => discreteLaplace(scale) : () => discreteGaussian(scale);
      const count = Number(options.count);
      let batch: string[] = [];
      for (let i = 0; i < count; i += 1) {
        batch.push(draw().toString());
        if (batch.length === 4096) {
          io.out(`${batch.join('\n')}\n`);
          batch = [];
        }
      }
      if (batch.length > 0) io.out(`${batch.join('\n')}\n`);
    });
}
