// Governed-query benchmarks (`npm run bench:query`). Every figure is printed next to a baseline
// measured in the same run; nothing is asserted beyond every step succeeding.
//
//   1. Reach and conversions by campaign over 10,000,000 impression rows joined with 1,000,000
//      purchase rows, both decrypted into the enclave's sandboxed in-memory DuckDB: the governed
//      query (check, rewrite, run, threshold, encode) against the same join run directly by
//      DuckDB on the same tables. Target: at most 1.15x.
//   2. Check plus rewrite alone for that query, mean and 95th percentile. Target: under 5 ms.
//   3. The same query under a differential-privacy policy (contribution bounds, clamped sum, noise,
//      partition selection) against the governed query of 1. Target: at most 1.2x.
//
// BENCH_IMPRESSIONS and BENCH_PURCHASES change the sizes; BENCH_RUNS the repetitions (best of, default 3).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { assertAgreement, exampleAgreement, type Agreement } from '../src/agreement/index.js';
import { openSandbox, runGovernedSql, runPrivateSql, type Sandbox } from '../src/engine/index.js';
import { generatePartyKeys, type PartyKeys } from '../src/identity/index.js';
import { checkQuery } from '../src/rules/index.js';
import { datasetOf, piecesOf } from '../test/engine/query-fixtures.js';

