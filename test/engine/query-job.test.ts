import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement, type AgreementSignature } from '../../src/agreement/index.js';
import { createSimAttester, createSimCa, simPlatformAttester } from '../../src/attestation/index.js';
import { fromHex, hpkeSeal, toBase64Url } from '../../src/crypto/index.js';
import {
  createWorkerIdentity,
  openResult,
  openSandbox,
  parseResultRows,
  planQuery,
  pollOnce,
  runGovernedSql,
  runJob,
  runQuery,
  sealedCiphertext,
  verifyStatementSignature,
  type ClaimedJob,
  type JobResult,
  type QueryOutput,
  type QueryPlan,
  type QueryRunContext,
  type Sandbox,
  type WorkerContext,
  type WorkerPort,
} from '../../src/engine/index.js';
import { MalusError } from '../../src/errors/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { RELEASE_INFO, releaseAad } from '../../src/keyrelease/index.js';
import { RELEASE_COLUMN, type BoundParameter, type CheckedQuery, type QueryRequest } from '../../src/rules/index.js';
import type * as Rules from '../../src/rules/index.js';
import { identities, makeKeys } from '../agreement/helpers.js';
import type { PreparedDataset } from '../ingest/make-dataset.js';
import { conversionsSql, datasetOf, impressionsSql, piecesOf } from './query-fixtures.js';
import { failure } from './failure.js';

// A query job inside the enclave, on real encrypted datasets and a real DuckDB: its own checks of
// the job, the locked sandbox, failing closed on a row the output constraints withhold, the result
// sealed to the receivers, and the statement that binds it all. The control plane is an in-process
// stand-in (it queues jobs, seals the data keys to the enclave as the key release does, serves the
// datasets and records how jobs finish), since what is tested is the enclave side.

// The real checkQuery, whose rewrite one test replaces after the check: a rewrite that disagrees
// with the engine, to see the whole job fail closed.
const rewrite = vi.hoisted(() => ({ override: undefined as string | undefined }));
vi.mock('../../src/rules/index.js', async (importOriginal) => {
  const rules = await importOriginal<typeof Rules>();
  const checkQuery: typeof rules.checkQuery = async (...args) => {
    const checked = await rules.checkQuery(...args);
    return rewrite.override === undefined ? checked : { ...checked, rewritten: rewrite.override };
  };
  return { ...rules, checkQuery };
});

const DAY_MS = 86_400_000;
const MEASUREMENT = 'e5'.repeat(48);

