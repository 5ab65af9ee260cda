import {
  agreementHash,
  assertAgreement,
  checkAgreement,
  activeAgreement,
  collaborationStatus,
  verifyAgreementSignature,
  type Agreement,
  type AgreementSignature,
  type VersionStatus,
} from '../agreement/index.js';
import type { CollaborationView } from '../api/index.js';
import type { LogEvent } from '../ledger/index.js';
import { toLogAppend } from './transparency.js';
import { MalusError } from '../errors/index.js';
import type { AgreementRecord, SignatureRecord } from '../store/index.js';
import type { AuthenticatedParty } from './auth.js';
import type { ServerContext } from './context.js';

// The collaboration service: proposing agreements (and amendments), collecting signatures, and
// reading state. Membership is checked before anything else, and a non-member is told 404, so a
// collaboration's existence never leaks to outsiders.

interface LoadedVersion {
  record: AgreementRecord;
  agreement: Agreement;
  signatures: SignatureRecord[];
}

function toSignature(record: AgreementRecord, signature: SignatureRecord): AgreementSignature {
  return {
    format: 'malus.signature/v1',
    collaboration: record.collaborationId,
    version: record.version,
    hash: record.hash,
    signer: signature.partyId,
    signature: signature.signature,
    signedAt: signature.signedAt,
  };
}

async function loadVersions(ctx: ServerContext, id: string): Promise<LoadedVersion[]> {
  const records = await ctx.store.collaborations.listVersions(id);
  return Promise.all(
    records.map(async (record) => ({
      record,
      // Stored documents were validated on the way in; re-validating keeps a tampered store from
      // turning into an accepted agreement.
      agreement: assertAgreement(record.document, `stored agreement ${record.hash}`),
      signatures: await ctx.store.collaborations.listSignatures(record.hash),
    })),
  );
}

function view(versions: LoadedVersion[], now: Date): CollaborationView {
  const statuses = collaborationStatus(
    versions.map((v) => ({ agreement: v.agreement, signatures: v.signatures.map((s) => toSignature(v.record, s)) })),
    now,
  );
  const latest = versions[versions.length - 1];
  const latestStatus = statuses[statuses.length - 1];
  if (latest === undefined || latestStatus === undefined) throw new MalusError('not-found', 'collaboration not found');
  const active = statuses.find((s) => s.state === 'active');
  return {
    id: latest.record.collaborationId,
    title: latest.agreement.title,
    state: active?.state ?? latestStatus.state,
    activeHash: active?.hash ?? null,
    latestHash: latest.record.hash,
    versions: versions.map((v, i) => {
      const status = statuses[i] as VersionStatus;
      return {
        version: v.record.version,
        hash: v.record.hash,
        previous: v.record.previous,
        state: status.state,
        signed: [...status.signed],
        missing: [...status.missing],
        supersededBy: status.supersededBy,
        validFrom: v.agreement.validFrom,
        validUntil: v.agreement.validUntil,
        proposedBy: v.record.proposedBy,
        createdAt: v.record.createdAt,
      };
    }),
  };
}

async function requireMember(ctx: ServerContext, id: string, caller: AuthenticatedParty): Promise<LoadedVersion[]> {
  if (!(await ctx.store.collaborations.isMember(id, caller.id))) {
    throw new MalusError('not-found', `collaboration ${id} not found`);
  }
  return loadVersions(ctx, id);
}

/** Throws the verdict of a refused signature as a typed error. */
function assertSignatureValid(agreement: Agreement, hash: string, signature: AgreementSignature): void {
  const verdict = verifyAgreementSignature(agreement, hash, signature);
  if (!verdict.valid) throw new MalusError(verdict.code, verdict.reason);
}

/**
 * Runs the agreement's cross-field checks (the route's schema already checked its shape). Issue paths
 * are given from the request, as the schema's are (`body.agreement.tables[0].owner`), so that a
 * client finds every issue of one answer under the same root.
 */
function requestAgreement(value: unknown): Agreement {
  const checked = checkAgreement(value);
  if (checked.ok) return checked.agreement;
  const count = checked.issues.length;
  throw new MalusError('agreement-invalid', `agreement has ${count} error${count === 1 ? '' : 's'}`, {
    issues: checked.issues.map((issue) => ({
      path: issue.path === '' ? 'body.agreement' : `body.agreement.${issue.path}`,
      message: issue.message,
    })),
  });
}

