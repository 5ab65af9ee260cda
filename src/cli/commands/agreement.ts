import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  agreementHash,
  agreementSignatureSchema,
  assertAgreement,
  collaborationStatus,
  exampleAgreementYaml,
  parseAgreementText,
  signAgreement,
  type Agreement,
  type AgreementSignature,
  type VersionEvidence,
} from '../../agreement/index.js';
import { measureBuild } from '../../engine/index.js';
import { MalusError, issuesFromZod } from '../../errors/index.js';
import { generatePartyKeys, readPublicIdentity, type PublicIdentity } from '../../identity/index.js';
import { loadKeys, printJson, readTextFile, writeOrPrint, type CliIo } from '../io.js';

export function readAgreementFile(path: string): Agreement {
  return assertAgreement(parseAgreementText(readTextFile(path, 'agreement'), path), path);
}

export function readSignatureFile(path: string): AgreementSignature {
  let json: unknown;
  try {
    json = JSON.parse(readTextFile(path, 'signature'));
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('invalid-input', `signature file ${path} is not JSON`);
  }
  const parsed = agreementSignatureSchema.safeParse(json);
  if (!parsed.success) {
    throw new MalusError('invalid-input', `${path} is not a malus.signature/v1 file`, { issues: issuesFromZod(parsed.error, json) });
  }
  return parsed.data;
}

