import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { loadKeys, type CliIo } from '../io.js';
import { parseListen } from './serve.js';

// `malus kms serve`: a party's own key-release service, for a party that keeps its data keys on its
// own premises. The agreement names it under keyRelease.endpoints so enclaves know to ask it.

export function registerKms(program: Command, io: CliIo): void {
  const kms = program.command('kms').description("run a party's own key-release service");
  kms
    .command('serve')
    .description('serve key registration and attestation-gated release for your datasets; decisions go to the collaboration log')
    .requiredOption('--data-dir <dir>', 'where the wrapped keys and the master key live (created with mode 0700)')
    .requiredOption('--server <url>', 'the Malus server whose agreements, jobs and log this service follows')
    .requiredOption('--key <keyfile>', 'your party key file (this service acts as you)')
    .option('--passphrase-env <var>', 'environment variable holding the key file passphrase')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8788')
    .option('--public-url <url>', 'the URL enclaves and providers use, when behind a proxy')
    .action(async (options: { dataDir: string; server: string; key: string; passphraseEnv?: string; listen: string; publicUrl?: string }) => {
      const { host, port } = parseListen(options.listen);
      const keys = loadKeys(io, options.key, options.passphraseEnv);
      const { startKmsServer } = await import('../../server/index.js');
      let kms;
      try {
        kms = await startKmsServer({
          dataDir: options.dataDir,
          host,
          port,
          server: options.server,
          keys,
          logger: { level: 'info', redact: { paths: ['req.headers', 'res.headers'], remove: true } },
          ...(options.publicUrl === undefined ? {} : { publicBaseUrl: options.publicUrl }),
        });
      } catch (error) {
        if (error instanceof MalusError && error.code === 'server-unreachable') {
          throw new MalusError('server-unreachable', `${error.message}; the key-release service needs it to read agreements`);
        }
        throw error;
      }
      io.err(`malus key-release service for ${keys.identity.name} (${keys.identity.id}) on ${kms.url}, following ${options.server}\n`);
      const signal = await io.stopSignal();
      io.err(`received ${signal}; finishing in-flight requests\n`);
      await kms.close();
      io.err('stopped\n');
    });
}
