import { join } from 'node:path';
import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { printJson, type CliIo } from '../io.js';

// `malus enclave`: the enclave worker as its own process (inside a TEE, or as a sim worker next to
// a server), and `malus enclave measure`: the measurement an agreement pins for this build.

const MEASUREMENT = /^[0-9a-f]{96}$/;

export function registerEnclave(program: Command, io: CliIo): void {
  const enclave = program
    .command('enclave')
    .description('run an enclave worker that takes jobs from a Malus server (keys and plaintext in memory only)')
    .option('--server <url>', 'the Malus server to take jobs from')
    .option('--platform <platform>', 'the TEE platform whose evidence this worker produces: sim', 'sim')
    .option('--sim-ca <file>', "the server's development CA (DATA_DIR/sim-ca.json) that signs sim evidence")
    .option('--measurement <hex>', 'sim only: report this measurement instead of the build\'s (to test a policy)')
    .option('--poll-ms <ms>', 'how often to ask for a job when the queue is empty', '500')
    .action(async (options: { server?: string; platform: string; simCa?: string; measurement?: string; pollMs: string }) => {
      if (options.server === undefined) throw new MalusError('usage', '--server is required (or use `malus enclave measure`)');
      if (options.platform !== 'sim') {
        throw new MalusError(
          'usage',
          `--platform ${options.platform}: this build produces evidence only for sim; nitro, sev-snp and tdx evidence comes from the platform's guest device`,
        );
      }
      if (options.simCa === undefined) throw new MalusError('usage', '--sim-ca is required for the sim platform (the server data directory has it)');
      if (options.measurement !== undefined && !MEASUREMENT.test(options.measurement)) {
        throw new MalusError('usage', '--measurement must be 96 lower-case hex characters (SHA-384)');
      }
      const pollMs = Number(options.pollMs);
      if (!Number.isInteger(pollMs) || pollMs < 10 || pollMs > 60_000) throw new MalusError('usage', '--poll-ms must be an integer from 10 to 60000');
      const [{ createSimAttester, simPlatformAttester }, { createClient, httpWorkerPort }, { createWorkerIdentity, measureBuild, readSimCa, startWorker }, { fromHex }] =
        await Promise.all([import('../../attestation/index.js'), import('../../client/index.js'), import('../../engine/index.js'), import('../../crypto/index.js')]);
      const ca = readSimCa(options.simCa);
      const measurement = options.measurement ?? measureBuild().measurement;
      const identity = createWorkerIdentity();
      const attester = simPlatformAttester(await createSimAttester(ca, new Date()), fromHex(measurement) ?? new Uint8Array(), { ca });
      const worker = await startWorker(
        {
          identity,
          attester,
          port: httpWorkerPort(createClient({ server: options.server, keys: identity.keys })),
          now: () => new Date(),
          log: (level, message, details) => {
            io.err(`${level}: ${message}${details === undefined ? '' : ` ${JSON.stringify(details)}`}\n`);
          },
        },
        { pollIntervalMs: pollMs },
      );
      io.err(`enclave worker ${identity.id} registered with ${options.server}\n`);
      io.err(`platform sim, measurement ${measurement}\nSIMULATED TEE: NOT CONFIDENTIAL\n`);
      const signal = await io.stopSignal();
      io.err(`received ${signal}; finishing the current job\n`);
      await worker.stop();
      io.err('stopped\n');
    });

  enclave
    .command('measure')
    .description('print the measurement of this build (SHA-384 over dist/ and the lockfile), which agreements pin')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { measureBuild, packageRoot } = await import('../../engine/index.js');
      const root = packageRoot();
      const result = measureBuild(root);
      if (options.json === true) printJson(io, { measurement: result.measurement, files: result.files, root });
      else io.out(`${result.measurement}\n`);
      if (options.json !== true) io.err(`${result.files} files measured under ${join(root, 'dist')} and package-lock.json\n`);
    });
}
