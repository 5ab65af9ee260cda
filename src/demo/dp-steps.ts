import { simCaFingerprint } from '../attestation/index.js';
import { getBudget, openJobResult, submitQuery, waitForJob, type BudgetView, type MalusClient, type QueryJobBody } from '../client/index.js';
import type { QueryOutput, ResultRows } from '../engine/index.js';
import { MalusError, isMalusError } from '../errors/index.js';
import type { DemoContext } from './context.js';
import { need } from './narration.js';
import type { Step } from './scenario.js';
import { TARGET, TV_VIEWER } from './synthetic.js';

// Differential privacy: a noisy count by campaign from the template the agreement protects, the
// differencing attack that k thresholds let through and DP does not, and the budget running out.

const TEMPLATE = 'buyers_by_campaign';

/** Viewers of a campaign on the publisher's impressions (k only), with and without the smart-TV view. */
const VIEWERS_SQL = (withoutTv: boolean): string =>
  `SELECT COUNT(DISTINCT email_hash) AS viewers FROM impressions WHERE campaign_id = '${TV_VIEWER.campaign}'${withoutTv ? ` AND device_type <> '${TV_VIEWER.device}'` : ''}`;

/** Buyers among the viewers of the target's campaign (conversions: DP), with and without the target's one order. */
const BUYERS_SQL = (beforeTarget: boolean): string =>
  'SELECT COUNT(DISTINCT c.email_hash) AS buyers FROM impressions i JOIN conversions c ON i.email_hash = c.email_hash ' +
  `WHERE i.campaign_id = '${TARGET.campaign}'${beforeTarget ? ` AND c.order_date < DATE '${TARGET.date}'` : ''}`;

const spentText = (budget: BudgetView): string => {
  const unit = budget.accounting === 'pure' ? 'epsilon' : 'rho';
  const spent = budget.collaboration.spent[unit]?.decimal ?? '0';
  const whole = budget.collaboration.budget[unit]?.decimal ?? '?';
  const remaining = budget.collaboration.remaining[unit]?.decimal ?? '?';
  return `${unit} spent ${spent} of ${whole}, ${remaining} left this period (${budget.period}; whole again ${budget.nextRefresh ?? 'never'})`;
};

async function run(ctx: DemoContext, client: MalusClient, body: QueryJobBody): Promise<{ id: string; output: QueryOutput; rows: ResultRows }> {
  const agreement = need(ctx.agreement, 'the agreement');
  const submitted = await submitQuery(client, agreement.id, body);
  const job = await waitForJob(client, agreement.id, submitted.id, { timeoutMs: 60_000, intervalMs: 50 });
  if (job.state !== 'succeeded' || job.result === null) throw new MalusError('internal', `the query job ${job.state}: ${job.error ?? ''}`);
  const opened = await openJobResult(client, agreement.id, job.id, {
    logKey: ctx.logVerifierKey ?? ctx.server.log.verifierKey,
    simRoots: [simCaFingerprint({ certificate: ctx.server.simRoot })],
    agreement,
  });
  return { id: job.id, output: job.result.statement.output as unknown as QueryOutput, rows: opened.rows };
}

const valueIn = (rows: ResultRows, column: string, where?: { column: string; is: string }): number => {
  const at = rows.columns.findIndex((c) => c.name === column);
  const filterAt = where === undefined ? -1 : rows.columns.findIndex((c) => c.name === where.column);
  const row = rows.rows.find((r) => filterAt < 0 || r[filterAt] === where?.is);
  if (at < 0 || row === undefined) throw new MalusError('internal', `the result has no ${column}${where === undefined ? '' : ` for ${where.is}`}`);
  return Number(row[at]);
};

export const analystRunsPrivateCount: Step<DemoContext> = {
  title: 'It asks for buyers by campaign, and sees what each answer costs',
  why:
    'Every query that reads the purchases spends epsilon 1 from a budget of 7 a month, charged in the same transaction ' +
    'that queues the job and logged. Inside the enclave Malus keeps at most 3 campaigns per buyer (chosen at random) and ' +
    'adds discrete Laplace noise, sampled exactly with integers from the operating system\u2019s CSPRNG. The campaigns are a ' +
    'public domain of the agreement, so exactly those rows can come back, each with its noise scale and a 95% interval.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    n.say(`budget before: ${spentText(await getBudget(advertiser, agreement.id))}`);
    const result = await run(ctx, advertiser, { template: TEMPLATE, parameters: { until: TARGET.date } });
    const privacy = result.rows.privacy;
    if (privacy === undefined || result.output.privacy === undefined) throw new MalusError('internal', 'the result carries no privacy report');
    const noise = privacy.columns.find((c) => c.column === 'buyers');
    n.say(`template ${TEMPLATE}, job ${result.id}: ${result.rows.rows.length} campaigns; the signed statement records the cost (epsilon ${result.output.privacy.cost.epsilon ?? '?'}) and the noise`);
    const at = result.rows.columns.findIndex((c) => c.name === 'buyers');
    for (const row of result.rows.rows) n.say(`  ${String(row[0]).padEnd(14)} ${String(row[at]).padStart(7)} ± ${noise?.ci95 ?? '?'} (95%, ${noise?.mechanism ?? '?'} noise of scale ${noise?.scale ?? '?'})`);
    n.say(`budget after: ${spentText(await getBudget(advertiser, agreement.id))}`);
  },
};

