import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { readPublicIdentity } from '../../identity/index.js';
import { cosignatureVerifier, parseVerifierKey, verifyReceipt, witnessName } from '../../ledger/index.js';
import { fromBase64Url } from '../../crypto/index.js';
import { readTextFile, type CliIo } from '../io.js';

export function registerVerify(program: Command, io: CliIo): void {
  program
    .command('verify')
    .description('check a receipt offline: the log signature, the entry, its inclusion proof and witness cosignatures')
    .argument('<receipt>', 'the receipt file (malus.receipt/v1)')
    .requiredOption('--log-key <vkey>', "the log's note verifier key (malus log checkpoint shows the origin; GET /v1/log/key)")
    .option('--witness <files...>', 'key files or public identities of parties whose cosignatures count')
    .option('--min-cosignatures <n>', 'how many of those witnesses must have cosigned', '0')
    .option('--json', 'print the verdict as JSON')
    .action((file: string, options: { logKey: string; witness?: string[]; minCosignatures: string; json?: boolean }) => {
      const log = parseVerifierKey(options.logKey);
      if (log === undefined) throw new MalusError('usage', `--log-key is not an Ed25519 note verifier key: ${JSON.stringify(options.logKey)}`);
      if (!/^\d{1,3}$/.test(options.minCosignatures)) throw new MalusError('usage', '--min-cosignatures must be a small integer');
      const witnesses = (options.witness ?? []).map((path) => {
        const identity = readPublicIdentity(path);
        const key = fromBase64Url(identity.signingKey);
        if (key === undefined) throw new MalusError('key-file-invalid', `${path}: signing key is malformed`);
        return cosignatureVerifier(witnessName(identity.id), key);
      });
      let receipt: unknown;
      try {
        receipt = JSON.parse(readTextFile(file, 'receipt'));
      } catch (error) {
        if (error instanceof MalusError) throw error;
        throw new MalusError('invalid-input', `receipt ${file} is not JSON`);
      }
      const verdict = verifyReceipt(receipt, { log, witnesses, minCosignatures: Number(options.minCosignatures) });
      if (options.json === true) io.out(`${JSON.stringify(verdict, null, 2)}\n`);
      if (!verdict.ok) throw new MalusError('signature-invalid', `receipt does not verify at step ${verdict.step}: ${verdict.reason}`);
      if (options.json !== true) {
        io.out(`receipt verified: entry ${verdict.index} (${verdict.event.type}, ${verdict.event.collaboration})\n`);
        io.out(`  in checkpoint ${verdict.checkpoint.origin} size ${verdict.checkpoint.size}\n`);
        io.out(`  cosigned by: ${verdict.cosignedBy.length === 0 ? 'no listed witness' : verdict.cosignedBy.join(', ')}\n`);
        if ('agreement' in verdict.event && verdict.event.agreement !== null) io.out(`  agreement: ${verdict.event.agreement}\n`);
      }
    });
}
