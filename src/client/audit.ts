import { agreementHash, assertAgreement, type Agreement } from '../agreement/index.js';
import type { BudgetView, LogEntryView } from '../api/index.js';
import { describeCost } from '../dp/index.js';
import { isMalusError } from '../errors/index.js';
import { auditBudget, type BudgetAudit } from './budget-audit.js';
import { getBudget } from './budget.js';
import { getAgreement, getCollaboration, listCollaborations } from './collaborations.js';
import type { MalusClient } from './client.js';
import { getLogEntries, getTile, listCheckpoints } from './log.js';
import { equalBytes, fromBase64Url, toBase64 } from '../crypto/index.js';
import {
  MerkleTree,
  TILE_WIDTH,
  cosignatureVerifier,
  decodeEvent,
  leafHash,
  openCheckpoint,
  parseNote,
  tilePath,
  verifyNote,
  witnessName,
  type LogEvent,
  type NoteVerifier,
} from '../ledger/index.js';

export type { BudgetAudit } from './budget-audit.js';

// `malus log audit`: recompute the log from its public hash tiles, check every checkpoint against
// it (signature, root, growth), every cosignature by a known party, and every entry this party may
// read against its leaf; then check that each agreement decision the server shows has its entry,
// and that the privacy budget the server shows is the one the log's charges and refunds add up to.

export interface AuditReport {
  origin: string;
  size: number;
  checkpoints: number;
  cosignatures: Record<string, number>;
  entriesByType: Record<string, number>;
  /** The privacy budget of each collaboration, recomputed from the log. */
  budgets: BudgetAudit[];
  problems: string[];
  text: string;
}

/** The server's budget, or undefined when it shows none (no active agreement that sets one). */
async function budgetShown(client: MalusClient, id: string): Promise<BudgetView | undefined> {
  try {
    return await getBudget(client, id);
  } catch (error) {
    if (isMalusError(error, 'conflict') || isMalusError(error, 'not-found')) return undefined;
    throw error;
  }
}

/**
 * A collaboration's entries and its budget as of one moment: a charge and its entry are one
 * transaction, so when the entries did not grow around the budget read, the two agree or the
 * server's books are wrong.
 */
async function entriesWithBudget(client: MalusClient, id: string): Promise<{ entries: LogEntryView[]; view: BudgetView | undefined; settled: boolean }> {
  let entries = await getLogEntries(client, id);
  for (let attempt = 0; attempt < 5; attempt++) {
    const view = await budgetShown(client, id);
    if (view === undefined) return { entries, view, settled: true };
    const after = await getLogEntries(client, id);
    if (after.length === entries.length) return { entries, view, settled: true };
    entries = after;
  }
  return { entries, view: undefined, settled: false };
}