const keys = makeKeys();
// The k-only path of a query job; the DP path is test/engine/dp-release.test.ts and the demo.
const example = exampleAgreement(identities(keys), { id: 'query-job-test', validFrom: new Date(Date.now() - DAY_MS), measurements: [MEASUREMENT] });
const agreement: Agreement = assertAgreement({ ...example, privacy: { ...(example.privacy as NonNullable<Agreement['privacy']>), policies: [] } }, 'k-only agreement');
const hash = agreementHash(agreement);
const signature = (party: PartyKeys): AgreementSignature =>
  signAgreement(agreement, hash, { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
const versions = [{ agreement, signatures: [signature(keys.advertiser), signature(keys.publisher)] }];
const active = { agreement, lineage: [hash] };
const tableOf = (name: string) => {
  const table = agreement.tables.find((t) => t.name === name);
  if (table === undefined) throw new Error(`no table ${name}`);
  return table;
};

const sha256Ref = (bytes: Uint8Array | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The rewrite checkQuery makes of the example template, by hand: HAVING applies every k constraint, and the release column checks them again. */
const REWRITTEN = `SELECT i.campaign_id,
       COUNT(DISTINCT i.email_hash) AS viewers,
       COUNT(DISTINCT c.email_hash) AS buyers,
       SUM(c.order_value) AS revenue,
       COUNT(DISTINCT i.email_hash) >= 50 AND COUNT(DISTINCT c.email_hash) >= 50 AS ${RELEASE_COLUMN}
FROM malus_data."impressions" i LEFT JOIN malus_data."conversions" c
  ON i.email_hash = c.email_hash AND i.campaign_id = c.campaign_id
WHERE i.shown_at >= $since
GROUP BY i.campaign_id
HAVING COUNT(DISTINCT i.email_hash) >= 50 AND COUNT(DISTINCT c.email_hash) >= 50
ORDER BY i.campaign_id`;
/** The same without its HAVING: a rewrite that disagrees with the engine, letting rows under k reach the enclave. */
const UNFILTERED = REWRITTEN.replace(/\nHAVING [^\n]*/, '');
const SINCE: BoundParameter[] = [{ name: 'since', type: 'DATE', value: '2026-11-01' }];

const handPlan = (changes: Partial<CheckedQuery> = {}, bindings?: QueryPlan['bindings']): QueryPlan => ({
  query: { template: 'reach_and_conversions', parameters: { since: '2026-11-01' } },
  checked: {
    allowed: true,
    violations: [],
    kind: 'template',
    tables: ['conversions', 'impressions'],
    rewritten: REWRITTEN,
    parameters: SINCE,
    queryHash: sha256Ref('the template SQL'),
    ...changes,
  },
  bindings: bindings ?? [
    { table: 'conversions', dataset: 'conversions-1' },
    { table: 'impressions', dataset: 'impressions-1' },
  ],
});

describe('query jobs in the enclave', () => {
  const dir = mkdtempSync(join(tmpdir(), 'malus-query-job-'));
  const datasets = new Map<string, PreparedDataset>();
  /** Ciphertexts the stand-in serves instead of the prepared one (a tampered disk). */
  const served = new Map<string, Uint8Array>();
  const finished = new Map<string, { result: JobResult } | { error: string }>();
  const queue: ClaimedJob[] = [];
  const claimed = new Map<string, ClaimedJob>();
  let releases = 0;
  let ctx: WorkerContext;

  const port: WorkerPort = {
    registrationChallenge: () => Promise.resolve(toBase64Url(randomBytes(32))),
    register: () => Promise.resolve(),
    claim: () => {
      const job = queue.shift();
      if (job !== undefined) claimed.set(job.id, job);
      return Promise.resolve(job);
    },
    heartbeat: () => Promise.resolve(),
    releaseChallenge: () => Promise.resolve(toBase64Url(randomBytes(32))),
    release: async (_service, request) => {
      releases += 1;
      const job = claimed.get(request.jobId);
      if (job === undefined) throw new MalusError('key-release-denied', 'no such job');
      return Promise.all(
        job.datasets.map(async (dataset) => {
          const prepared = datasets.get(dataset);
          if (prepared === undefined) throw new MalusError('key-release-denied', 'no key');
          const aad = releaseAad({ jobId: job.id, datasetId: dataset, agreementHash: job.agreementHash });
          return { dataset, sealed: await hpkeSeal(request.encryptionKey, prepared.dataKey, RELEASE_INFO, aad) };
        }),
      );
    },
    finish: (jobId, outcome) => {
      finished.set(jobId, outcome);
      return Promise.resolve();
    },
    dataset: (_jobId, dataset) => {
      const prepared = datasets.get(dataset);
      if (prepared === undefined) return Promise.reject(new MalusError('not-found', 'no such dataset'));
      return Promise.resolve({ signed: prepared.manifest, content: piecesOf(served.get(dataset) ?? prepared.ciphertext) });
    },
  };

  const runContext = (jobId = `job-${randomBytes(16).toString('hex')}`): QueryRunContext => ({
    jobId,
    collaborationId: agreement.id,
    active,
    dataset: (dataset) => port.dataset(jobId, dataset),
    limits: { threads: 1, memoryLimit: '512MB' },
  });
  const keyOf = (dataset: string) => ({ dataset, key: datasets.get(dataset)?.dataKey ?? new Uint8Array(32) });
  const bothKeys = () => [keyOf('conversions-1'), keyOf('impressions-1')];

  const queryJob = (query: QueryRequest | undefined, tables: Record<string, string>, changes: Partial<ClaimedJob> = {}): ClaimedJob => ({
    id: `job-${randomBytes(16).toString('hex')}`,
    collaborationId: agreement.id,
    agreementHash: hash,
    kind: 'query',
    datasets: Object.values(tables),
    submittedBy: keys.advertiser.identity.id,
    ...(query === undefined ? {} : { query }),
    tables,
    versions,
    ...changes,
  });

  beforeAll(async () => {
    const impressions = impressionsSql();
    const conversions = conversionsSql();
    for (const made of [
      await datasetOf(dir, { agreement, table: 'impressions', keys: keys.publisher, dataset: 'impressions-1', ...impressions }),
      await datasetOf(dir, { agreement, table: 'conversions', keys: keys.advertiser, dataset: 'conversions-1', ...conversions }),
      // Signed by the advertiser for the publisher's table: its manifest does not satisfy the agreement.
      await datasetOf(dir, { agreement, table: 'impressions', keys: keys.advertiser, dataset: 'impressions-forged', ...impressions }),
    ]) {
      datasets.set(made.dataset, made);
    }
    const sim = await createSimAttester(await createSimCa(new Date()), new Date());
    ctx = {
      identity: createWorkerIdentity(),
      attester: simPlatformAttester(sim, fromHex(MEASUREMENT) ?? new Uint8Array()),
      port,
      now: () => new Date(),
      limits: { threads: 1, memoryLimit: '512MB' },
    };
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('runGovernedSql', () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await openSandbox({ threads: 1, memoryLimit: '512MB' });
      for (const name of ['impressions-1', 'conversions-1']) {
        const prepared = datasets.get(name);
        if (prepared === undefined) throw new Error(name);
        await sandbox.load({ source: piecesOf(prepared.ciphertext), key: prepared.dataKey, manifest: prepared.manifest.manifest, table: tableOf(prepared.manifest.manifest.table) });
      }
    });
    afterAll(() => {
      sandbox.close();
    });

    it('locks the sandbox, releases the rows the rewrite keeps, and encodes the payload, with no count of the others', async () => {
      const result = await runGovernedSql(sandbox, { sql: REWRITTEN, parameters: SINCE });
      expect(sandbox.locked).toBe(true);
      expect(result.columns).toEqual([
        { name: 'campaign_id', type: 'VARCHAR' },
        { name: 'viewers', type: 'BIGINT' },
        { name: 'buyers', type: 'BIGINT' },
        { name: 'revenue', type: 'DECIMAL(38,2)' },
      ]);
      // cmp-1 has 10 viewers and no buyers: withheld.
      expect(result.rows).toEqual([['cmp-0', '60', '55', '687.50']]);
      expect(Object.keys(result).sort()).toEqual(['columns', 'payload', 'rows']);
      expect(parseResultRows(result.payload)).toEqual({ format: 'malus.result-rows/v1', columns: result.columns, rows: result.rows });
      // A later date leaves cmp-0 with its 7-in-9 days: 46 viewers, under 50, so nothing is released.
      const later = await runGovernedSql(sandbox, { sql: REWRITTEN, parameters: [{ name: 'since', type: 'DATE', value: '2026-11-03' }] });
      expect(later.rows).toEqual([]);
    });

    it('fails closed when a row reaches it with the release column not true (query-failed), and says no count', async () => {
      for (const parameters of [SINCE, [{ name: 'since', type: 'DATE', value: '2026-11-03' } as const]]) {
        const error = await failure(runGovernedSql(sandbox, { sql: UNFILTERED, parameters }));
        expect(error.code).toBe('query-failed');
        expect(`${error.message} ${error.describe()} ${JSON.stringify(error)}`).not.toMatch(/\d|suppress|cmp-/);
      }
    });

    it('refuses SQL without the release column as its last column, and keeps the caps (query-failed, result-too-large)', async () => {
      expect((await failure(runGovernedSql(sandbox, { sql: 'SELECT 1 AS x', parameters: [] }))).code).toBe('query-failed');
      const many = `SELECT email_hash, true AS ${RELEASE_COLUMN} FROM malus_data."impressions"`;
      expect((await failure(runGovernedSql(sandbox, { sql: many, parameters: [] }, { maxRows: 50 }))).code).toBe('result-too-large');
      expect((await failure(runGovernedSql(sandbox, { sql: many, parameters: [] }, { maxBytes: 2000 }))).code).toBe('result-too-large');
    });
  });

  describe('runQuery', () => {
    it('verifies and loads the bound datasets, runs, seals to the receivers, and says what it did', async () => {
      const context = runContext();
      const plan = handPlan();
      const { output, sealed } = await runQuery(context, plan, bothKeys());
      const conversions = datasets.get('conversions-1');
      const impressions = datasets.get('impressions-1');
      if (conversions === undefined || impressions === undefined) throw new Error('datasets');
      // Only the receiver (the advertiser) can open it.
      expect(sealed.recipients.map((r) => r.party)).toEqual([keys.advertiser.identity.id]);
      const payload = await openResult({ jobId: context.jobId, sealed, party: keys.advertiser.identity.id, secretKey: keys.advertiser.encryptionSecret });
      expect(parseResultRows(payload).rows).toEqual([['cmp-0', '60', '55', '687.50']]);
      const expected: QueryOutput = {
        query: { hash: plan.checked.queryHash, template: 'reach_and_conversions', parameters: { since: '2026-11-01' }, rewritten: sha256Ref(REWRITTEN) },
        inputs: [
          { dataset: 'conversions-1', table: 'conversions', ciphertext: conversions.manifest.manifest.ciphertext.sha256, rows: 55, keyCommitment: conversions.manifest.manifest.keyCommitment },
          { dataset: 'impressions-1', table: 'impressions', ciphertext: impressions.manifest.manifest.ciphertext.sha256, rows: 100, keyCommitment: impressions.manifest.manifest.keyCommitment },
        ],
        result: {
          sha256: sha256Ref(payload),
          ciphertext: sha256Ref(sealedCiphertext(sealed)),
          rows: 1,
          columns: ['campaign_id', 'viewers', 'buyers', 'revenue'],
          receivers: [keys.advertiser.identity.id],
        },
      };
      expect(output).toEqual(expected);
      expect(JSON.stringify(output)).not.toMatch(/suppress|withheld/);
      for (const other of [keys.publisher, keys.operator]) {
        const refused = await failure(openResult({ jobId: context.jobId, sealed, party: other.identity.id, secretKey: other.encryptionSecret }));
        expect(refused.code).toBe('decryption-failed');
      }
    });

    it('names no template for ad-hoc SQL', async () => {
      const plan: QueryPlan = { ...handPlan(), query: { sql: 'SELECT …' } };
      const { output } = await runQuery(runContext(), plan, bothKeys());
      expect(output.query).toEqual({ hash: plan.checked.queryHash, rewritten: sha256Ref(REWRITTEN) });
    });

    it('refuses a key that is not the one the owner committed to (invalid-input)', async () => {
      const error = await failure(runQuery(runContext(), handPlan(), [keyOf('conversions-1'), { dataset: 'impressions-1', key: new Uint8Array(randomBytes(32)) }]));
      expect(error).toMatchObject({ code: 'invalid-input', message: 'the key released for impressions-1 is not the one its owner signed for' });
    });

    it('refuses a dataset bound to a table it is not of, and a manifest that does not satisfy the agreement (invalid-input)', async () => {
      const swapped = handPlan({}, [
        { table: 'conversions', dataset: 'impressions-1' },
        { table: 'impressions', dataset: 'conversions-1' },
      ]);
      expect(await failure(runQuery(runContext(), swapped, bothKeys()))).toMatchObject({ code: 'invalid-input', message: 'dataset impressions-1 is not a dataset of table conversions' });
      const forged = handPlan({}, [
        { table: 'conversions', dataset: 'conversions-1' },
        { table: 'impressions', dataset: 'impressions-forged' },
      ]);
      const error = await failure(runQuery(runContext(), forged, [keyOf('conversions-1'), keyOf('impressions-forged')]));
      expect(error.code).toBe('invalid-input');
      expect(error.reasons.map((r) => r.code)).toContain('not-owner');
    });

    it('refuses a ciphertext changed on the operator’s disk (invalid-input)', async () => {
      const prepared = datasets.get('impressions-1');
      if (prepared === undefined) throw new Error('impressions-1');
      const tampered = Buffer.from(prepared.ciphertext);
      tampered[tampered.length - 40] = (tampered[tampered.length - 40] ?? 0) ^ 1;
      served.set('impressions-1', tampered);
      try {
        expect((await failure(runQuery(runContext(), handPlan(), bothKeys()))).code).toBe('invalid-input');
      } finally {
        served.delete('impressions-1');
      }
    });

    it('seals nothing when the rewrite lets a row under k reach it (query-failed, no count)', async () => {
      const error = await failure(runQuery(runContext(), handPlan({ rewritten: UNFILTERED }), bothKeys()));
      expect(error.code).toBe('query-failed');
      // Two campaigns, one under k: neither the error nor anything it carries counts what was withheld.
      expect(`${error.message} ${error.describe()} ${JSON.stringify(error)}`).not.toMatch(/\d|suppress|cmp-/);
    });

    it('lets no DuckDB message out (query-failed), and seals to no one without a key', async () => {
      const leaky = handPlan({ rewritten: `SELECT CAST(campaign_id || '-SECRET-123' AS INTEGER) AS n, true AS ${RELEASE_COLUMN} FROM malus_data."impressions"`, parameters: [] });
      const error = await failure(runQuery(runContext(), leaky, bothKeys()));
      expect(error.code).toBe('query-failed');
      expect(`${error.message} ${error.describe()} ${JSON.stringify(error)}`).not.toMatch(/SECRET|cmp-/);
      expect((await failure(runQuery(runContext(), handPlan(), [keyOf('conversions-1')]))).code).toBe('key-release-denied');
    });
  });

  describe('planQuery', () => {
    it('refuses a job without a query (invalid-input), and a submitter who is not an analyst (forbidden)', async () => {
      const tables = { impressions: 'impressions-1' };
      expect((await failure(planQuery(queryJob(undefined, tables), agreement))).code).toBe('invalid-input');
      expect((await failure(planQuery(queryJob({ sql: 'SELECT 1' }, tables, { submittedBy: keys.publisher.identity.id }), agreement))).code).toBe('forbidden');
      expect((await failure(planQuery(queryJob({ sql: 'SELECT 1' }, tables, { submittedBy: 'f'.repeat(20) }), agreement))).code).toBe('forbidden');
    });

    it('fails the job in the enclave before any key is asked for, with the code (pollOnce)', async () => {
      const before = releases;
      const job = queryJob({ sql: 'SELECT 1' }, { impressions: 'impressions-1' }, { submittedBy: keys.publisher.identity.id });
      queue.push(job);
      expect(await pollOnce(ctx)).toBe(true);
      expect(finished.get(job.id)).toEqual({ error: `forbidden: ${keys.publisher.identity.id} is not an analyst of the agreement` });
      expect(releases).toBe(before);
    });
  });

  describe('reporting a failed job', () => {
    // The server's failures cannot be produced on demand here: the port fails as a dropped
    // connection and a failing server would, a given number of times, then reports as usual.
    const flaky = (failures: MalusError[]): WorkerContext => {
      const left = [...failures];
      return {
        ...ctx,
        failureReportDelaysMs: [1, 1, 1],
        port: {
          ...ctx.port,
          finish: async (jobId, outcome) => {
            const next = left.shift();
            if (next !== undefined) throw next;
            await ctx.port.finish(jobId, outcome);
          },
        },
      };
    };
    const denied = () => queryJob({ sql: 'SELECT 1' }, { impressions: 'impressions-1' }, { submittedBy: keys.publisher.identity.id });

    it('tries again while the server cannot be reached or fails, so that the job ends (and its charge can be refunded)', async () => {
      const job = denied();
      queue.push(job);
      const transient = [new MalusError('server-unreachable', 'connection reset'), new MalusError('store-failure', 'the store failed')];
      expect(await pollOnce(flaky(transient))).toBe(true);
      expect(finished.get(job.id)).toEqual({ error: `forbidden: ${keys.publisher.identity.id} is not an analyst of the agreement` });
    });

    it('gives up after its last wait, and at once on a refusal; a job the server already ended is left as it is', async () => {
      const unreachable = denied();
      queue.push(unreachable);
      const down = Array.from({ length: 4 }, () => new MalusError('server-unreachable', 'connection refused'));
      expect((await failure(pollOnce(flaky(down)))).code).toBe('server-unreachable');
      expect(finished.has(unreachable.id)).toBe(false);
      const ended = denied();
      queue.push(ended);
      const refused = [new MalusError('forbidden', 'not a registered worker'), new MalusError('server-unreachable', 'never reached')];
      expect((await failure(pollOnce(flaky(refused)))).code).toBe('forbidden');
      expect(finished.has(ended.id)).toBe(false);
      // Its lease ran out: the report is refused as a conflict, and nothing more is tried.
      const expired = denied();
      queue.push(expired);
      const gone = [new MalusError('conflict', 'job is not running on this worker'), new MalusError('server-unreachable', 'never reached')];
      expect(await pollOnce(flaky(gone))).toBe(true);
      // Had it tried again, the next try (after the unreachable one) would have reached the server.
      expect(finished.has(expired.id)).toBe(false);
    });
  });

  // These run the real checkQuery of src/rules: the enclave's plan is its verdict and its rewrite.
  describe('with the real checkQuery (end to end)', () => {
    const ADHOC = 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS viewers FROM impressions GROUP BY campaign_id';

    it('plans an allowed query: the tables it reads bound to the job’s datasets', async () => {
      const plan = await planQuery(queryJob({ sql: ADHOC }, { impressions: 'impressions-1' }), agreement);
      expect(plan.bindings).toEqual([{ table: 'impressions', dataset: 'impressions-1' }]);
      expect(plan.checked.rewritten).toContain('malus_data');
    });

    it('refuses a job whose bindings are not exactly the tables the query reads (invalid-input)', async () => {
      const cases: ClaimedJob[] = [
        queryJob({ sql: ADHOC }, {}),
        queryJob({ sql: ADHOC }, { conversions: 'conversions-1' }),
        queryJob({ sql: ADHOC }, { impressions: 'impressions-1', conversions: 'conversions-1' }),
        queryJob({ sql: ADHOC }, { impressions: 'impressions-1' }, { datasets: ['impressions-1', 'conversions-1'] }),
        queryJob({ sql: ADHOC }, { impressions: 'impressions-1' }, { datasets: ['conversions-1'] }),
      ];
      for (const job of cases) expect((await failure(planQuery(job, agreement))).code, JSON.stringify(job.tables)).toBe('invalid-input');
    });

    it('refuses a query the agreement does not allow, with the violations (query-denied), before any key is asked for', async () => {
      const job = queryJob({ sql: 'SELECT email_hash FROM impressions' }, { impressions: 'impressions-1' });
      const error = await failure(planQuery(job, agreement));
      expect(error.code).toBe('query-denied');
      expect(error.violations.length).toBeGreaterThan(0);
      const before = releases;
      queue.push(job);
      expect(await pollOnce(ctx)).toBe(true);
      expect(finished.get(job.id)).toMatchObject({ error: expect.stringMatching(/^query-denied: the query breaks the agreement/) as string });
      expect(releases).toBe(before);
    });

    it('runs a query job to a signed statement and a result only the receiver opens (runJob, pollOnce)', async () => {
      const job = queryJob({ sql: ADHOC }, { impressions: 'impressions-1' });
      queue.push(job);
      expect(await pollOnce(ctx)).toBe(true);
      const outcome = finished.get(job.id);
      if (outcome === undefined || !('result' in outcome)) throw new Error(`the job failed: ${JSON.stringify(outcome)}`);
      const { sealed, ...signed } = outcome.result;
      if (sealed === undefined) throw new Error('no sealed result');
      expect(verifyStatementSignature(signed)).toBe(true);
      const { statement } = signed;
      expect(statement).toMatchObject({ format: 'malus.job-result/v1', job: job.id, collaboration: agreement.id, agreement: hash, kind: 'query' });
      const output = statement.output as unknown as QueryOutput;
      const payload = await openResult({ jobId: job.id, sealed, party: keys.advertiser.identity.id, secretKey: keys.advertiser.encryptionSecret });
      const rows = parseResultRows(payload);
      // cmp-0 has 60 viewers and is released; cmp-1 has 10 and is not.
      expect(rows.rows).toEqual([['cmp-0', '60']]);
      expect(output.result).toEqual({
        sha256: sha256Ref(payload),
        ciphertext: sha256Ref(sealedCiphertext(sealed)),
        rows: 1,
        columns: rows.columns.map((c) => c.name),
        receivers: [keys.advertiser.identity.id],
      });
      expect(JSON.stringify(statement)).not.toMatch(/suppress|withheld/);
      expect(output.inputs.map((i) => [i.dataset, i.table, i.rows])).toEqual([['impressions-1', 'impressions', 100]]);
      expect(output.query.template).toBeUndefined();
      // The statement is over this very result: another job's id does not open it.
      expect((await failure(openResult({ jobId: queryJob(undefined, {}).id, sealed, party: keys.advertiser.identity.id, secretKey: keys.advertiser.encryptionSecret }))).code).toBe(
        'decryption-failed',
      );
    });

    it('fails the job closed when a row under k reaches the enclave: query-failed, nothing sealed, no count in the error or the log', async () => {
      const job = queryJob({ sql: ADHOC }, { impressions: 'impressions-1' });
      const logged: unknown[] = [];
      // What a rewrite without its HAVING would run: cmp-1 (10 viewers) reaches the enclave.
      rewrite.override = `SELECT campaign_id, COUNT(DISTINCT email_hash) AS viewers, COUNT(DISTINCT email_hash) >= 50 AS ${RELEASE_COLUMN}
        FROM malus_data."impressions" GROUP BY campaign_id ORDER BY campaign_id`;
      try {
        queue.push(job);
        expect(await pollOnce({ ...ctx, log: (...entry) => logged.push(entry) })).toBe(true);
      } finally {
        rewrite.override = undefined;
      }
      const outcome = finished.get(job.id);
      // No statement, no sealed rows: only the error, and one fixed message without a number.
      expect(outcome).toEqual({ error: expect.stringMatching(/^query-failed: /) as string });
      expect(JSON.stringify(outcome)).not.toMatch(/\d|suppress|cmp-/);
      expect(logged).toEqual([['warn', 'job failed', { job: job.id, reason: (outcome as { error: string }).error }]]);
    });

    it('runs the approved template with its parameters, and records them as submitted', async () => {
      const query: QueryRequest = { template: 'reach_and_conversions', parameters: { since: '2026-11-01' } };
      const result = await runJob(ctx, await claimedNow(queryJob(query, { conversions: 'conversions-1', impressions: 'impressions-1' })));
      const output = result.statement.output as unknown as QueryOutput;
      expect(output.query).toMatchObject({ template: 'reach_and_conversions', parameters: { since: '2026-11-01' } });
      expect(output.inputs.map((i) => i.table)).toEqual(['conversions', 'impressions']);
      if (result.sealed === undefined) throw new Error('no sealed result');
      const payload = await openResult({ jobId: result.statement.job, sealed: result.sealed, party: keys.advertiser.identity.id, secretKey: keys.advertiser.encryptionSecret });
      expect(parseResultRows(payload).rows).toEqual([['cmp-0', '60', '55', '687.50']]);
      expect(output.result).toMatchObject({ rows: 1, columns: ['campaign_id', 'viewers', 'buyers', 'revenue'] });
      expect(output.result).not.toHaveProperty('suppressed');
    });

    /** Puts a job through the stand-in's claim, so that its release knows it. */
    async function claimedNow(job: ClaimedJob): Promise<ClaimedJob> {
      queue.push(job);
      const got = await port.claim();
      if (got === undefined) throw new Error('nothing claimed');
      return got;
    }
  });
});

describe('failures after a query read the data', () => {
  it('never come back refundable: a refundable code becomes internal, others pass as they are', async () => {
    const { afterTheData } = await import('../../src/engine/query-job.js');
    const thrown = (work: () => unknown): unknown => {
      try {
        work();
      } catch (error) {
        return error;
      }
      return undefined;
    };
    for (const code of ['invalid-input', 'agreement-invalid', 'forbidden'] as const) {
      expect(thrown(() => afterTheData(() => { throw new MalusError(code, 'x'); }))).toMatchObject({ code: 'internal', message: 'the job failed after its query read the data' });
    }
    expect(thrown(() => afterTheData(() => { throw new MalusError('result-too-large', 'big'); }))).toMatchObject({ code: 'result-too-large' });
    expect(afterTheData(() => 7)).toBe(7);
  });
});
