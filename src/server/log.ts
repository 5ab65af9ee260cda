import { fromBase64Url, toBase64 } from '../crypto/index.js';
import { MalusError } from '../errors/index.js';
import {
  addCosignatures,
  buildReceipt,
  cosignatureVerifier,
  parseNote,
  verifyNote,
  witnessName,
  type Receipt,
} from '../ledger/index.js';
import type { AuthenticatedParty } from './auth.js';
import type { ServerContext } from './context.js';
import { MAX_COSIGNATURES } from './transparency.js';

// The log service behind the routes: proofs (public, hashes only), a party's own entries and
// receipts (members only), and witness cosignatures.

function checkSize(ctx: ServerContext, size: number, what: string): void {
  if (size > ctx.log.tree.size) throw new MalusError('not-found', `${what} ${size} is beyond the log's size ${ctx.log.tree.size}`);
}

export async function inclusionProof(ctx: ServerContext, index: number, size: number) {
  await ctx.log.sync();
  checkSize(ctx, size, 'size');
  if (index >= size) throw new MalusError('invalid-input', `index ${index} is not below size ${size}`);
  return {
    index,
    size,
    leafHash: toBase64(ctx.log.tree.leafHash(index)),
    proof: ctx.log.tree.inclusionProof(index, size).map(toBase64),
  };
}

export async function consistencyProof(ctx: ServerContext, from: number, to: number) {
  await ctx.log.sync();
  checkSize(ctx, to, 'size');
  if (from < 1 || from > to) throw new MalusError('invalid-input', `from must be between 1 and to (${to}), not ${from}`);
  return { from, to, proof: ctx.log.tree.consistencyProof(from, to).map(toBase64) };
}

export async function entriesOf(ctx: ServerContext, caller: AuthenticatedParty, collaboration: string) {
  if (!(await ctx.store.collaborations.isMember(collaboration, caller.id))) {
    throw new MalusError('not-found', `collaboration ${collaboration} not found`);
  }
  const entries = await ctx.store.log.entriesOf([collaboration]);
  return entries.map((e) => ({ index: e.index, leafHash: toBase64(e.leafHash), entry: new TextDecoder().decode(e.data) }));
}

/** A receipt for one entry, against the first checkpoint that includes it (signed now if needed). */
export async function receiptFor(ctx: ServerContext, caller: AuthenticatedParty, index: number): Promise<Receipt> {
  const entry = await ctx.store.log.entry(index);
  const member = entry?.collaborationId != null && (await ctx.store.collaborations.isMember(entry.collaborationId, caller.id));
  if (entry === undefined || !member) throw new MalusError('not-found', `log entry ${index} not found`);
  // The newest checkpoint: it is the one witnesses cosign, so the receipt carries their cosignatures.
  let record = await ctx.store.log.latestCheckpoint();
  if (record === undefined || record.size <= index) record = await ctx.log.checkpoint();
  const note = await ctx.log.noteOfSize(record.size);
  if (note === undefined) throw new MalusError('internal', 'checkpoint vanished');
  await ctx.log.sync();
  return buildReceipt({
    entry: entry.data,
    index,
    checkpointNote: note,
    inclusionProof: ctx.log.tree.inclusionProof(index, record.size),
  });
}

/**
 * Accepts a witness cosignature from a party named in at least one collaboration. The line must
 * carry the party's witness name and verify under its key over the stored checkpoint of that size.
 */
export async function addCosignature(ctx: ServerContext, caller: AuthenticatedParty, size: number, line: string) {
  if ((await ctx.store.collaborations.listCollaborationIds(caller.id)).length === 0) {
    throw new MalusError('forbidden', 'only parties to a collaboration on this server may witness its log');
  }
  const record = await ctx.store.log.checkpointCovering(size);
  if (record?.size !== size) throw new MalusError('not-found', `no checkpoint of size ${size}`);
  const name = witnessName(caller.id);
  const withLine = parseNote(addCosignatures(record.note, [line]));
  if ('error' in withLine) throw new MalusError('invalid-input', `cosignature line is malformed: ${withLine.error}`);
  const added = withLine.signatures.find((s) => s.line === line.trim());
  if (added?.name !== name) throw new MalusError('invalid-input', `cosignature must be by ${name}`);
  const key = fromBase64Url(caller.signingKey);
  if (key === undefined) throw new MalusError('unauthenticated', 'caller key is malformed');
  const verdict = verifyNote(addCosignatures(record.note, [line]), [cosignatureVerifier(name, key)]);
  if (!verdict.ok || !verdict.verified.includes(name)) {
    throw new MalusError('signature-invalid', `cosignature by ${name} does not verify over checkpoint ${size}`);
  }
  const held = await ctx.store.log.cosignatures(size);
  if (held.length >= MAX_COSIGNATURES && !held.some((c) => c.witness === caller.id)) {
    throw new MalusError('conflict', `checkpoint ${size} already carries ${MAX_COSIGNATURES} cosignatures, the most it may hold`);
  }
  const outcome = await ctx.store.log.addCosignature({ size, witness: caller.id, line: added.line, createdAt: ctx.now().toISOString() });
  return { size, witness: name, added: outcome === 'added' };
}