/**
 * Signature decisions on one collaboration run one at a time in this process, so that exactly one
 * signature is the one that completes an agreement and records its activation. (A scaled-out
 * deployment needs the same guarantee from its database.)
 */
const collaborationLocks = new Map<string, Promise<unknown>>();

function serialized<T>(id: string, work: () => Promise<T>): Promise<T> {
  const previous = collaborationLocks.get(id) ?? Promise.resolve();
  const run = previous.then(work, work);
  const tail = run.catch(() => undefined);
  collaborationLocks.set(id, tail);
  void tail.then(() => {
    if (collaborationLocks.get(id) === tail) collaborationLocks.delete(id);
  });
  return run;
}

function partyActor(id: string): { kind: 'party'; id: string } {
  return { kind: 'party', id };
}

/** The activation event, when these signatures complete the agreement inside its window. */
function activationEvent(agreement: Agreement, hash: string, signers: ReadonlySet<string>, now: Date): LogEvent[] {
  const complete = agreement.parties.filter((p) => p.roles.includes('signer')).every((p) => signers.has(p.id));
  if (!complete || now.getTime() >= Date.parse(agreement.validUntil)) return [];
  const effectiveFrom = new Date(Math.max(now.getTime(), Date.parse(agreement.validFrom)));
  return [
    {
      format: 'malus.event/v1',
      type: 'agreement.activated',
      collaboration: agreement.id,
      actor: { kind: 'server', id: 'malus' },
      time: now.toISOString(),
      agreement: hash,
      version: agreement.version,
      effectiveFrom: effectiveFrom.toISOString(),
      supersedes: agreement.previous,
    },
  ];
}

export function proposeAgreement(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  body: { agreement: unknown; signature: AgreementSignature },
): Promise<CollaborationView> {
  const agreement = requestAgreement(body.agreement);
  return serialized(agreement.id, () => proposeChecked(ctx, caller, agreement, body.signature));
}

async function proposeChecked(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  agreement: Agreement,
  signature: AgreementSignature,
): Promise<CollaborationView> {
  const hash = agreementHash(agreement);
  const me = agreement.parties.find((p) => p.id === caller.id);
  if (me?.signingKey !== caller.signingKey) {
    throw new MalusError('forbidden', 'the proposer must be a party to the agreement it proposes');
  }
  if (signature.signer !== caller.id) {
    throw new MalusError('forbidden', `the proposal must carry the proposer's own signature, not ${signature.signer}'s`);
  }
  if (signature.collaboration !== agreement.id || signature.version !== agreement.version) {
    throw new MalusError('signature-wrong-hash', 'signature names a different collaboration or version');
  }
  assertSignatureValid(agreement, hash, signature);

  const existing = await ctx.store.collaborations.listVersions(agreement.id);
  const latest = existing[existing.length - 1];
  if (latest !== undefined) {
    // Amendments come from members only and must extend the newest version.
    if (!(await ctx.store.collaborations.isMember(agreement.id, caller.id))) {
      throw new MalusError('conflict', `collaboration id ${agreement.id} is not available`);
    }
    if (agreement.version !== latest.version + 1 || agreement.previous !== latest.hash) {
      throw new MalusError(
        'conflict',
        `an amendment must have version ${latest.version + 1} and previous ${latest.hash}`,
      );
    }
  } else if (agreement.version !== 1) {
    throw new MalusError('conflict', `collaboration ${agreement.id} does not exist; a new one starts at version 1`);
  }

  const now = ctx.now();
  await ctx.store.collaborations.insertAgreement({
    agreement: {
      hash,
      collaborationId: agreement.id,
      version: agreement.version,
      previous: agreement.previous,
      document: agreement,
      proposedBy: caller.id,
      createdAt: now.toISOString(),
    },
    members: agreement.parties.map((p) => p.id),
    signature: { agreementHash: hash, partyId: caller.id, signature: signature.signature, signedAt: now.toISOString() },
    events: [
      {
        format: 'malus.event/v1',
        type: 'agreement.proposed',
        collaboration: agreement.id,
        actor: partyActor(caller.id),
        time: now.toISOString(),
        agreement: hash,
        version: agreement.version,
        previous: agreement.previous,
      } satisfies LogEvent,
      {
        format: 'malus.event/v1',
        type: 'agreement.signed',
        collaboration: agreement.id,
        actor: partyActor(caller.id),
        time: now.toISOString(),
        agreement: hash,
        version: agreement.version,
        signer: caller.id,
      } satisfies LogEvent,
      ...activationEvent(agreement, hash, new Set([caller.id]), now),
    ].map(toLogAppend),
  });
  return view(await loadVersions(ctx, agreement.id), now);
}

