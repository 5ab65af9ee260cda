import { simCaFingerprint } from '../attestation/index.js';
import { listJobs, openJobResult, submitQuery, waitForJob, type JobView, type MalusClient, type QueryJobBody } from '../client/index.js';
import { verifyStatementSignature, type QueryOutput, type ResultRows, type ResultValue } from '../engine/index.js';
import { MalusError, formatViolation, isMalusError, type Violation } from '../errors/index.js';
import { sha256Ref } from '../keyrelease/index.js';
import { checkQuery } from '../rules/index.js';
import type { DemoContext } from './context.js';
import { need, short } from './narration.js';
import type { Step } from './scenario.js';
import { KNOWN_OVERLAP, SMALL_CAMPAIGNS } from './synthetic.js';

// Governed queries: the advertiser, as analyst, asks what the agreement allows and is refused what
// it does not; as receiver, it opens the sealed results only after checking their receipts.

/** Reach and conversions by campaign, as ad-hoc SQL. */
const REACH_SQL = [
  'SELECT i.campaign_id, COUNT(DISTINCT i.email_hash) AS viewers, COUNT(DISTINCT c.email_hash) AS buyers,',
  '       SUM(c.order_value) AS revenue',
  'FROM impressions i LEFT JOIN conversions c ON i.email_hash = c.email_hash',
  'GROUP BY i.campaign_id',
].join('\n');

/** How many viewers bought at all: the overlap the demo built into its tables. */
const OVERLAP_SQL = 'SELECT COUNT(DISTINCT c.email_hash) AS buyers FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash';

const ATTACKS: readonly { what: string; sql: string; code: string }[] = [
  {
    what: "the buyers' e-mail hashes and what each spent",
    sql: 'SELECT i.email_hash, SUM(c.order_value) AS spent FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.email_hash',
    code: 'column-not-allowed',
  },
  {
    what: 'the largest single purchase per campaign',
    sql: 'SELECT i.campaign_id, MAX(c.order_value) AS largest FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash GROUP BY i.campaign_id',
    code: 'aggregate-not-allowed',
  },
  { what: 'a file on the enclave host', sql: "SELECT count(*) FROM read_csv('/etc/passwd')", code: 'table-function' },
];

const TEMPLATE = 'reach_and_conversions';
const SINCE = '2026-11-15';

const count = (n: number): string => n.toLocaleString('en-US');
const smallCampaigns = (): string =>
  `${SMALL_CAMPAIGNS.map((c) => c.campaign).join(', ')} were shown to ${SMALL_CAMPAIGNS.map((c) => c.people).join(', ')} people`;

/** Submits a query, waits for the enclave, and checks the statement it signed. */
async function runQuery(client: MalusClient, collaborationId: string, body: QueryJobBody): Promise<{ job: JobView; output: QueryOutput }> {
  const submitted = await submitQuery(client, collaborationId, body);
  const job = await waitForJob(client, collaborationId, submitted.id, { timeoutMs: 60_000, intervalMs: 50 });
  if (job.state !== 'succeeded' || job.result === null) throw new MalusError('internal', `the query job ${job.state}: ${job.error ?? ''}`);
  if (!verifyStatementSignature(job.result)) throw new MalusError('signature-invalid', 'the enclave statement does not verify');
  return { job, output: job.result.statement.output as unknown as QueryOutput };
}

/** The violations a denied query carries; anything else is a failure of the demo. */
async function denialOf(attempt: Promise<unknown>): Promise<readonly Violation[]> {
  try {
    await attempt;
  } catch (error) {
    if (isMalusError(error, 'query-denied') && error.violations.length > 0) return error.violations;
    throw error;
  }
  throw new MalusError('internal', 'a query the agreement forbids was accepted');
}

/** A few rows as a right-aligned table: numbers as the enclave sent them (BIGINT and DECIMAL as text). */
function table(result: ResultRows, maxRows: number): string {
  const numeric = (v: ResultValue | undefined): boolean => typeof v === 'number' || (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v));
  const cell = (v: ResultValue): string => {
    if (v === null) return 'NULL';
    if (!numeric(v)) return String(v);
    const text = String(v);
    const [whole = '', fraction] = text.replace(/^-/, '').split('.');
    return `${text.startsWith('-') ? '-' : ''}${BigInt(whole).toLocaleString('en-US')}${fraction === undefined ? '' : `.${fraction}`}`;
  };
  const rows = result.rows.slice(0, maxRows).map((row) => row.map(cell));
  const header = result.columns.map((c) => c.name);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const left = result.columns.map((_, i) => !numeric(result.rows[0]?.[i]));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (left[i] === true ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  const rest = result.rows.length - rows.length;
  return [line(header), ...rows.map(line), ...(rest > 0 ? [`… ${rest} more`] : [])].join('\n');
}

