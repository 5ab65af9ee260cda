import { fromBase64Url } from '../crypto/index.js';
import type { Agreement } from '../agreement/index.js';
import { MalusError, isMalusError } from '../errors/index.js';
import { verifyManifest, type SignedManifest } from '../ingest/index.js';
import { keyCommitment, sha256Ref } from '../keyrelease/index.js';
import { cryptoBytes, isRefundable, type RandomBytes } from '../dp/index.js';
import { DP_SEED_PARAMETER, RELEASE_COLUMN, checkQuery, type BoundParameter, type CheckedQuery, type QueryPrivacy, type QueryRequest } from '../rules/index.js';
import { privateRelease } from './dp-release.js';
import { encodeResultRows, sealResult, sealedCiphertext, type ResultColumn, type ResultReceiver, type ResultValue, type SealedResult } from './result.js';
import { DEFAULT_QUERY_LIMITS, openSandbox, type QueryLimits, type Sandbox, type SandboxLimits } from './sandbox.js';
import type { QueryOutput } from './statement.js';

// A query job inside the enclave (docs/enclave.md): the enclave checks the query against the
// agreement itself, binds each table it reads to the dataset the job names, decrypts those into a
// locked sandbox, runs the rewritten SQL (which keeps only the groups its k constraints release),
// fails closed if any row's release column is not true, and seals the rows to the agreement's
// receivers. The statement it signs binds all of it, and says nothing of the groups withheld.

/** What a claimed query job carries, as the worker receives it (see ClaimedJob). */
export interface QueryJobSpec {
  readonly submittedBy: string;
  readonly query?: QueryRequest;
  readonly tables?: Readonly<Record<string, string>>;
  readonly datasets: readonly string[];
}

export interface QueryPlan {
  readonly checked: CheckedQuery;
  readonly query: QueryRequest;
  /** Each table the query reads with the dataset bound to it, in table order. */
  readonly bindings: readonly { readonly table: string; readonly dataset: string }[];
}

/**
 * The enclave's own check of a query job, before it asks for any key: the submitter is an analyst
 * of the agreement, the agreement allows the query, and the job binds exactly the tables it reads.
 */
export async function planQuery(job: QueryJobSpec, agreement: Agreement): Promise<QueryPlan> {
  const { query } = job;
  if (query === undefined) throw new MalusError('invalid-input', 'the query job carries no query');
  const submitter = agreement.parties.find((p) => p.id === job.submittedBy);
  if (submitter?.roles.includes('analyst') !== true) throw new MalusError('forbidden', `${job.submittedBy} is not an analyst of the agreement`);
  const checked = await checkQuery(agreement, query, { as: job.submittedBy });
  if (!checked.allowed || checked.rewritten === '') {
    const codes = [...new Set(checked.violations.map((v) => v.code))];
    // The server checked it too; the enclave refuses the same way, with the violations.
    throw new MalusError('query-denied', `the query breaks the agreement${codes.length > 0 ? ` (${codes.join(', ')})` : ''}`, {
      violations: checked.violations.map((v) => ({ code: v.code, message: v.message, position: v.position })),
    });
  }
  if (checked.tables.length === 0) throw new MalusError('invalid-input', 'the query reads no table');
  const tables = job.tables ?? {};
  const bindings = checked.tables.map((table) => {
    const dataset = Object.hasOwn(tables, table) ? tables[table] : undefined;
    if (dataset === undefined) throw new MalusError('invalid-input', `the job binds no dataset to table ${table}, which the query reads`);
    return { table, dataset };
  });
  if (Object.keys(tables).length !== bindings.length) throw new MalusError('invalid-input', 'the job binds tables the query does not read');
  const bound = new Set(bindings.map((b) => b.dataset));
  if (bound.size !== bindings.length || job.datasets.length !== bound.size || !job.datasets.every((d) => bound.has(d))) {
    throw new MalusError('invalid-input', "the job's datasets are not exactly the ones bound to the tables the query reads");
  }
  return { checked, query, bindings };
}

export interface GovernedResult {
  /** The released columns (the release column removed). */
  readonly columns: readonly ResultColumn[];
  readonly rows: readonly (readonly ResultValue[])[];
  /** The canonical malus.result-rows/v1 payload of the released rows. */
  readonly payload: Uint8Array;
}