export function addSignature(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  signature: AgreementSignature,
): Promise<{ created: boolean; collaboration: CollaborationView }> {
  return serialized(id, () => addSignatureChecked(ctx, caller, id, signature));
}

async function addSignatureChecked(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  signature: AgreementSignature,
): Promise<{ created: boolean; collaboration: CollaborationView }> {
  const versions = await requireMember(ctx, id, caller);
  if (signature.signer !== caller.id) {
    throw new MalusError('forbidden', `you may submit only your own signature, not ${signature.signer}'s`);
  }
  const target = versions.find((v) => v.record.hash === signature.hash);
  if (target === undefined || signature.collaboration !== id || signature.version !== target.record.version) {
    throw new MalusError('signature-wrong-hash', `signature is over ${signature.hash}, which is not a version of ${id}`);
  }
  assertSignatureValid(target.agreement, target.record.hash, signature);
  const now = ctx.now();
  const signers = new Set([...target.signatures.map((s) => s.partyId), caller.id]);
  const alreadyComplete = activationEvent(target.agreement, target.record.hash, new Set(target.signatures.map((s) => s.partyId)), now);
  const events: LogEvent[] = [
    {
      format: 'malus.event/v1',
      type: 'agreement.signed',
      collaboration: id,
      actor: partyActor(caller.id),
      time: now.toISOString(),
      agreement: target.record.hash,
      version: target.record.version,
      signer: caller.id,
    },
    ...(alreadyComplete.length > 0 ? [] : activationEvent(target.agreement, target.record.hash, signers, now)),
  ];
  const outcome = await ctx.store.collaborations.addSignature(
    { agreementHash: target.record.hash, partyId: caller.id, signature: signature.signature, signedAt: now.toISOString() },
    events.map(toLogAppend),
  );
  return { created: outcome === 'added', collaboration: view(await loadVersions(ctx, id), now) };
}

export async function showCollaboration(ctx: ServerContext, caller: AuthenticatedParty, id: string): Promise<CollaborationView> {
  return view(await requireMember(ctx, id, caller), ctx.now());
}

export async function listCollaborations(ctx: ServerContext, caller: AuthenticatedParty): Promise<CollaborationView[]> {
  const ids = await ctx.store.collaborations.listCollaborationIds(caller.id);
  const now = ctx.now();
  return Promise.all(ids.map(async (id) => view(await loadVersions(ctx, id), now)));
}

export async function getAgreement(
  ctx: ServerContext,
  caller: AuthenticatedParty,
  id: string,
  selector: { version?: number | undefined },
): Promise<{ hash: string; agreement: Agreement; signatures: AgreementSignature[] }> {
  const versions = await requireMember(ctx, id, caller);
  const chosen =
    selector.version === undefined ? versions[versions.length - 1] : versions.find((v) => v.record.version === selector.version);
  if (chosen === undefined) throw new MalusError('not-found', `collaboration ${id} has no version ${selector.version ?? ''}`);
  return {
    hash: chosen.record.hash,
    agreement: chosen.agreement,
    signatures: chosen.signatures.map((s) => toSignature(chosen.record, s)),
  };
}

/** Every version with its signatures, as a worker or an auditor re-checks them. */
export async function versionEvidence(ctx: ServerContext, id: string): Promise<{ agreement: Agreement; signatures: AgreementSignature[] }[]> {
  const versions = await loadVersions(ctx, id);
  return versions.map((v) => ({ agreement: v.agreement, signatures: v.signatures.map((s) => toSignature(v.record, s)) }));
}

/** The collaboration's active agreement, its hash and lineage, recomputed from the stored evidence. */
export async function activeAgreementOf(
  ctx: ServerContext,
  id: string,
  now: Date,
): Promise<{ agreement: Agreement; hash: string; lineage: string[] } | undefined> {
  return activeAgreement(await versionEvidence(ctx, id), now);
}
