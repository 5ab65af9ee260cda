import type { Command } from 'commander';
import { MalusError } from '../../errors/index.js';
import { readPublicIdentity } from '../../identity/index.js';
import { cosignatureVerifier, parseVerifierKey, verifyReceipt, witnessName, type NoteVerifier } from '../../ledger/index.js';
import { fromBase64Url } from '../../crypto/index.js';
import type { Agreement } from '../../agreement/index.js';
import { readTextFile, type CliIo } from '../io.js';
import { readAgreementFile } from './agreement.js';

const FINGERPRINT = /^[0-9a-f]{64}$/;
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface VerifyOptions {
  logKey: string;
  witness?: string[];
  minCosignatures: string;
  agreement?: string;
  simRoot?: string[];
  json?: boolean;
}

interface LogTrust {
  readonly log: NoteVerifier;
  readonly witnesses: NoteVerifier[];
  readonly minCosignatures: number;
}

function logTrustOf(options: VerifyOptions): LogTrust {
  const log = parseVerifierKey(options.logKey);
  if (log === undefined) throw new MalusError('usage', `--log-key is not an Ed25519 note verifier key: ${JSON.stringify(options.logKey)}`);
  if (!/^\d{1,3}$/.test(options.minCosignatures)) throw new MalusError('usage', '--min-cosignatures must be a small integer');
  const witnesses = (options.witness ?? []).map((path) => {
    const identity = readPublicIdentity(path);
    const key = fromBase64Url(identity.signingKey);
    if (key === undefined) throw new MalusError('key-file-invalid', `${path}: signing key is malformed`);
    return cosignatureVerifier(witnessName(identity.id), key);
  });
  return { log, witnesses, minCosignatures: Number(options.minCosignatures) };
}

function readReceipt(file: string): unknown {
  try {
    return JSON.parse(readTextFile(file, 'receipt'));
  } catch (error) {
    if (error instanceof MalusError) throw error;
    throw new MalusError('invalid-input', `receipt ${file} is not JSON`);
  }
}

/** A job receipt carries the statement its job.finished entry records (docs/log.md, "Job receipts"). */
const isJobReceipt = (receipt: unknown): boolean => receipt !== null && typeof receipt === 'object' && 'statement' in receipt;

function verifyPlain(io: CliIo, receipt: unknown, trust: LogTrust, json: boolean): void {
  const verdict = verifyReceipt(receipt, trust);
  if (json) io.out(`${JSON.stringify(verdict, null, 2)}\n`);
  if (!verdict.ok) throw new MalusError('signature-invalid', `receipt does not verify at step ${verdict.step}: ${verdict.reason}`);
  if (json) return;
  io.out(`receipt verified: entry ${verdict.index} (${verdict.event.type}, ${verdict.event.collaboration})\n`);
  io.out(`  in checkpoint ${verdict.checkpoint.origin} size ${verdict.checkpoint.size}\n`);
  io.out(`  cosigned by: ${verdict.cosignedBy.length === 0 ? 'no listed witness' : verdict.cosignedBy.join(', ')}\n`);
  if ('agreement' in verdict.event && verdict.event.agreement !== null) io.out(`  agreement: ${verdict.event.agreement}\n`);
}

async function verifyJob(io: CliIo, receipt: unknown, trust: LogTrust, options: VerifyOptions): Promise<void> {
  const simRoots = options.simRoot ?? [];
  for (const root of simRoots) {
    if (!FINGERPRINT.test(root)) throw new MalusError('usage', `--sim-root ${root}: expected the SHA-256 fingerprint of a development CA (64 lower-case hex)`);
  }
  const given: Agreement | undefined = options.agreement === undefined ? undefined : readAgreementFile(options.agreement);
  // The engine loads DuckDB: only a job receipt pays for it.
  const { verifyJobReceipt } = await import('../../engine/index.js');
  const verdict = verifyJobReceipt(receipt, {
    ...trust,
    trust: { simRoots },
    ...(given === undefined ? {} : { agreement: given }),
    now: new Date(),
  });
  if (options.json === true) io.out(`${JSON.stringify(verdict, null, 2)}\n`);
  if (!verdict.ok) {
    const platform = (receipt as { enclave?: { platform?: unknown } }).enclave?.platform;
    const hint =
      verdict.step === 'evidence' && platform === 'sim' && simRoots.length === 0
        ? '; sim evidence verifies only under a development CA you trust: pass --sim-root <sha256> (its fingerprint; GET /v1/attestation/sim-root)'
        : '';
    throw new MalusError('signature-invalid', `job receipt does not verify at step ${verdict.step}: ${verdict.reason}${hint}`);
  }
  if (options.json === true) return;
  const { event, statement, evidence, checkpoint } = verdict;
  const out = (line: string): void => {
    io.out(`${line}\n`);
  };
  out(`job receipt verified: entry ${verdict.index} (${event.type}, ${event.collaboration})`);
  if (verdict.simulated) {
    out('  !!! SIMULATED TEE: NOT CONFIDENTIAL !!! the sim platform only simulates an enclave: whoever holds');
    out('      its development CA key can make such evidence, and the operator could see the data');
  }
  out(`  in checkpoint ${checkpoint.origin} size ${checkpoint.size}`);
  out(`  cosigned by: ${verdict.cosignedBy.length === 0 ? 'no listed witness' : verdict.cosignedBy.join(', ')}`);
  out(`  job: ${statement.job} (${statement.kind}) ${event.outcome} at ${statement.time}`);
  out(`  statement signed by enclave key ${statement.enclave.signingKey}`);
  out(`  evidence: ${evidence.platform}, measurement ${evidence.measurement} (certificates checked at ${evidence.verifiedAt})`);
  out(`  agreement: ${verdict.agreement.hash} (${verdict.agreement.source === 'given' ? `from ${options.agreement ?? '--agreement'}` : 'embedded in the receipt: pass --agreement FILE to check against your own copy'})`);
  out(`  result: ${verdict.result}`);
}

export function registerVerify(program: Command, io: CliIo): void {
  program
    .command('verify')
    .description('check a receipt offline: the log signature, the entry, its inclusion proof and witness cosignatures; for a job receipt also the signed result, the enclave evidence and the agreement')
    .argument('<receipt>', 'the receipt file (malus.receipt/v1)')
    .requiredOption('--log-key <vkey>', "the log's note verifier key (malus log checkpoint shows the origin; GET /v1/log/key)")
    .option('--witness <files...>', 'key files or public identities of parties whose cosignatures count')
    .option('--min-cosignatures <n>', 'how many of those witnesses must have cosigned', '0')
    .option('--agreement <file>', 'job receipts: the agreement to check the job against (default: the one the receipt embeds)')
    .option('--sim-root <sha256>', 'job receipts: trust sim evidence under this development CA fingerprint (repeatable; without it sim evidence does not verify)', collect)
    .option('--json', 'print the verdict as JSON')
    .action(async (file: string, options: VerifyOptions) => {
      const trust = logTrustOf(options);
      const receipt = readReceipt(file);
      if (isJobReceipt(receipt)) {
        await verifyJob(io, receipt, trust, options);
        return;
      }
      if (options.agreement !== undefined || options.simRoot !== undefined) {
        throw new MalusError('usage', `--agreement and --sim-root apply to job receipts only: ${file} carries no result statement`);
      }
      verifyPlain(io, receipt, trust, options.json === true);
    });
}