/**
 * Runs already-checked SQL (the rewrite of checkQuery) on a loaded sandbox, locking it first. The
 * rewrite applies the k constraints itself, so every row must have RELEASE_COLUMN true: one that
 * does not fails the job (query-failed) with nothing released and no count of withheld rows, since
 * that count is a release about the groups under k. The rows become the payload.
 */
export async function runGovernedSql(
  sandbox: Sandbox,
  query: { readonly sql: string; readonly parameters: readonly BoundParameter[] },
  limits: QueryLimits = {},
): Promise<GovernedResult> {
  if (!sandbox.locked) await sandbox.lock();
  const run = await sandbox.run(query.sql, query.parameters, { ...limits, releaseColumn: RELEASE_COLUMN });
  const payload = encodeResultRows(run.columns, run.rows);
  // The cap checked while streaming is an estimate; this one is exact.
  const maxBytes = limits.maxBytes ?? DEFAULT_QUERY_LIMITS.maxBytes;
  if (payload.length > maxBytes) {
    payload.fill(0);
    throw new MalusError('result-too-large', `the result is larger than ${maxBytes} bytes`);
  }
  return { columns: run.columns, rows: run.rows, payload };
}

/**
 * Runs the rewrite of a query under differential privacy: the exact, bounded statistics per group
 * come back from DuckDB and only their noisy release (releasePrivately) becomes the payload. The
 * seed of each identity's random choice of groups is fresh for every run.
 */
export async function runPrivateSql(
  sandbox: Sandbox,
  query: { readonly sql: string; readonly parameters: readonly BoundParameter[]; readonly privacy: QueryPrivacy },
  limits: QueryLimits = {},
  bytes: RandomBytes = cryptoBytes,
): Promise<GovernedResult> {
  if (!sandbox.locked) await sandbox.lock();
  const { plan } = query.privacy;
  const seed: BoundParameter[] = plan.groups.length === 0 ? [] : [{ name: DP_SEED_PARAMETER, type: 'BIGINT', value: BigInt.asIntN(64, BigInt(`0x${Buffer.from(bytes(8)).toString('hex')}`)) }];
  const release = privateRelease(plan, bytes);
  let run;
  try {
    // Noise is added as the exact rows stream in, so that the caps count released rows only.
    run = await sandbox.run(query.sql, [...query.parameters, ...seed], { ...limits, admit: (row, columns) => release.admit(row, columns) as ResultValue[] | undefined });
  } catch (error) {
    // After the data was read every failure keeps its charge: none may come back as refundable.
    if (isMalusError(error, 'query-timeout') || isMalusError(error, 'result-too-large') || isMalusError(error, 'query-failed')) throw error;
    throw new MalusError('query-failed', 'the query failed in the enclave');
  }
  const ran = run;
  return afterTheData(() => {
    // The admitted rows (already counted against the caps), or a public domain's rows, in its order.
    const rows = release.finish() as ResultValue[][];
    const maxRows = limits.maxRows ?? DEFAULT_QUERY_LIMITS.maxRows;
    if (rows.length > maxRows) throw new MalusError('result-too-large', `the result has more than ${maxRows} rows`);
    const columns = release.columns(ran.columns);
    const payload = encodeResultRows(columns, rows, { accounting: query.privacy.accounting, cost: query.privacy.cost, columns: release.noisy() });
    const maxBytes = limits.maxBytes ?? DEFAULT_QUERY_LIMITS.maxBytes;
    if (payload.length > maxBytes) {
      payload.fill(0);
      throw new MalusError('result-too-large', `the result is larger than ${maxBytes} bytes`);
    }
    return { columns, rows, payload };
  });
}

/**
 * Runs what follows the query's read of the data. A failure there keeps the job's charge whatever
 * raised it: a refundable code (REFUNDABLE_FAILURES) becomes `internal`, since whether the work
 * after the read fails can depend on the data.
 */
export function afterTheData<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw chargeKept(error);
  }
}

/** The error a failure after the read is reported as: never one whose code is refundable. */
function chargeKept(error: unknown): unknown {
  return isMalusError(error) && isRefundable(error.code) ? new MalusError('internal', 'the job failed after its query read the data') : error;
}

