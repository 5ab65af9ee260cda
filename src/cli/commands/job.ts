import type { Command } from 'commander';
import { cancelJob, getJob, getJobReceipt, listJobs, type JobView } from '../../client/index.js';
import { MalusError } from '../../errors/index.js';
import { printJson, writeOrPrint, type CliIo } from '../io.js';
import { clientFor, withServerOptions, type CollabServerOptions } from '../server-options.js';

// `malus job list | show | receipt`: the jobs of a collaboration, and a succeeded job's receipt
// as a file for `malus verify`.

const JOB_ID = /^job-[0-9a-f]{32}$/;

export function checkJobId(id: string): string {
  if (!JOB_ID.test(id)) throw new MalusError('usage', `${JSON.stringify(id)} is not a job id (job-<32 hex>)`);
  return id;
}

interface QueryOutputView {
  query?: { hash?: string; template?: string };
  result?: { rows?: number; sha256?: string; receivers?: string[] };
}

/** Said once wherever a result's rows are counted: the enclave never says how many it withheld. */
export const WITHHELD_NOTE = 'groups under the k constraints are withheld in the enclave; how many is not revealed';

/** The lines `job show` prints; `query run` prints the same. */
export function describeJob(job: JobView): string {
  const lines = [`${job.id}  ${job.kind}  ${job.state}`, `  submitted by ${job.submittedBy} at ${job.createdAt}`, `  agreement ${job.agreement}`];
  if (job.datasets.length > 0) lines.push(`  datasets: ${job.datasets.join(', ')}`);
  if (job.error !== null) lines.push(`  error: ${job.error}`);
  const statement = job.result?.statement;
  if (statement !== undefined) {
    lines.push(`  signed by enclave ${statement.enclave.signingKey} (${statement.enclave.platform} ${statement.enclave.measurement.slice(0, 16)}…)`);
    const output = statement.output as QueryOutputView;
    if (output.query?.template !== undefined) lines.push(`  template: ${output.query.template}`);
    if (output.result !== undefined) {
      lines.push(`  result: ${output.result.rows ?? 0} rows released, sealed to ${(output.result.receivers ?? []).join(', ')}`);
      lines.push(`  (${WITHHELD_NOTE})`);
      if (output.result.sha256 !== undefined) lines.push(`  result hash: ${output.result.sha256}`);
    }
    if (statement.notice !== undefined) lines.push(`  ${statement.notice}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerJob(program: Command, io: CliIo): void {
  const job = program.command('job').description("list and inspect a collaboration's jobs, and fetch their receipts");

  withServerOptions(job.command('list').description("a collaboration's jobs, newest first"), { collab: true }).action(async (options: CollabServerOptions) => {
    const jobs = await listJobs(clientFor(io, options), options.collab);
    if (options.json === true) printJson(io, jobs);
    else if (jobs.length === 0) io.out('no jobs\n');
    else for (const j of jobs) io.out(`${j.id}\t${j.kind}\t${j.state}\t${j.createdAt}\t${j.error ?? ''}\n`);
  });

  withServerOptions(job.command('show').description('one job: its state, inputs and signed statement').argument('<job>', 'the job id'), { collab: true }).action(
    async (id: string, options: CollabServerOptions) => {
      const view = await getJob(clientFor(io, options), options.collab, checkJobId(id));
      if (options.json === true) printJson(io, view);
      else io.out(describeJob(view));
    },
  );

  withServerOptions(
    job
      .command('cancel')
      .description('withdraw a queued job you submitted (one no enclave has taken): it fails as cancelled and its privacy charge comes back')
      .argument('<job>', 'the job id'),
    { collab: true },
  ).action(async (id: string, options: CollabServerOptions) => {
    const view = await cancelJob(clientFor(io, options), options.collab, checkJobId(id));
    if (options.json === true) printJson(io, view);
    else io.out(`cancelled ${view.id}: ${view.state} (${view.error ?? ''})\n`);
  });

  withServerOptions(
    job
      .command('receipt')
      .description('the receipt of a succeeded job (log entry and proof, signed statement, enclave evidence, agreement), for malus verify')
      .argument('<job>', 'the job id')
      .option('--out <file>', 'write it here (never overwritten) instead of standard output'),
    { collab: true },
  ).action(async (id: string, options: CollabServerOptions & { out?: string }) => {
    const receipt = await getJobReceipt(clientFor(io, options), options.collab, checkJobId(id));
    writeOrPrint(io, options.out, `${JSON.stringify(receipt, null, 2)}\n`, 'receipt');
  });
}
