import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { generatePartyKeys, readPublicIdentity, writeKeyFile } from '../../identity/index.js';
import { passphraseFromEnv, printJson, type CliIo } from '../io.js';

interface KeygenOptions {
  name?: string;
  out?: string;
  public?: string;
  passphraseEnv?: string;
}

export function registerKeygen(program: Command, io: CliIo): void {
  program
    .command('keygen')
    .description('make a party identity (Ed25519 signing key, X25519 encryption key), or print its public half')
    .option('--name <name>', 'the party name, e.g. "Example Advertiser"')
    .option('--out <file>', 'write the key file here (mode 0600; never overwritten)')
    .option('--passphrase-env <var>', 'seal the secrets with the passphrase in this environment variable (scrypt + AES-256-GCM)')
    .option('--public <file>', 'print the public identity of a key file as JSON')
    .action((options: KeygenOptions) => {
      if (options.public !== undefined) {
        if (options.name !== undefined || options.out !== undefined) {
          throw new MalusError('usage', '--public cannot be combined with --name or --out');
        }
        printJson(io, readPublicIdentity(options.public));
        return;
      }
      if (options.name === undefined || options.out === undefined) {
        throw new MalusError('usage', 'keygen needs --name NAME and --out FILE (or --public FILE)');
      }
      const passphrase = passphraseFromEnv(io, options.passphraseEnv);
      const keys = generatePartyKeys(options.name);
      writeKeyFile(options.out, keys, passphrase === undefined ? {} : { passphrase });
      io.out(`wrote ${options.out} for ${keys.identity.name} (party id ${keys.identity.id})\n`);
    });
}