/** Signature files from files and directories (a directory contributes its `*.sig.json` files). */
function collectSignatures(paths: readonly string[]): AgreementSignature[] {
  const files: string[] = [];
  for (const path of paths) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (error) {
      throw new MalusError('file-unreadable', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (isDirectory) {
      for (const name of readdirSync(path).sort()) if (name.endsWith('.sig.json')) files.push(join(path, name));
    } else {
      files.push(path);
    }
  }
  return files.map(readSignatureFile);
}

/** A party for `agreement init`: from a key file or public identity file, or a fresh placeholder. */
function exampleParty(path: string | undefined, fallbackName: string): Omit<PublicIdentity, 'format'> {
  if (path !== undefined) return readPublicIdentity(path);
  return generatePartyKeys(fallbackName).identity;
}

function parseTime(text: string | undefined, flag: string): Date {
  if (text === undefined) return new Date();
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw new MalusError('usage', `${flag} must be an RFC 3339 time, not ${JSON.stringify(text)}`);
  return new Date(time);
}


export function registerAgreement(program: Command, io: CliIo): void {
  const agreement = program.command('agreement').description('draft, check, hash, sign and verify collaboration agreements');

  agreement
    .command('init')
    .description('write a complete, commented example agreement (an advertiser and a publisher measuring reach and conversions)')
    .option('--out <file>', 'write here instead of standard output (never overwritten)')
    .option('--advertiser <file>', "the advertiser's key file or public identity (default: a fresh placeholder)")
    .option('--publisher <file>', "the publisher's key file or public identity (default: a fresh placeholder)")
    .option('--operator <file>', "the operator's key file or public identity (default: a fresh placeholder)")
    .option('--id <id>', 'the collaboration id', 'campaign-measurement')
    .action((options: { out?: string; advertiser?: string; publisher?: string; operator?: string; id: string }) => {
      const text = exampleAgreementYaml(
        {
          advertiser: exampleParty(options.advertiser, 'Example Advertiser'),
          publisher: exampleParty(options.publisher, 'Example Publisher'),
          operator: exampleParty(options.operator, 'Example Operator'),
        },
        // The example pins this build's sim measurement, so it works with `malus serve` as it is.
        { id: options.id, validFrom: new Date(), measurements: [measureBuild().measurement] },
      );
      // Never hand out an example that would not validate.
      assertAgreement(parseAgreementText(text), 'example agreement');
      writeOrPrint(io, options.out, text, 'agreement');
    });

  agreement
    .command('validate')
    .description('check an agreement file (YAML or JSON); print every error with its JSON path')
    .argument('<file>', 'the agreement')
    .action((file: string) => {
      const parsed = readAgreementFile(file);
      io.out(`${file}: valid ${parsed.format} (${parsed.id} v${parsed.version}, ${agreementHash(parsed)})\n`);
    });

  agreement
    .command('hash')
    .description('print sha256:<hex> of the RFC 8785 canonical JSON form: the value every signer signs')
    .argument('<file>', 'the agreement')
    .action((file: string) => {
      io.out(`${agreementHash(readAgreementFile(file))}\n`);
    });

  agreement
    .command('sign')
    .description("sign the agreement's hash with a party key (detached Ed25519 signature, malus.signature/v1)")
    .argument('<file>', 'the agreement')
    .requiredOption('--key <keyfile>', 'the signing party key file')
    .option('--passphrase-env <var>', 'environment variable holding the key file passphrase')
    .option('--out <sigfile>', 'write the signature here instead of standard output')
    .action((file: string, options: { key: string; passphraseEnv?: string; out?: string }) => {
      const parsed = readAgreementFile(file);
      const keys = loadKeys(io, options.key, options.passphraseEnv);
      const party = parsed.parties.find((p) => p.id === keys.identity.id);
      if (party === undefined) {
        throw new MalusError('signature-not-party', `key ${options.key} (party ${keys.identity.id}) is not a party to ${parsed.id}`);
      }
      if (!party.roles.includes('signer')) {
        throw new MalusError('signature-not-signer', `party ${party.id} (${party.name}) does not have the signer role`);
      }
      if (party.signingKey !== keys.identity.signingKey) {
        throw new MalusError('signature-not-party', `the agreement lists a different signing key for party ${party.id}`);
      }
      const signature = signAgreement(parsed, agreementHash(parsed), { partyId: keys.identity.id, signingSecret: keys.signingSecret }, new Date());
      writeOrPrint(io, options.out, `${JSON.stringify(signature, null, 2)}\n`, 'signature');
    });

  agreement
    .command('verify')
    .description('check signatures and print who has signed and the state: draft, proposed, active, expired or superseded')
    .argument('<file>', 'the agreement')
    .requiredOption('--signatures <paths...>', 'signature files, or directories of *.sig.json files')
    .option('--successor <files...>', 'later versions that amend this one (their signatures come from --signatures too)')
    .option('--at <time>', 'verify as of this RFC 3339 time (default: now)')
    .option('--require-active', 'exit 1 unless the agreement is active')
    .option('--json', 'print the result as JSON')
    .action((file: string, options: { signatures: string[]; successor?: string[]; at?: string; requireActive?: boolean; json?: boolean }) => {
      const at = parseTime(options.at, '--at');
      const main = readAgreementFile(file);
      const successors = (options.successor ?? []).map(readAgreementFile);
      const signatures = collectSignatures(options.signatures);
      const hashes = new Set([main, ...successors].map(agreementHash));
      const mainHash = agreementHash(main);
      // Signatures over hashes we were not given are reported against the main agreement.
      const evidence: VersionEvidence[] = [main, ...successors].map((a) => {
        const h = agreementHash(a);
        return { agreement: a, signatures: signatures.filter((s) => s.hash === h || (h === mainHash && !hashes.has(s.hash))) };
      });
      const status = collaborationStatus(evidence, at)[0];
      if (status === undefined) throw new MalusError('internal', 'no status computed');
      const nameOf = (id: string): string => main.parties.find((p) => p.id === id)?.name ?? 'unknown party';
      if (options.json === true) {
        printJson(io, status);
      } else {
        io.out(`${main.id} v${main.version} ${status.hash}\n`);
        for (const id of status.signed) io.out(`  signed    ${id}  ${nameOf(id)}\n`);
        for (const id of status.missing) io.out(`  missing   ${id}  ${nameOf(id)}\n`);
        for (const r of status.rejected) io.out(`  rejected  ${r.signer}  ${r.code}: ${r.reason}\n`);
        if (status.supersededBy !== null) io.out(`  superseded by ${status.supersededBy}\n`);
        io.out(`state: ${status.state}\n`);
      }
      if (status.rejected.length > 0) {
        throw new MalusError(status.rejected[0]?.code ?? 'signature-invalid', `${status.rejected.length} signature(s) refused`);
      }
      if (options.requireActive === true && status.state !== 'active') {
        throw new MalusError('signature-invalid', `agreement is ${status.state}, not active`);
      }
    });
}