/** The receivers' X25519 keys, from the agreement's parties. */
export function resultReceivers(agreement: Agreement): ResultReceiver[] {
  return agreement.receivers.map((party) => {
    const encoded = agreement.parties.find((p) => p.id === party)?.encryptionKey;
    const encryptionKey = encoded === undefined ? undefined : fromBase64Url(encoded);
    if (encryptionKey?.length !== 32) throw new MalusError('agreement-invalid', `receiver ${party} has no X25519 encryption key in the agreement`);
    return { party, encryptionKey };
  });
}

export interface QueryRunContext {
  readonly jobId: string;
  readonly collaborationId: string;
  /** The active agreement with its lineage, as the worker recomputed it. */
  readonly active: { readonly agreement: Agreement; readonly lineage: readonly string[] };
  /** A dataset of the job: its owner-signed manifest and its ciphertext, streamed. */
  readonly dataset: (dataset: string) => Promise<{ signed: SignedManifest; content: AsyncIterable<Uint8Array> }>;
  readonly limits?: SandboxLimits & QueryLimits;
}

/** Runs a planned query job with its released keys (not zeroed here: the caller owns them). */
export async function runQuery(
  ctx: QueryRunContext,
  plan: QueryPlan,
  keys: readonly { readonly dataset: string; readonly key: Uint8Array }[],
): Promise<{ output: QueryOutput; sealed: SealedResult }> {
  const { active } = ctx;
  const receivers = resultReceivers(active.agreement);
  const sandbox = await openSandbox(ctx.limits);
  try {
    const inputs: QueryOutput['inputs'][number][] = [];
    for (const { table, dataset } of plan.bindings) {
      const key = keys.find((k) => k.dataset === dataset)?.key;
      if (key === undefined) throw new MalusError('key-release-denied', `no key was released for dataset ${dataset}`);
      const { signed, content } = await ctx.dataset(dataset);
      try {
        const verdict = verifyManifest(signed, active);
        if (!verdict.ok) throw new MalusError('invalid-input', `the manifest of dataset ${dataset} does not satisfy the agreement`, { reasons: verdict.reasons });
        if (signed.manifest.dataset !== dataset || verdict.table.name !== table) {
          throw new MalusError('invalid-input', `dataset ${dataset} is not a dataset of table ${table}`);
        }
        const commitment = keyCommitment(key, ctx.collaborationId, dataset);
        if (signed.manifest.keyCommitment !== commitment) throw new MalusError('invalid-input', `the key released for ${dataset} is not the one its owner signed for`);
        const loaded = await sandbox.load({ source: content, key, manifest: signed.manifest, table: verdict.table });
        inputs.push({ dataset, table, ciphertext: signed.manifest.ciphertext.sha256, rows: loaded.rows, keyCommitment: commitment });
      } finally {
        // A refused or half-read download is closed now, not when the connection times out.
        await content[Symbol.asyncIterator]().return?.();
      }
    }
    const { privacy } = plan.checked;
    const result =
      privacy === undefined
        ? await runGovernedSql(sandbox, { sql: plan.checked.rewritten, parameters: plan.checked.parameters }, ctx.limits)
        : await runPrivateSql(sandbox, { sql: plan.checked.rewritten, parameters: plan.checked.parameters, privacy }, ctx.limits);
    try {
      const sealed = await sealResult({ jobId: ctx.jobId, payload: result.payload, receivers }).catch((error: unknown) => {
        throw chargeKept(error);
      });
      const output: QueryOutput = {
        query: {
          hash: plan.checked.queryHash,
          ...(plan.query.template === undefined ? {} : { template: plan.query.template, parameters: plan.query.parameters }),
          rewritten: sha256Ref(plan.checked.rewritten),
        },
        inputs,
        result: {
          sha256: sha256Ref(result.payload),
          ciphertext: sha256Ref(sealedCiphertext(sealed)),
          rows: result.rows.length,
          columns: result.columns.map((c) => c.name),
          receivers: receivers.map((r) => r.party),
        },
        ...(privacy === undefined
          ? {}
          : {
              privacy: {
                policy: privacy.policy,
                accounting: privacy.accounting,
                cost: privacy.cost,
                measurements: privacy.plan.measurements.map((m) => ({ statistic: m.statistic, mechanism: m.mechanism, scale: m.scale, unit: m.unit })),
                release: privacy.plan.release,
              },
            }),
      };
      return { output, sealed };
    } finally {
      // The plaintext rows leave only sealed.
      result.payload.fill(0);
    }
  } finally {
    sandbox.close();
  }
}