export const analystRunsQuery: Step<DemoContext> = {
  title: 'The advertiser, as analyst, asks for reach and conversions by campaign in SQL',
  why:
    "An ad-hoc query is checked against the tables' aggregation rules on DuckDB's own parse tree: e-mail hashes only as " +
    'join keys and inside COUNT(DISTINCT), order values only summed. It reads the advertiser\u2019s purchases, which the ' +
    'agreement answers only with differential privacy: Malus, not the analyst, bounds each buyer\u2019s contribution, adds ' +
    'exact noise in the enclave, releases only the public campaigns whose noisy counts reach k = 50, and charges the ' +
    'budget before anything runs. It never says how many groups it withheld.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const analyst = need(ctx.parties, 'the identities').advertiser.identity.id;
    n.say(REACH_SQL);
    // The same check `malus query check` runs offline; the server and then the enclave run it again.
    const checked = await checkQuery(agreement, { sql: REACH_SQL }, { as: analyst });
    if (!checked.allowed) throw new MalusError('internal', `the demo's query is denied: ${checked.violations.map(formatViolation).join('; ')}`);
    const privacy = checked.privacy;
    if (privacy === undefined) throw new MalusError('internal', "the demo's query should run under differential privacy");
    const noise = privacy.plan.measurements.map((m) => `${m.statistic} (${m.mechanism}, scale ${m.scale})`).join(', ');
    n.say(`checked offline: allowed under the ${checked.kind ?? '?'} rules, with differential privacy: it will spend epsilon ${privacy.cost.epsilon ?? '?'}; noisy ${noise}`);
    const { job, output } = await runQuery(advertiser, agreement.id, { sql: REACH_SQL });
    if (output.query.rewritten !== sha256Ref(checked.rewritten)) throw new MalusError('signature-invalid', 'the enclave ran another rewrite than the offline check made');
    n.say(`job ${job.id}: the enclave ran exactly that rewrite (its hash is in the signed statement)`);
    n.say(`${count(output.result.rows)} campaigns released; campaigns under the k constraint are withheld in the enclave, and how many is not revealed`);
    const overlap = await runQuery(advertiser, agreement.id, { sql: OVERLAP_SQL });
    n.say(`and how many viewers bought at all: job ${overlap.job.id}, ${count(overlap.output.result.rows)} row released`);
    ctx.queryJobs = { reach: job.id, overlap: overlap.job.id };
  },
};

export const analystAttacksDenied: Step<DemoContext> = {
  title: 'It tries to learn more than the agreement allows, and is refused',
  why:
    'The server checks every query before it queues it, and the enclave checks it again before it asks for a key. A refusal ' +
    'names every rule the query breaks, each with a stable code and where it is in the SQL; nothing is queued, no key is ' +
    'released, no row is read.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const before = (await listJobs(advertiser, agreement.id)).length;
    for (const attack of ATTACKS) {
      const violations = await denialOf(submitQuery(advertiser, agreement.id, { sql: attack.sql }));
      if (!violations.some((v) => v.code === attack.code)) {
        throw new MalusError('internal', `expected ${attack.code}, the denial says ${violations.map((v) => v.code).join(', ')}`);
      }
      n.say(`${attack.what}:\n  ${attack.sql}`);
      for (const v of violations) n.say(`  denied (422 query-denied): ${formatViolation(v)}`);
    }
    const after = (await listJobs(advertiser, agreement.id)).length;
    if (after !== before) throw new MalusError('internal', 'a denied query was queued');
    n.say(`jobs queued by these attempts: ${after - before}`);
  },
};

export const analystRunsTemplate: Step<DemoContext> = {
  title: 'It runs the template both owners approved, with a parameter',
  why:
    'A template is SQL the data owners approved in the agreement itself; the analyst supplies only its typed, bounded ' +
    'parameters, which DuckDB binds to the prepared statement: a value is never spliced into the SQL. The template ' +
    'carries its own k constraint: campaigns seen by fewer than 50 people are withheld.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const declared = agreement.templates?.find((t) => t.name === TEMPLATE)?.parameters.find((p) => p.name === 'since');
    const bounds = declared === undefined ? '' : ` (a ${declared.type} from ${declared.min ?? '-'} to ${declared.max ?? '-'})`;
    const injected = `${SINCE}'; DROP TABLE impressions; --`;
    const violations = await denialOf(submitQuery(advertiser, agreement.id, { template: TEMPLATE, parameters: { since: injected } }));
    n.say(`since = ${JSON.stringify(injected)}: denied (422 query-denied): ${violations.map(formatViolation).join('; ')}`);
    n.say(`template ${TEMPLATE}, since = ${SINCE}${bounds}`);
    const { job, output } = await runQuery(advertiser, agreement.id, { template: TEMPLATE, parameters: { since: SINCE } });
    if (output.query.template !== TEMPLATE || output.query.parameters?.since !== SINCE) throw new MalusError('signature-invalid', 'the statement names another template run');
    n.say(`job ${job.id}: ${count(output.result.rows)} campaigns released; the signed statement names the template and its parameter`);
    ctx.queryJobs = { ...need(ctx.queryJobs, 'the query jobs'), template: job.id };
  },
};

