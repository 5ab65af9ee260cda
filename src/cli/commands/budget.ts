import type { Command } from 'commander';
import { getBudget, type BudgetAmounts, type BudgetView } from '../../client/index.js';
import { printJson, type CliIo } from '../io.js';
import { clientFor, withServerOptions, type CollabServerOptions } from '../server-options.js';

// `malus budget show`: a collaboration's privacy budget in the current period, as the server's
// accountant holds it. `malus log audit` recomputes the same figures from the log.

/** "epsilon 1/3 (~0.333333)": the exact amount, and its decimal when the two differ. */
export function describeAmounts(amounts: BudgetAmounts): string {
  const parts = Object.entries(amounts).map(([unit, amount]) =>
    amount.exact === amount.decimal ? `${unit} ${amount.exact}` : `${unit} ${amount.exact} (~${amount.decimal})`,
  );
  return parts.length === 0 ? 'nothing' : parts.join(', ');
}

/** The lines `budget show` prints. */
export function describeBudget(view: BudgetView): string {
  const lines = [
    `${view.id}: ${view.accounting === 'pure' ? 'pure DP (epsilon)' : 'zCDP (rho)'} accounting, refresh ${view.refresh}`,
    `  agreement ${view.agreement}`,
    `  period ${view.period}, ${view.nextRefresh === null ? 'never refreshes' : `next refresh ${view.nextRefresh}`}`,
    `  collaboration budget: ${describeAmounts(view.collaboration.budget)}`,
    `    spent:     ${describeAmounts(view.collaboration.spent)}`,
    `    remaining: ${describeAmounts(view.collaboration.remaining)}`,
  ];
  for (const analyst of view.analysts) {
    lines.push(`  analyst ${analyst.party}: spent ${describeAmounts(analyst.spent)}`);
    if (analyst.budget !== undefined) lines.push(`    own budget ${describeAmounts(analyst.budget)}, remaining ${describeAmounts(analyst.remaining ?? {})}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerBudget(program: Command, io: CliIo): void {
  const budget = program.command('budget').description("a collaboration's differential-privacy budget");
  withServerOptions(budget.command('show').description('spent and remaining budget of the current period, of the collaboration and of each analyst, and when it refreshes'), {
    collab: true,
  }).action(async (options: CollabServerOptions) => {
    const view = await getBudget(clientFor(io, options), options.collab);
    if (options.json === true) printJson(io, view);
    else io.out(describeBudget(view));
  });
}
