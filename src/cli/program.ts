import { Command } from 'commander';
import { registerAgreement } from './commands/agreement.js';
import { registerAttest } from './commands/attest.js';
import { registerBudget } from './commands/budget.js';
import { registerCollab } from './commands/collab.js';
import { registerDataset } from './commands/dataset.js';
import { registerDemo } from './commands/demo.js';
import { registerDocs } from './commands/docs.js';
import { registerDp } from './commands/dp.js';
import { registerEnclave } from './commands/enclave.js';
import { registerKeygen } from './commands/keygen.js';
import { registerKms } from './commands/kms.js';
import { registerC3r } from './commands/c3r.js';
import { registerLog } from './commands/log.js';
import { registerJob } from './commands/job.js';
import { registerPsi } from './commands/psi.js';
import { registerQuery } from './commands/query.js';
import { registerResult } from './commands/result.js';
import { registerSecagg } from './commands/secagg.js';
import { registerServe } from './commands/serve.js';
import { registerVerify } from './commands/verify.js';
import type { CliIo } from './io.js';

export const CLI_VERSION = '0.1.0';

/** The whole command tree. Building it has no side effects, so the reference can be generated from it. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('malus')
    .description('Malus: an open-source data clean room with signed agreements and a verifiable trail')
    .version(CLI_VERSION)
    .showHelpAfterError()
    .configureOutput({
      writeOut: (text) => {
        io.out(text);
      },
      writeErr: (text) => {
        io.err(text);
      },
    });
  registerDemo(program, io);
  registerKeygen(program, io);
  registerAgreement(program, io);
  registerCollab(program, io);
  registerDataset(program, io);
  registerQuery(program, io);
  registerJob(program, io);
  registerResult(program, io);
  registerBudget(program, io);
  registerLog(program, io);
  registerAttest(program, io);
  registerVerify(program, io);
  registerServe(program, io);
  registerEnclave(program, io);
  registerKms(program, io);
  registerC3r(program, io);
  registerDp(program, io);
  registerPsi(program, io);
  registerSecagg(program, io);
  registerDocs(program, io, () => program);
  return program;
}