export async function runAudit(client: MalusClient, log: NoteVerifier): Promise<AuditReport> {
  const problems: string[] = [];
  const { checkpoints } = await listCheckpoints(client);
  const collaborations = await listCollaborations(client);

  // Witnesses we can check: every party of every collaboration we are in.
  const witnesses = new Map<string, NoteVerifier>();
  const agreements = new Map<string, Agreement>();
  for (const c of collaborations) {
    for (const v of c.versions) {
      const { agreement } = await getAgreement(client, c.id, { version: v.version });
      agreements.set(agreementHash(agreement), agreement);
      for (const party of agreement.parties) {
        const key = fromBase64Url(party.signingKey);
        if (key !== undefined) witnesses.set(party.id, cosignatureVerifier(witnessName(party.id), key));
      }
    }
  }

  const newest = checkpoints[checkpoints.length - 1];
  const size = newest?.size ?? 0;
  const tree = new MerkleTree();
  for (let tile = 0; tile * TILE_WIDTH < size; tile++) {
    const width = Math.min(TILE_WIDTH, size - tile * TILE_WIDTH);
    const bytes = await getTile(client, tilePath(0, tile, width));
    if (bytes.length !== width * 32) {
      problems.push(`tile 0/${tile} has ${bytes.length} bytes, expected ${width * 32}`);
      break;
    }
    for (let i = 0; i < width; i++) tree.append(bytes.subarray(i * 32, i * 32 + 32));
  }

  const cosignatures: Record<string, number> = {};
  let previousSize = -1;
  for (const c of checkpoints) {
    const opened = openCheckpoint(c.note, log, log.name);
    if (!opened.ok) {
      problems.push(`checkpoint ${c.size}: ${opened.reason}`);
      continue;
    }
    const { checkpoint } = opened;
    if (checkpoint.size !== c.size) problems.push(`checkpoint listed as size ${c.size} says ${checkpoint.size}`);
    if (checkpoint.size <= previousSize) problems.push(`checkpoint ${checkpoint.size} does not grow the log (after ${previousSize})`);
    previousSize = checkpoint.size;
    if (checkpoint.size > tree.size) problems.push(`checkpoint ${checkpoint.size} is beyond the ${tree.size} leaves served`);
    else if (!equalBytes(tree.root(checkpoint.size), checkpoint.root)) {
      problems.push(`checkpoint ${checkpoint.size}: its root is not the root of the served leaves (a fork)`);
    }
    const parsed = parseNote(c.note);
    if ('error' in parsed) continue;
    for (const sig of parsed.signatures) {
      if (sig.name === log.name) continue;
      const witness = [...witnesses.values()].find((w) => w.name === sig.name);
      if (witness === undefined) continue;
      const verdict = verifyNote(`${parsed.text}\n${sig.line}\n`, [witness]);
      if (verdict.ok && verdict.verified.includes(sig.name)) cosignatures[sig.name] = (cosignatures[sig.name] ?? 0) + 1;
      else problems.push(`checkpoint ${checkpoint.size}: cosignature by ${sig.name} does not verify`);
    }
  }

  const entriesByType: Record<string, number> = {};
  const budgets: BudgetAudit[] = [];
  for (const c of collaborations) {
    const { entries, view, settled } = await entriesWithBudget(client, c.id);
    if (!settled) problems.push(`${c.id}: the log kept growing while the budget was read, so the two could not be compared; audit again`);
    const events: { index: number; event: LogEvent }[] = [];
    const seen = new Set<string>();
    for (const e of entries) {
      const bytes = new TextEncoder().encode(e.entry);
      const decoded = decodeEvent(bytes);
      if (!decoded.ok) {
        problems.push(`entry ${e.index}: ${decoded.reason}`);
        continue;
      }
      const { event } = decoded;
      events.push({ index: e.index, event });
      if (event.collaboration !== c.id) problems.push(`entry ${e.index} is about ${event.collaboration}, listed under ${c.id}`);
      if (e.index < tree.size && !equalBytes(tree.leafHash(e.index), leafHash(bytes))) {
        problems.push(`entry ${e.index} does not match leaf ${e.index} of the log`);
      }
      // Entries past the newest checkpoint cannot be checked against it yet; the next audit will.
      if (e.index < size) entriesByType[event.type] = (entriesByType[event.type] ?? 0) + 1;
      if (event.type.startsWith('agreement.') && 'agreement' in event) {
        seen.add(`${event.type} ${event.agreement}${event.type === 'agreement.signed' ? ` ${event.signer}` : ''}`);
      }
    }
    const budget = auditBudget(c.id, events, agreements, view);
    budgets.push(budget.audit);
    problems.push(...budget.problems);
    // Every decision the server shows must have its entry: nothing quietly left out.
    const shown = await getCollaboration(client, c.id);
    for (const v of shown.versions) {
      const { agreement, signatures } = await getAgreement(client, c.id, { version: v.version });
      const hash = agreementHash(assertAgreement(agreement, `agreement ${v.hash}`));
      if (hash !== v.hash) problems.push(`${c.id} v${v.version}: the server's hash ${v.hash} is not the document's ${hash}`);
      if (!seen.has(`agreement.proposed ${hash}`)) problems.push(`${c.id} v${v.version}: no agreement.proposed entry`);
      for (const s of signatures) {
        if (!seen.has(`agreement.signed ${hash} ${s.signer}`)) problems.push(`${c.id} v${v.version}: no agreement.signed entry for ${s.signer}`);
      }
      if ((v.state === 'active' || v.state === 'superseded') && !seen.has(`agreement.activated ${hash}`)) {
        problems.push(`${c.id} v${v.version} is ${v.state} but has no agreement.activated entry`);
      }
    }
  }

  const lines = [
    `log ${log.name}: ${size} entries, root ${newest === undefined ? '-' : toBase64(tree.root(size))}`,
    `checkpoints verified: ${checkpoints.length}`,
    ...Object.entries(cosignatures).map(([name, n]) => `cosignatures by ${name}: ${n}`),
    ...Object.entries(entriesByType).sort().map(([type, n]) => `entries ${type}: ${n}`),
    ...budgets.flatMap(budgetLines),
    ...problems.map((p) => `PROBLEM: ${p}`),
    problems.length === 0 ? 'audit passed' : `audit FAILED with ${problems.length} problem(s)`,
  ];
  return { origin: log.name, size, checkpoints: checkpoints.length, cosignatures, entriesByType, budgets, problems, text: `${lines.join('\n')}\n` };
}

/** The summary lines of one collaboration's budget; nothing for one without charges or a budget shown. */
function budgetLines(b: BudgetAudit): string[] {
  if (b.charges === 0 && b.refunds === 0 && b.server === undefined) return [];
  const lines = [`budget ${b.collaboration}: ${b.charges} charge(s), ${b.refunds} refund(s) in the log`];
  for (const p of b.periods) {
    lines.push(`  period ${p.period}: spent ${describeCost(p.spent)}`);
    for (const [party, spent] of Object.entries(p.analysts).sort()) lines.push(`    analyst ${party}: ${describeCost(spent)}`);
  }
  if (b.server !== undefined) {
    lines.push(`  server, period ${b.server.period}: spent ${describeCost(b.server.spent)}, ${b.server.matches ? 'equal to the log' : 'NOT the log'}`);
  }
  return lines;
}