const IMPRESSIONS = Number(process.env.BENCH_IMPRESSIONS ?? 10_000_000);
const PURCHASES = Number(process.env.BENCH_PURCHASES ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PEOPLE = Math.max(1, Math.floor(IMPRESSIONS / 5));

const QUERY = `SELECT i.campaign_id,
       COUNT(DISTINCT i.email_hash) AS viewers,
       COUNT(DISTINCT c.email_hash) AS buyers,
       SUM(c.order_value) AS revenue
FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash
GROUP BY i.campaign_id`;

// The baseline: the analyst's join exactly, on the same tables, without any governance.
const DIRECT = QUERY.replace('FROM impressions i JOIN conversions c', 'FROM malus_data.impressions i JOIN malus_data.conversions c');

async function best(runs: number, fn: () => Promise<void>): Promise<number> {
  let fastest = Number.POSITIVE_INFINITY;
  for (let run = 0; run < runs; run += 1) {
    const started = performance.now();
    await fn();
    fastest = Math.min(fastest, performance.now() - started);
  }
  return fastest;
}

async function loadTables(dir: string, agreement: Agreement, keys: { advertiser: PartyKeys; publisher: PartyKeys }): Promise<Sandbox> {
  // Campaign sizes follow a long tail (campaign n gets about 1/(n+1) of the traffic), so that some
  // campaigns fall under the k constraint and are withheld, as in real data.
  const impressions = await datasetOf(dir, {
    agreement,
    table: 'impressions',
    keys: keys.publisher,
    rows: IMPRESSIONS,
    sql: `SELECT sha256('p' || (i % ${PEOPLE})) AS email_hash,
                 'cmp-' || CAST(floor(300 * pow(((i * 7919) % 1000003) / 1000003.0, 3)) AS INTEGER) AS campaign_id,
                 TIMESTAMP '2026-11-01 00:00:00' + to_seconds(CAST(i % 2592000 AS BIGINT)) AS shown_at,
                 'feed' AS placement, CASE WHEN i % 3 = 0 THEN 'desktop' ELSE 'mobile' END AS device_type
          FROM range(${IMPRESSIONS}) t(i)`,
  });
  const conversions = await datasetOf(dir, {
    agreement,
    table: 'conversions',
    keys: keys.advertiser,
    rows: PURCHASES,
    sql: `SELECT sha256('p' || ((i * 3) % ${PEOPLE * 2})) AS email_hash, 'cmp-' || (i % 300) AS campaign_id,
                 DATE '2026-11-02' + CAST(i % 28 AS INTEGER) AS order_date, CAST((i % 20000) / 100.0 AS DECIMAL(12,2)) AS order_value
          FROM range(${PURCHASES}) t(i)`,
  });
  const sandbox = await openSandbox();
  for (const prepared of [impressions, conversions]) {
    const table = agreement.tables.find((t) => t.name === prepared.manifest.manifest.table);
    if (table === undefined) throw new Error('no table');
    await sandbox.load({ source: piecesOf(prepared.ciphertext), key: prepared.dataKey, manifest: prepared.manifest.manifest, table });
  }
  await sandbox.lock();
  return sandbox;
}

/** The example without its privacy policy: the campaign query is then governed by k alone. */
function withoutPrivacy(agreement: Agreement): Agreement {
  const document = structuredClone(agreement) as unknown as { privacy?: unknown };
  delete document.privacy;
  return assertAgreement(document, 'benchmark agreement without a privacy policy');
}

/** The agreement with a privacy policy on conversions: the campaign query then runs under DP. */
function withPrivacy(agreement: Agreement): Agreement {
  const document = structuredClone(agreement) as unknown as { privacy: unknown };
  document.privacy = {
    accounting: 'pure',
    budget: { epsilon: 100, delta: 1e-4 },
    refresh: 'monthly',
    policies: [
      {
        table: 'conversions',
        required: true,
        mechanism: 'laplace',
        costPerQuery: { epsilon: 1 },
        maxRowsPerIdentity: 2,
        maxGroupsPerIdentity: 3,
        bounds: [{ column: 'order_value', lower: 0, upper: 200 }],
        partitionSelection: { delta: 1e-6 },
      },
    ],
  };
  return assertAgreement(document, 'benchmark agreement with a privacy policy');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'malus-bench-query-'));
  const keys = { advertiser: generatePartyKeys('Advertiser'), publisher: generatePartyKeys('Publisher'), operator: generatePartyKeys('Operator') };
  const agreement = withoutPrivacy(
    exampleAgreement(
      { advertiser: keys.advertiser.identity, publisher: keys.publisher.identity, operator: keys.operator.identity },
      { validFrom: new Date(Date.now() - 60_000) },
    ),
  );
  let sandbox: Sandbox | undefined;
  try {
    console.log(`preparing ${IMPRESSIONS.toLocaleString('en')} impressions and ${PURCHASES.toLocaleString('en')} purchases …`);
    sandbox = await loadTables(dir, agreement, keys);
    const box = sandbox;
    const limits = { maxRows: 1_000_000, maxBytes: 64 * 1024 * 1024, timeoutMs: 600_000 };

    // Warm both paths once (buffers, plans), then take the best of RUNS, alternating.
    await box.run(DIRECT, [], limits);
    let released = 0;
    const governed = async (): Promise<void> => {
      const checked = await checkQuery(agreement, { sql: QUERY });
      if (!checked.allowed) throw new Error(`the benchmark query is denied: ${JSON.stringify(checked.violations)}`);
      const result = await runGovernedSql(box, { sql: checked.rewritten, parameters: checked.parameters }, limits);
      released = result.rows.length;
    };
    await governed();
    let direct = Number.POSITIVE_INFINITY;
    let governedMs = Number.POSITIVE_INFINITY;
    for (let run = 0; run < RUNS; run += 1) {
      direct = Math.min(direct, await best(1, () => box.run(DIRECT, [], limits).then(() => undefined)));
      governedMs = Math.min(governedMs, await best(1, governed));
    }
    console.log('\n1. reach and conversions by campaign');
    console.log(`   direct DuckDB join        ${direct.toFixed(0)} ms`);
    console.log(`   governed (check … seal)   ${governedMs.toFixed(0)} ms   (${released} campaigns released)`);
    console.log(`   ratio                     ${(governedMs / direct).toFixed(3)}x   (target ≤ 1.15x)`);

    // The campaign query, and one with filters and HAVING, whose compared values DuckDB types.
    const filtered = `${QUERY.replace('GROUP BY i.campaign_id', "WHERE i.placement = 'feed' AND c.order_date >= DATE '2026-11-01' GROUP BY i.campaign_id")} HAVING COUNT(DISTINCT i.email_hash) > 100`;
    console.log('\n2. check plus rewrite (500 runs each; target < 5 ms)');
    for (const [label, sql] of [['the campaign query', QUERY], ['with WHERE and HAVING', filtered]] as const) {
      const samples: number[] = [];
      for (let i = 0; i < 50; i += 1) await checkQuery(agreement, { sql });
      for (let i = 0; i < 500; i += 1) {
        const started = performance.now();
        const checked = await checkQuery(agreement, { sql });
        samples.push(performance.now() - started);
        if (!checked.allowed) throw new Error(`denied: ${JSON.stringify(checked.violations)}`);
      }
      samples.sort((a, b) => a - b);
      const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
      const p95 = samples[Math.floor(samples.length * 0.95)] ?? Number.NaN;
      console.log(`   ${label.padEnd(24)} mean ${mean.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms   (${((mean / direct) * 100).toFixed(3)}% of the direct join)`);
    }

    // 3. The campaign query under differential privacy, next to the governed query of 1.
    const privateAgreement = withPrivacy(agreement);
    let releasedPrivately = 0;
    const privately = async (): Promise<void> => {
      const checked = await checkQuery(privateAgreement, { sql: QUERY });
      if (!checked.allowed || checked.privacy === undefined) throw new Error(`the DP benchmark query is denied: ${JSON.stringify(checked.violations)}`);
      const result = await runPrivateSql(box, { sql: checked.rewritten, parameters: checked.parameters, privacy: checked.privacy }, limits);
      releasedPrivately = result.rows.length;
    };
    await privately();
    let privateMs = Number.POSITIVE_INFINITY;
    let governedAgain = Number.POSITIVE_INFINITY;
    for (let run = 0; run < RUNS; run += 1) {
      governedAgain = Math.min(governedAgain, await best(1, governed));
      privateMs = Math.min(privateMs, await best(1, privately));
    }
    console.log('\n3. the campaign query under differential privacy');
    console.log(`   governed, k only          ${governedAgain.toFixed(0)} ms`);
    console.log(`   with DP                   ${privateMs.toFixed(0)} ms   (${releasedPrivately} campaigns released by noisy threshold)`);
    console.log(`   ratio                     ${(privateMs / governedAgain).toFixed(3)}x   (target ≤ 1.2x)`);
  } finally {
    sandbox?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
