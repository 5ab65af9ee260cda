import { randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { assertAgreement, type Agreement, type PsiComputation, type SecaggComputation } from '../agreement/index.js';
import type { FinishRunBody, RunMessageBody, RunMessageReceipt, RunMessagesView, RunView, StartRunBody } from '../api/index.js';
import { toBase64Url } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import type { LogEvent } from '../ledger/index.js';
import type { RelayMessageRecord, RelayRunRecord } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import { activeAgreementOf } from './collaborations.js';
import { base64UrlField } from './confidential.js';
import type { ServerContext } from './context.js';
import { toLogAppend } from './transparency.js';

// The relay of computations that need no enclave (docs/relay.md): a run of a PSI or a secure
// aggregation the active agreement allows, whose parties exchange opaque messages through the
// server. The server sees only blinded or masked bytes; it checks who may take part and under which
// terms, keeps every message once, and logs each run's start and end with sizes and parameters.

/** The most message bytes one answer carries (besides a first message that is larger on its own). */
export const MAX_MESSAGES_ANSWER_BYTES = 48 * 1024 * 1024;

type StartedEvent = Extract<LogEvent, { type: 'run.started' }>;
type PsiOptions = NonNullable<Extract<StartRunBody, { kind: 'psi' }>['parameters']>;

/** A computation of the agreement, tagged with its kind. */
type Terms = { readonly kind: 'psi'; readonly computation: PsiComputation } | { readonly kind: 'secagg'; readonly computation: SecaggComputation };

function termsOf(agreement: Agreement, kind: 'psi' | 'secagg', name: string): Terms | undefined {
  if (kind === 'psi') {
    const computation = agreement.psi?.find((c) => c.name === name);
    return computation === undefined ? undefined : { kind, computation };
  }
  const computation = agreement.secureAggregation?.find((c) => c.name === name);
  return computation === undefined ? undefined : { kind, computation };
}

/** Who takes part in a run of the computation and the parameters its entries log. */
function shapeOf(terms: Terms, options: PsiOptions): { parties: string[]; parameters: Record<string, unknown> } {
  switch (terms.kind) {
    case 'psi': {
      const c = terms.computation;
      return {
        parties: [c.sender, c.receiver],
        parameters: { maxSetSize: c.maxSetSize, ...(c.normalize === undefined ? {} : { normalize: c.normalize }), ...options },
      };
    }
    case 'secagg': {
      const c = terms.computation;
      return {
        // Receivers that contribute nothing still take part: they collect the masked inputs and the shares.
        parties: [...c.parties, ...c.receivers.filter((r) => !c.parties.includes(r))],
        parameters: { threshold: c.threshold, vectorLength: c.vectorLength, clip: c.clip, fractionBits: c.fractionBits, receivers: c.receivers },
      };
    }
  }
}

/** The options a PSI run was started with, as its parameters record them. */
function optionsOf(run: RelayRunRecord): PsiOptions {
  const { setEncoding, falsePositiveBits, sumBits } = run.parameters as PsiOptions;
  return {
    ...(setEncoding === undefined ? {} : { setEncoding }),
    ...(falsePositiveBits === undefined ? {} : { falsePositiveBits }),
    ...(sumBits === undefined ? {} : { sumBits }),
  };
}

function runView(run: RelayRunRecord): RunView {
  return {
    id: run.id,
    collaboration: run.collaborationId,
    kind: run.kind,
    computation: run.computation,
    mode: run.mode as RunView['mode'],
    agreement: run.agreementHash,
    parties: run.parties,
    parameters: run.parameters as RunView['parameters'],
    state: run.state,
    startedBy: run.startedBy,
    finishedBy: run.finishedBy,
    summary: run.summary as RunView['summary'],
    relayed: run.relayed ?? { messages: 0, bytes: 0 },
    createdAt: run.createdAt,
    finishedAt: run.finishedAt,
  };
}

async function requireMember(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<void> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) throw new MalusError('not-found', `collaboration ${id} not found`);
}

/** A run of the collaboration, for a member; 404 for anyone else, as for a run that does not exist. */
async function memberRun(ctx: ServerContext, caller: AuthenticatedParty, id: string, runId: string): Promise<RelayRunRecord> {
  await requireMember(ctx, caller, id);
  const run = await ctx.store.relay.getRun(id, runId);
  if (run === undefined) throw new MalusError('not-found', `run ${runId} not found`);
  return run;
}

function requireRunParty(run: RelayRunRecord, caller: AuthenticatedParty): void {
  if (!run.parties.includes(caller.id)) throw new MalusError('forbidden', `only the parties of run ${run.id} exchange its messages and end it`);
}

/**
 * Refuses a new message to a run the active agreement no longer allows as it started: no active
 * agreement, or one whose computation changed its parties or terms, or no longer allows the mode.
 */
