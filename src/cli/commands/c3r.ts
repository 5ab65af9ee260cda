import type { Command } from 'commander';
import type * as C3rModule from '../../ingest/index.js';
import { readTextFile, type CliIo } from '../io.js';

// `malus c3r encrypt|decrypt`: AWS Clean Rooms C3R files, with C3R's own option names so a C3R
// command line carries over. The shared secret comes from C3R_SHARED_SECRET, as in C3R; its value
// is never printed. C3R reads the collaboration settings from the Clean Rooms API; here they are
// flags, each false unless given (C3R's high-assurance defaults). The C3R code (and DuckDB with
// it) loads only when a c3r command runs, so other commands start as fast as before.

const SECRET_VARIABLE = 'C3R_SHARED_SECRET';

interface CommonFlags {
  id: string;
  output?: string;
  fileFormat?: string;
  overwrite?: boolean;
  dryRun?: boolean;
  csvInputNULLValue?: string;
  csvOutputNULLValue?: string;
}

interface EncryptFlags extends CommonFlags {
  schema: string;
  allowCleartext?: boolean;
  allowDuplicates?: boolean;
  allowJoinsOnColumnsWithDifferentNames?: boolean;
  preserveNulls?: boolean;
}

interface DecryptFlags extends CommonFlags {
  failOnFingerprintColumns?: boolean;
}

function commonOptions(command: Command): Command {
  return command
    .requiredOption('--id <uuid>', 'the collaboration id (C3R uses it as the salt)')
    .option('--output <file>', "where to write (default, as C3R: the input's file name with .out before its extension, in the current folder); written in full or not at all")
    .option('--fileFormat <format>', 'csv or parquet (default: from the input file name); the output has the same format')
    .option('--overwrite', 'replace the output file if it exists')
    .option('--dryRun', 'check the options, files and secret, but read and write no data')
    .option('--csvInputNULLValue <value>', 'how NULL is written in the input CSV (default: a blank value or "")')
    .option('--csvOutputNULLValue <value>', 'how NULL is written in the output CSV (default: nothing, as in ,,)');
}

type C3r = typeof C3rModule;

const loadC3r = (): Promise<C3r> => import('../../ingest/index.js');

function secretFromEnv(c3r: C3r, io: CliIo): Buffer {
  return c3r.parseC3rSharedSecret(io.env[SECRET_VARIABLE], `$${SECRET_VARIABLE}`);
}

function inputOptions(input: string, flags: CommonFlags, secret: Buffer) {
  return {
    input,
    secret,
    collaborationId: flags.id,
    ...(flags.output === undefined ? {} : { output: flags.output }),
    ...(flags.fileFormat === undefined ? {} : { fileFormat: flags.fileFormat }),
    overwrite: flags.overwrite === true,
    dryRun: flags.dryRun === true,
    ...(flags.csvInputNULLValue === undefined ? {} : { csvInputNullValue: flags.csvInputNULLValue }),
    ...(flags.csvOutputNULLValue === undefined ? {} : { csvOutputNullValue: flags.csvOutputNULLValue }),
  };
}

export function registerC3r(program: Command, io: CliIo): void {
  const group = program.command('c3r').description('AWS Clean Rooms C3R: encrypt data for a collaboration, decrypt its results');

  commonOptions(
    group
      .command('encrypt')
      .description(`encrypt a CSV or Parquet file as C3R does (shared secret in $${SECRET_VARIABLE}, base64)`)
      .argument('<input>', 'the cleartext CSV or Parquet file')
      .requiredOption('--schema <file>', 'the C3R table schema (JSON) saying which columns are cleartext, sealed or fingerprint'),
  )
    .option('--allowCleartext', 'the collaboration allows cleartext columns')
    .option('--allowDuplicates', 'the collaboration allows repeated values in fingerprint columns')
    .option('--allowJoinsOnColumnsWithDifferentNames', 'the collaboration allows joins on fingerprint columns of different names')
    .option('--preserveNulls', 'the collaboration keeps NULL as NULL instead of encrypting it')
    .action(async (input: string, flags: EncryptFlags) => {
      const c3r = await loadC3r();
      const schema = c3r.parseC3rSchema(readTextFile(flags.schema, 'schema'), `schema ${flags.schema}`);
      const settings: C3rModule.C3rSettings = {
        allowCleartext: flags.allowCleartext === true,
        allowDuplicates: flags.allowDuplicates === true,
        allowJoinsOnColumnsWithDifferentNames: flags.allowJoinsOnColumnsWithDifferentNames === true,
        preserveNulls: flags.preserveNulls === true,
      };
      const summary = await c3r.c3rEncryptFile({ ...inputOptions(input, flags, secretFromEnv(c3r, io)), schema, settings });
      const kinds = `${summary.sealedColumns} sealed, ${summary.fingerprintColumns} fingerprint, ${summary.cleartextColumns} cleartext`;
      io.out(
        summary.dryRun
          ? `dry run: ${input} would be encrypted to ${summary.output} with ${summary.columns} columns (${kinds}); no data was read or written\n`
          : `encrypted ${summary.rows} rows, ${summary.columns} columns (${kinds}) to ${summary.output}\n`,
      );
    });

  commonOptions(
    group
      .command('decrypt')
      .description(`decrypt a CSV or Parquet file C3R encrypted: every sealed value is opened (shared secret in $${SECRET_VARIABLE})`)
      .argument('<input>', 'the encrypted CSV or Parquet file, e.g. query results'),
  )
    .option('--failOnFingerprintColumns', 'refuse a file with fingerprint values instead of copying them unchanged')
    .action(async (input: string, flags: DecryptFlags) => {
      const c3r = await loadC3r();
      const summary = await c3r.c3rDecryptFile({
        ...inputOptions(input, flags, secretFromEnv(c3r, io)),
        failOnFingerprintColumns: flags.failOnFingerprintColumns === true,
      });
      if (summary.dryRun) {
        io.out(`dry run: ${input} would be decrypted to ${summary.output}; no data was read or written\n`);
        return;
      }
      const fingerprints = summary.fingerprintColumns === 0 ? '' : `; ${summary.fingerprintColumns} fingerprint columns copied unchanged`;
      io.out(
        `decrypted ${summary.rows} rows, ${summary.columns} columns (${summary.sealedCells} sealed values in ${summary.sealedColumns} columns${fingerprints}) to ${summary.output}\n`,
      );
    });
}
