import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { agreementHash } from '../../agreement/index.js';
import { toBase64 } from '../../crypto/index.js';
import { MalusError } from '../../errors/index.js';
import {
  CSV_ENCODINGS,
  INPUT_FORMATS,
  PAYLOAD_COMPRESSIONS,
  JOIN_SECRET_BYTES,
  deriveJoinKey,
  joinKeyCommitment,
  parseC3rSharedSecret,
  parseJoinSecret,
  prepareDataset,
  type CsvEncoding,
  type InputFormat,
  type PayloadCompression,
} from '../../ingest/index.js';
import { loadKeys, printJson, type CliIo } from '../io.js';
import { collaborationIdOption } from '../server-options.js';
import { readAgreementFile } from './agreement.js';

interface PrepareOptions {
  agreement: string;
  table: string;
  input: string;
  format?: InputFormat;
  key: string;
  out: string;
  dataset?: string;
  delimiter?: string;
  quote?: string;
  escape?: string;
  header: boolean;
  nullString?: string;
  encoding?: CsvEncoding;
  compression?: PayloadCompression;
  joinSecretEnv: string;
  passphraseEnv?: string;
  json?: boolean;
}

const JOIN_SECRET_ENV = 'MALUS_JOIN_SECRET';
/** C3R's own variable for the collaboration's shared secret (standard base64), as `malus c3r` reads it. */
const C3R_SECRET_ENV = 'C3R_SHARED_SECRET';

function joinSecretFrom(io: CliIo, variable: string): Uint8Array | undefined {
  const value = io.env[variable];
  if (value === undefined || value === '') return undefined;
  return parseJoinSecret(value, `environment variable ${variable}`);
}

/** `malus dataset prepare` and `malus dataset join-secret`, registered under the `dataset` command group. */
export function registerDatasetPrepare(dataset: Command, io: CliIo): void {
  dataset
    .command('prepare')
    .description("check a table against the agreement, pseudonymize its join keys and encrypt it, on the provider's own machine")
    .requiredOption('--agreement <file>', 'the agreement (JSON or YAML)')
    .requiredOption('--table <name>', 'the table of the agreement this input fills')
    .requiredOption('--input <file>', 'the rows: CSV, Parquet or JSON lines')
    .addOption(new Option('--format <format>', 'the input format (default: from the file extension, else csv)').choices(INPUT_FORMATS))
    .requiredOption('--key <file>', "your key file (you must own the table)")
    .requiredOption('--out <dir>', 'write dataset.mds, manifest.json and data-key.json here (a new or empty folder)')
    .option('--dataset <id>', 'the dataset id (default: the table name)')
    .option('--delimiter <char>', 'CSV field delimiter (default ,)')
    .option('--quote <char>', 'CSV quote character (default ")')
    .option('--escape <char>', 'CSV escape character (default: the quote)')
    .option('--no-header', 'the CSV has no header row: columns are in the agreement order')
    .option('--null-string <text>', 'the CSV text that means NULL (default: an empty unquoted field)')
    .addOption(new Option('--encoding <name>', 'CSV text encoding (default utf-8)').choices(CSV_ENCODINGS))
    .addOption(new Option('--compression <codec>', 'the Parquet codec inside the ciphertext (default uncompressed: pseudonyms do not compress; zstd for wide text over slow links)').choices(PAYLOAD_COMPRESSIONS))
    .option('--join-secret-env <var>', "the environment variable holding the providers' shared join secret (base64 of 32 bytes)", JOIN_SECRET_ENV)
    .option('--passphrase-env <var>', 'the environment variable holding the key file passphrase')
    .option('--json', 'print the signed manifest as JSON')
    .action(async (options: PrepareOptions) => {
      const agreement = readAgreementFile(options.agreement);
      const keys = loadKeys(io, options.key, options.passphraseEnv);
      const joinSecret = joinSecretFrom(io, options.joinSecretEnv);
      // Read only for a table whose sealed columns the enclave may open; prepare refuses when it is missing.
      const c3rValue = agreement.tables.find((t) => t.name === options.table)?.c3r?.decryptInEnclave === true ? io.env[C3R_SECRET_ENV] : undefined;
      const c3rSecret = c3rValue === undefined || c3rValue === '' ? undefined : parseC3rSharedSecret(c3rValue, `environment variable ${C3R_SECRET_ENV}`);
      const started = performance.now();
      const prepared = await prepareDataset({
        agreement,
        agreementHash: agreementHash(agreement),
        table: options.table,
        input: options.input,
        ...(options.format === undefined ? {} : { format: options.format }),
        dialect: {
          header: options.header,
          ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
          ...(options.quote === undefined ? {} : { quote: options.quote }),
          ...(options.escape === undefined ? {} : { escape: options.escape }),
          ...(options.nullString === undefined ? {} : { nullString: options.nullString }),
          ...(options.encoding === undefined ? {} : { encoding: options.encoding }),
        },
        keys,
        joinSecretSource: options.joinSecretEnv,
        out: options.out,
        ...(options.dataset === undefined ? {} : { dataset: options.dataset }),
        ...(options.compression === undefined ? {} : { compression: options.compression }),
        ...(joinSecret === undefined ? {} : { joinSecret }),
        ...(c3rSecret === undefined ? {} : { c3rSecret }),
      }).finally(() => {
        joinSecret?.fill(0);
        c3rSecret?.fill(0);
      });
      if (options.json === true) {
        printJson(io, prepared.signed);
        return;
      }
      const m = prepared.signed.manifest;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      io.out(`prepared dataset ${m.dataset} of table ${m.table}: ${m.rows} rows, ${m.ciphertext.bytes} bytes of ciphertext in ${seconds} s\n`);
      io.out(`  ciphertext ${m.ciphertext.sha256}\n  manifest signed by ${m.owner}; data key sealed to your own key\n  written to ${prepared.dir}\n`);
    });

  dataset
    .command('join-secret')
    .description("make the providers' shared join secret and the commitment the agreement records (joinKey.commitment)")
    .requiredOption('--collab <id>', 'the collaboration id: the join key is derived per collaboration', collaborationIdOption)
    .option('--check-env <var>', 'instead of making one, print the commitment of the secret in this environment variable')
    .action((options: { collab: string; checkEnv?: string }) => {
      let secret: Uint8Array;
      if (options.checkEnv !== undefined) {
        const given = joinSecretFrom(io, options.checkEnv);
        if (given === undefined) throw new MalusError('usage', `environment variable ${options.checkEnv} is not set`);
        secret = given;
      } else {
        secret = randomBytes(JOIN_SECRET_BYTES);
        io.out(`secret: ${toBase64(secret)}\n`);
      }
      const commitment = joinKeyCommitment(deriveJoinKey(secret, options.collab), options.collab);
      secret.fill(0);
      io.out(`commitment: ${commitment}\n`);
    });
}