async function requireStillAllowed(ctx: ServerContext, run: RelayRunRecord, now: Date): Promise<void> {
  const active = await activeAgreementOf(ctx, run.collaborationId, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${run.collaborationId} has no active agreement`);
  if (active.hash === run.agreementHash) return;
  const terms = termsOf(active.agreement, run.kind, run.computation);
  const same =
    terms !== undefined &&
    canonicalize(shapeOf(terms, optionsOf(run))) === canonicalize({ parties: run.parties, parameters: run.parameters }) &&
    (terms.kind !== 'psi' || terms.computation.modes.some((m) => m === run.mode));
  if (!same) throw new MalusError('computation-not-allowed', `the active agreement no longer allows run ${run.id} on the terms it started under`);
}

/**
 * Starts a run of a computation of the active agreement: the caller must take part in it, and a PSI
 * mode must be one the agreement allows. The run and its run.started entry are one transaction.
 */
export async function startRun(ctx: ServerContext, caller: AuthenticatedParty, id: string, body: StartRunBody): Promise<RunView> {
  await requireMember(ctx, caller, id);
  const now = ctx.now();
  const active = await activeAgreementOf(ctx, id, now);
  if (active === undefined) throw new MalusError('conflict', `collaboration ${id} has no active agreement`);
  const what = body.kind === 'psi' ? 'private set intersection' : 'secure aggregation';
  const terms = termsOf(active.agreement, body.kind, body.computation);
  if (terms === undefined) throw new MalusError('computation-not-allowed', `the active agreement allows no ${what} named ${body.computation}`);
  const shape = shapeOf(terms, body.kind === 'psi' ? (body.parameters ?? {}) : {});
  if (!shape.parties.includes(caller.id)) throw new MalusError('forbidden', `only the parties of ${body.computation} run it`);
  let mode: RelayRunRecord['mode'] = null;
  if (body.kind === 'psi' && terms.kind === 'psi') {
    if (!terms.computation.modes.includes(body.mode)) {
      throw new MalusError('computation-not-allowed', `${body.computation} allows the modes ${terms.computation.modes.join(', ')}, not ${body.mode}`);
    }
    mode = body.mode;
  }
  const run: RelayRunRecord = {
    id: `run-${randomBytes(16).toString('hex')}`,
    collaborationId: id,
    kind: body.kind,
    computation: body.computation,
    mode,
    agreementHash: active.hash,
    parties: shape.parties,
    parameters: shape.parameters,
    state: 'open',
    startedBy: caller.id,
    summary: null,
    finishedBy: null,
    createdAt: now.toISOString(),
    finishedAt: null,
  };
  const event: LogEvent = {
    format: 'malus.event/v1',
    type: 'run.started',
    collaboration: id,
    actor: { kind: 'party', id: caller.id },
    time: now.toISOString(),
    run: run.id,
    kind: run.kind,
    computation: run.computation,
    mode: body.kind === 'psi' ? body.mode : null,
    agreement: run.agreementHash,
    parties: run.parties,
    parameters: shape.parameters as StartedEvent['parameters'],
  };
  // toLogAppend validates the entry against the log's strict schema before anything is written.
  await ctx.store.relay.createRun(run, [toLogAppend(event)]);
  return runView({ ...run, relayed: { messages: 0, bytes: 0 } });
}

export async function getRun(ctx: ServerContext, caller: AuthenticatedParty, id: string, runId: string): Promise<RunView> {
  return runView(await memberRun(ctx, caller, id, runId));
}

export async function listRuns(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<RunView[]> {
  await requireMember(ctx, caller, id);
  return (await ctx.store.relay.listRuns(id)).map(runView);
}

function messageReceipt(message: RelayMessageRecord, added: boolean): RunMessageReceipt {
  return {
    seq: message.seq,
    sender: message.sender,
    to: message.recipient,
    step: message.step,
    bytes: message.data.byteLength,
    sha256: message.sha256,
    createdAt: message.createdAt,
    added,
  };
}

/** Relays one message from a party of the run to another (or to all); a repeat of the same bytes changes nothing. */
export async function postRunMessage(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  runId: string,
  body: RunMessageBody,
): Promise<RunMessageReceipt> {
  const run = await memberRun(ctx, caller, id, runId);
  requireRunParty(run, caller);
  if (body.to === caller.id || (body.to !== '*' && !run.parties.includes(body.to))) {
    throw new MalusError('invalid-input', 'request body is invalid', {
      issues: [{ path: 'body.to', message: `expected another party of run ${run.id}, or *` }],
    });
  }
  const data = base64UrlField(body.data, 'body.data');
  const now = ctx.now();
  // A closed run takes no new message, which the store says; only an open one needs the agreement.
  if (run.state === 'open') await requireStillAllowed(ctx, run, now);
  const stored = await ctx.store.relay.postMessage({
    collaborationId: id,
    runId: run.id,
    sender: caller.id,
    recipient: body.to,
    step: body.step,
    data,
    createdAt: now.toISOString(),
  });
  return messageReceipt(stored.message, stored.added);
}

/** The messages of the run for the caller (to it or to all, from the others) after a cursor, in (step, seq) order. */
export async function runMessages(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  runId: string,
  query: { after?: number | undefined; afterSeq?: number | undefined },
): Promise<RunMessagesView> {
  const run = await memberRun(ctx, caller, id, runId);
  requireRunParty(run, caller);
  const cursor = { after: query.after ?? -1, ...(query.afterSeq === undefined ? {} : { afterSeq: query.afterSeq }) };
  const { messages, more } = await ctx.store.relay.messagesFor(id, run.id, caller.id, cursor, MAX_MESSAGES_ANSWER_BYTES);
  return {
    messages: messages.map((m) => ({ seq: m.seq, sender: m.sender, to: m.recipient, step: m.step, data: toBase64Url(m.data), sha256: m.sha256, createdAt: m.createdAt })),
    more,
  };
}

function summaryIssue(path: string, message: string): MalusError {
  return new MalusError('invalid-input', 'request body is invalid', { issues: [{ path: `body.summary.${path}`, message }] });
}

/** The computation a run started under, from its own agreement version (not the active one, which may have moved on). */
async function runTerms(ctx: ServerContext, run: RelayRunRecord): Promise<Terms> {
  const record = await ctx.store.collaborations.getAgreement(run.agreementHash);
  if (record === undefined) throw new MalusError('store-failure', `the agreement of run ${run.id} is not in the store`);
  const terms = termsOf(assertAgreement(record.document, `stored agreement ${record.hash}`), run.kind, run.computation);
  if (terms === undefined) throw new MalusError('store-failure', `the agreement of run ${run.id} has no computation ${run.computation}`);
  return terms;
}

/** Checks a summary against the run's terms: a set larger than the agreement allows is refused, not logged as if it were fine. */
async function checkSummary(ctx: ServerContext, run: RelayRunRecord, body: FinishRunBody): Promise<void> {
  const { summary } = body;
  if (summary.kind !== run.kind) throw summaryIssue('kind', `expected ${run.kind}, the kind of run ${run.id}`);
  if (body.outcome === 'succeeded' && summary.code !== undefined) throw summaryIssue('code', 'only a failed run has a code');
  const terms = await runTerms(ctx, run);
  switch (terms.kind) {
    case 'psi': {
      if (summary.kind !== 'psi') return;
      const { maxSetSize } = terms.computation;
      for (const side of ['sender', 'receiver'] as const) {
        const size = summary.setSizes?.[side];
        if (size !== undefined && size > maxSetSize) {
          throw new MalusError('computation-not-allowed', `the ${side}'s set (${size}) is larger than ${run.computation} allows (${maxSetSize})`);
        }
      }
      return;
    }
    case 'secagg': {
      if (summary.kind !== 'secagg') return;
      const { parties, threshold } = terms.computation;
      const { contributors = 0, dropouts = 0 } = summary;
      if (contributors + dropouts > parties.length) {
        throw summaryIssue(summary.dropouts === undefined ? 'contributors' : 'dropouts', `contributors and dropouts are at most the ${parties.length} parties of ${run.computation}`);
      }
      if (body.outcome === 'succeeded' && (parties.length - dropouts < threshold || (summary.contributors !== undefined && contributors < threshold))) {
        throw summaryIssue(summary.contributors === undefined ? 'dropouts' : 'contributors', `a run with fewer than ${threshold} contributors cannot have succeeded`);
      }
      return;
    }
  }
}

/** Ends an open run with its outcome; the run.finished entry, with the server's own totals, lands in the same transaction. */
export async function finishRun(ctx: ServerContext, caller: AuthenticatedParty, id: string, runId: string, body: FinishRunBody): Promise<RunView> {
  const run = await memberRun(ctx, caller, id, runId);
  requireRunParty(run, caller);
  if (run.state !== 'open') throw new MalusError('conflict', `run ${run.id} is ${run.state}`);
  await checkSummary(ctx, run, body);
  const now = ctx.now();
  const ended = await ctx.store.relay.finishRun(
    id,
    run.id,
    { state: body.outcome === 'succeeded' ? 'finished' : 'failed', by: caller.id, summary: body.summary, now },
    (_run, relayed) => [
      toLogAppend({
        format: 'malus.event/v1',
        type: 'run.finished',
        collaboration: id,
        actor: { kind: 'party', id: caller.id },
        time: now.toISOString(),
        run: run.id,
        kind: run.kind,
        computation: run.computation,
        outcome: body.outcome,
        summary: body.summary,
        relayed,
      }),
    ],
  );
  return runView(ended);
}
