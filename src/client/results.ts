import type { Agreement } from '../agreement/index.js';
import { fromBase64Url } from '../crypto/index.js';
import { openResult, parseResultRows, sealedCiphertext, verifyJobReceipt, type JobReceiptVerdict, type ResultRows, type SealedResult } from '../engine/index.js';
import { MalusError } from '../errors/index.js';
import { sha256Ref } from '../keyrelease/index.js';
import { parseVerifierKey } from '../ledger/index.js';
import type { JobReceiptView } from '../api/index.js';
import type { MalusClient } from './client.js';
import { getJob, getJobReceipt, getSimRootFingerprint } from './confidential.js';
import { getLogKey } from './log.js';

// A receiver opens a query result: the receipt first (log inclusion, the enclave's signature, the
// evidence binding that key, the agreement's enclave policy), then the sealed rows, whose hash
// must be the one the enclave signed. Nothing is shown before all of it holds.

export interface OpenResultOptions {
  /** The log's note verifier key; without it, the server's (printed, so it can be pinned next time). */
  readonly logKey?: string;
  /** Development CAs whose sim evidence counts; without them, the server's own, on first use. */
  readonly simRoots?: readonly string[];
  /** The agreement the receiver holds; without it, the one the receipt embeds (checked against the statement's hash). */
  readonly agreement?: Agreement;
  readonly now?: Date;
}

export interface OpenedResult {
  readonly rows: ResultRows;
  readonly verdict: Extract<JobReceiptVerdict, { ok: true }>;
  readonly receipt: JobReceiptView;
  // No count of the groups withheld under the k constraints: the enclave never reveals it.
  /** Where the trust material came from, for the user to see. */
  readonly trusted: { readonly logKey: string; readonly logKeyFromServer: boolean; readonly simRoots: readonly string[]; readonly simRootsFromServer: boolean };
}

interface QueryResultOutput {
  readonly result: { readonly sha256: string; readonly ciphertext: string };
}

function resultOutput(output: Readonly<Record<string, unknown>>): QueryResultOutput {
  const result = output.result as Partial<QueryResultOutput['result']> | undefined;
  if (typeof result?.sha256 !== 'string' || typeof result.ciphertext !== 'string') {
    throw new MalusError('signature-invalid', 'the signed statement does not describe a query result');
  }
  return { result: { sha256: result.sha256, ciphertext: result.ciphertext } };
}

export async function openJobResult(client: MalusClient, collaborationId: string, jobId: string, options: OpenResultOptions = {}): Promise<OpenedResult> {
  const keys = client.keys;
  if (keys === undefined) throw new MalusError('usage', 'opening a result needs your key file');
  const job = await getJob(client, collaborationId, jobId);
  if (job.state !== 'succeeded') throw new MalusError('conflict', `job ${jobId} is ${job.state}${job.error === null ? '' : ` (${job.error})`}: there is no result to open`);
  const sealed = (job.result as { sealed?: SealedResult } | null)?.sealed;
  if (job.kind !== 'query' || sealed === undefined) throw new MalusError('conflict', `job ${jobId} is a ${job.kind} job: it has no sealed result`);

  const receipt = await getJobReceipt(client, collaborationId, jobId);
  const logKeyText = options.logKey ?? (await getLogKey(client)).verifierKey;
  const log = parseVerifierKey(logKeyText);
  if (log === undefined) throw new MalusError('usage', `not an Ed25519 note verifier key: ${JSON.stringify(logKeyText)}`);
  const simRoots = options.simRoots ?? [await getSimRootFingerprint(client)];
  const verdict = verifyJobReceipt(receipt, {
    log,
    trust: { simRoots },
    ...(options.agreement === undefined ? {} : { agreement: options.agreement }),
    now: options.now ?? new Date(),
  });
  if (!verdict.ok) throw new MalusError('signature-invalid', `the result's receipt does not verify at step ${verdict.step}: ${verdict.reason}`);
  if (verdict.statement.job !== jobId || verdict.statement.collaboration !== collaborationId) {
    throw new MalusError('signature-invalid', 'the receipt is about another job');
  }
  const { result } = resultOutput(verdict.statement.output);
  if (sha256Ref(sealedCiphertext(sealed)) !== result.ciphertext) {
    throw new MalusError('signature-invalid', 'the sealed result is not the one the enclave signed (ciphertext hash differs)');
  }
  const secretKey = keys.encryptionSecret;
  if (fromBase64Url(keys.identity.encryptionKey)?.length !== 32) throw new MalusError('key-file-invalid', 'the key file has no X25519 key');
  const payload = await openResult({ jobId, sealed, party: keys.identity.id, secretKey });
  try {
    if (sha256Ref(payload) !== result.sha256) throw new MalusError('signature-invalid', 'the opened rows are not the ones the enclave signed (result hash differs)');
    return {
      rows: parseResultRows(payload),
      verdict,
      receipt,
      trusted: { logKey: logKeyText, logKeyFromServer: options.logKey === undefined, simRoots, simRootsFromServer: options.simRoots === undefined },
    };
  } finally {
    payload.fill(0);
  }
}