export const receiverOpensResults: Step<DemoContext> = {
  title: 'The advertiser, as receiver, checks each result’s receipt, then opens its rows',
  why:
    "The rows are sealed to the agreement's receivers: the server keeps ciphertext it cannot read. Before anything is shown " +
    "the receiver checks the receipt: the job.finished entry is in the log, the enclave's key signed the statement, the " +
    "enclave's attestation evidence binds that key, and the agreement allows that enclave. Then it decrypts the rows and " +
    'checks that they hash to what the enclave signed.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const jobs = need(ctx.queryJobs, 'the query jobs');
    // Trust material the parties already hold: the log key they witness, and the server's sim development CA.
    const options = {
      logKey: ctx.logVerifierKey ?? ctx.server.log.verifierKey,
      simRoots: [simCaFingerprint({ certificate: ctx.server.simRoot })],
      agreement,
    };
    for (const [what, jobId] of [
      ['reach and conversions (ad-hoc SQL)', jobs.reach],
      ['viewers who bought (ad-hoc SQL)', jobs.overlap],
      [`${TEMPLATE} since ${SINCE} (template)`, need(jobs.template, 'the template job')],
    ] as const) {
      const opened = await openJobResult(advertiser, agreement.id, jobId, options);
      const { verdict } = opened;
      n.say(`${what}, job ${jobId}:`);
      n.say(
        `  receipt verified: log entry ${verdict.index} in checkpoint size ${verdict.checkpoint.size}; signed by enclave ${short(verdict.statement.enclave.signingKey)}, ` +
          `the key its ${verdict.evidence.platform} evidence binds; measurement ${short(verdict.evidence.measurement)} allowed by the agreement`,
      );
      if (verdict.simulated) n.say(`  ${verdict.statement.notice ?? 'SIMULATED TEE: NOT CONFIDENTIAL'} (the result is genuine, but the sim platform hides nothing from the operator)`);
      n.say(`  rows decrypted, hash matches the signed statement: ${count(opened.rows.rows.length)} released`);
      if (jobId === jobs.overlap) {
        const buyers = Number(opened.rows.rows[0]?.[0]);
        const ci = Number(opened.rows.privacy?.columns.find((c) => c.column === 'buyers')?.ci95 ?? Number.NaN);
        // Six times the 95% half-width: a Laplace draw lands beyond it with probability about e^-18.
        if (!(Math.abs(buyers - KNOWN_OVERLAP) <= 6 * ci)) throw new MalusError('internal', `the enclave counted ${buyers} ± ${ci} buyers among the viewers, the demo built ${KNOWN_OVERLAP}`);
        n.say(`  buyers among the viewers: ${count(buyers)} ± ${ci} (95%), around the ${count(KNOWN_OVERLAP)} the demo built into the tables`);
        ctx.enclaveOverlap = { value: buyers, ci95: ci };
        continue;
      }
      // The enclave says nothing of what it withheld, but the demo built the data: its small campaigns must not be here.
      const campaignAt = opened.rows.columns.findIndex((c) => c.name === 'campaign_id');
      if (campaignAt < 0) throw new MalusError('internal', 'the result has no campaign_id column');
      const released = new Set(opened.rows.rows.map((row) => row[campaignAt]));
      const leaked = SMALL_CAMPAIGNS.filter((c) => released.has(c.campaign));
      if (leaked.length > 0) throw new MalusError('internal', `campaigns under k = 50 were released: ${leaked.map((c) => c.campaign).join(', ')}`);
      n.say(`  not among them: ${smallCampaigns()}, fewer than 50 each (the demo built the data, so it knows)`);
      // The top campaigns by buyers.
      const buyersAt = opened.rows.columns.findIndex((c) => c.name === 'buyers');
      const sorted = { ...opened.rows, rows: [...opened.rows.rows].sort((a, b) => Number(b[buyersAt]) - Number(a[buyersAt])) };
      n.say(table(sorted, 3).split('\n').map((l) => `  ${l}`).join('\n'));
    }
  },
};