export const differencingAttack: Step<DemoContext> = {
  title: 'A differencing attack: two allowed answers, subtracted, tell about one person',
  why:
    'Each threshold-only count below is about thousands of people, so k = 50 lets it through; the difference of two is ' +
    'about one. On the publisher\u2019s impressions, which the agreement answers with k alone, the analyst who knows that ' +
    'one viewer watched on a smart TV learns which campaign that was. The same attack on the advertiser\u2019s purchases, ' +
    'which the agreement answers only with differential privacy, gives a difference lost in the noise: one person\u2019s ' +
    'presence changes what anyone sees by a factor of at most e^epsilon.',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const withTv = await run(ctx, advertiser, { sql: VIEWERS_SQL(false) });
    const withoutTv = await run(ctx, advertiser, { sql: VIEWERS_SQL(true) });
    const exact = valueIn(withTv.rows, 'viewers') - valueIn(withoutTv.rows, 'viewers');
    if (exact !== 0 && exact !== 1) throw new MalusError('internal', `the threshold-only difference is ${exact}, not 0 or 1`);
    n.say(`impressions (k only):\n  ${VIEWERS_SQL(false)}\n  minus the same with device_type <> '${TV_VIEWER.device}'`);
    n.say(`  ${valueIn(withTv.rows, 'viewers')} − ${valueIn(withoutTv.rows, 'viewers')} = ${exact}: the attack works, the smart-TV viewer ${exact === 1 ? 'saw' : 'did not see'} ${TV_VIEWER.campaign}`);

    const all = await run(ctx, advertiser, { sql: BUYERS_SQL(false) });
    const before = await run(ctx, advertiser, { sql: BUYERS_SQL(true) });
    const noisy = valueIn(all.rows, 'buyers') - valueIn(before.rows, 'buyers');
    const ci = all.rows.privacy?.columns.find((c) => c.column === 'buyers')?.ci95 ?? '?';
    n.say(`conversions (differential privacy), about the one buyer whose only order was on ${TARGET.date}:\n  ${BUYERS_SQL(false)}\n  minus the same with c.order_date < DATE '${TARGET.date}'`);
    n.say(`  ${valueIn(all.rows, 'buyers')} − ${valueIn(before.rows, 'buyers')} = ${noisy}: each answer is ± ${ci} at 95%, so a difference of 0 or 1 is lost in the noise`);
    n.say(`budget: ${spentText(await getBudget(advertiser, need(ctx.agreement, 'the agreement').id))}`);
  },
};

export const budgetRunsOut: Step<DemoContext> = {
  title: 'Asking again to average the noise away runs into the budget',
  why:
    'Repeating a noisy query and averaging would shrink the noise; the budget caps how much any analyst can learn that way. ' +
    'Once it is spent the server refuses the query before it is queued (409 budget-exhausted), no enclave runs, and the ' +
    'log shows every charge, so any party can recompute the spent budget from the log alone (malus log audit).',
  run: async (ctx, n) => {
    const { advertiser } = need(ctx.clients, 'the clients');
    const agreement = need(ctx.agreement, 'the agreement');
    const again = await run(ctx, advertiser, { sql: BUYERS_SQL(false) });
    n.say(`the same count again (job ${again.id}): ${spentText(await getBudget(advertiser, agreement.id))}`);
    try {
      await submitQuery(advertiser, agreement.id, { sql: BUYERS_SQL(false) });
    } catch (error) {
      if (!isMalusError(error, 'budget-exhausted')) throw error;
      n.say(`and once more: refused (409 budget-exhausted): ${error.message}`);
      return;
    }
    throw new MalusError('internal', 'a query beyond the privacy budget was accepted');
  },
};
