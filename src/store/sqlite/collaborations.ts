import type Database from 'better-sqlite3';
import canonicalize from 'canonicalize';
import { MalusError } from '../../errors/index.js';
import type { AgreementRecord, CollaborationRepository, LogAppend, SignatureRecord } from '../types.js';
import { attempt, isUniqueViolation } from './errors.js';
import { logAppender } from './log.js';

interface AgreementRow {
  hash: string;
  collaboration_id: string;
  version: number;
  previous: string | null;
  document: string;
  proposed_by: string;
  created_at: string;
}

interface SignatureRow {
  agreement_hash: string;
  party_id: string;
  signature: string;
  signed_at: string;
}

const AGREEMENT_COLUMNS = 'hash, collaboration_id, version, previous, document, proposed_by, created_at';
const SIGNATURE_COLUMNS = 'agreement_hash, party_id, signature, signed_at';

export function sqliteCollaborations(db: Database.Database): CollaborationRepository {
  const hashExists = db.prepare<[string], 1>('SELECT 1 FROM agreements WHERE hash = ?').pluck();
  const versionExists = db
    .prepare<[string, number], 1>('SELECT 1 FROM agreements WHERE collaboration_id = ? AND version = ?')
    .pluck();
  const insertAgreementRow = db.prepare<[AgreementRow]>(
    `INSERT INTO agreements (${AGREEMENT_COLUMNS})
     VALUES (@hash, @collaboration_id, @version, @previous, @document, @proposed_by, @created_at)`,
  );
  const insertMember = db.prepare<[string, string]>(
    'INSERT INTO agreement_members (agreement_hash, party_id) VALUES (?, ?)',
  );
  const insertSignature = db.prepare<[SignatureRow]>(
    `INSERT INTO signatures (${SIGNATURE_COLUMNS}) VALUES (@agreement_hash, @party_id, @signature, @signed_at)
     ON CONFLICT (agreement_hash, party_id) DO NOTHING`,
  );
  const selectAgreement = db.prepare<[string], AgreementRow>(
    `SELECT ${AGREEMENT_COLUMNS} FROM agreements WHERE hash = ?`,
  );
  const selectVersions = db.prepare<[string], AgreementRow>(
    `SELECT ${AGREEMENT_COLUMNS} FROM agreements WHERE collaboration_id = ? ORDER BY version`,
  );
  const selectSignatures = db.prepare<[string], SignatureRow>(
    `SELECT ${SIGNATURE_COLUMNS} FROM signatures WHERE agreement_hash = ? ORDER BY signed_at, party_id`,
  );
  // BINARY collation: ids sort by UTF-8 bytes, which is code point order.
  const selectCollaborationIds = db
    .prepare<[string], string>(
      `SELECT DISTINCT a.collaboration_id FROM agreement_members m
       JOIN agreements a ON a.hash = m.agreement_hash
       WHERE m.party_id = ? ORDER BY a.collaboration_id`,
    )
    .pluck();
  const selectMembership = db
    .prepare<[string, string], 1>(
      `SELECT 1 FROM agreement_members m JOIN agreements a ON a.hash = m.agreement_hash
       WHERE m.party_id = ? AND a.collaboration_id = ? LIMIT 1`,
    )
    .pluck();

  const appendEvents = logAppender(db);

  // IMMEDIATE: the existence checks and the inserts must see the same snapshot, and a deferred
  // transaction that upgrades from read to write can fail with SQLITE_BUSY despite busy_timeout.
  const insertAll = db.transaction(
    (row: AgreementRow, members: ReadonlySet<string>, signature: SignatureRow, events: readonly LogAppend[]) => {
    if (hashExists.get(row.hash) !== undefined) {
      throw new MalusError('conflict', `Agreement ${row.hash} is already stored`);
    }
    if (versionExists.get(row.collaboration_id, row.version) !== undefined) {
      throw new MalusError('conflict', `Collaboration ${row.collaboration_id} already has version ${row.version}`);
    }
    insertAgreementRow.run(row);
    for (const partyId of members) insertMember.run(row.hash, partyId);
    insertSignature.run(signature);
    if (events.length > 0) appendEvents(events);
  });

  const signOnce = db.transaction((row: SignatureRow, events: readonly LogAppend[]): 'added' | 'duplicate' => {
    if (hashExists.get(row.agreement_hash) === undefined) {
      throw new MalusError('not-found', `No agreement ${row.agreement_hash} is stored`);
    }
    if (insertSignature.run(row).changes !== 1) return 'duplicate';
    if (events.length > 0) appendEvents(events);
    return 'added';
  });

  return {
    insertAgreement({ agreement, members, signature, events = [] }) {
      return attempt(db, 'store the agreement', () => {
        if (signature.agreementHash !== agreement.hash) {
          throw new MalusError(
            'invalid-input',
            `The proposer's signature is over ${signature.agreementHash}, not ${agreement.hash}`,
          );
        }
        const row = toAgreementRow(agreement);
        try {
          insertAll.immediate(row, new Set(members), toSignatureRow(signature), events);
        } catch (error) {
          if (isUniqueViolation(error)) {
            const message = `Agreement ${agreement.hash} conflicts with a stored one`;
            throw new MalusError('conflict', message, { cause: error });
          }
          throw error;
        }
      });
    },

    getAgreement(hash) {
      return attempt(db, 'read the agreement', () => {
        const row = selectAgreement.get(hash);
        return row === undefined ? undefined : fromAgreementRow(row);
      });
    },

    listVersions(collaborationId) {
      return attempt(db, 'list agreement versions', () => selectVersions.all(collaborationId).map(fromAgreementRow));
    },

    addSignature(signature, events = []) {
      return attempt(db, 'store the signature', () => signOnce.immediate(toSignatureRow(signature), events));
    },

    listSignatures(agreementHash) {
      return attempt(db, 'list signatures', () => selectSignatures.all(agreementHash).map(fromSignatureRow));
    },

    listCollaborationIds(partyId) {
      return attempt(db, 'list collaborations', () => selectCollaborationIds.all(partyId));
    },

    isMember(collaborationId, partyId) {
      return attempt(db, 'check membership', () => selectMembership.get(partyId, collaborationId) !== undefined);
    },
  };
}

function toAgreementRow(agreement: AgreementRecord): AgreementRow {
  const { document, version } = agreement;
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new MalusError('invalid-input', `The agreement version must be a positive integer, not ${String(version)}`);
  }
  // The type says object, but callers pass parsed JSON: check at the boundary anyway.
  const value: unknown = document;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalusError('invalid-input', 'The agreement document must be a JSON object');
  }
  let text: string | undefined;
  try {
    text = canonicalize(document);
  } catch (error) {
    throw new MalusError('invalid-input', 'The agreement document is not valid JSON', { cause: error });
  }
  if (text === undefined) throw new MalusError('invalid-input', 'The agreement document is not valid JSON');
  return {
    hash: agreement.hash,
    collaboration_id: agreement.collaborationId,
    version,
    previous: agreement.previous,
    document: text,
    proposed_by: agreement.proposedBy,
    created_at: agreement.createdAt,
  };
}

function fromAgreementRow(row: AgreementRow): AgreementRecord {
  return {
    hash: row.hash,
    collaborationId: row.collaboration_id,
    version: row.version,
    previous: row.previous,
    document: JSON.parse(row.document) as Record<string, unknown>,
    proposedBy: row.proposed_by,
    createdAt: row.created_at,
  };
}

function toSignatureRow(signature: SignatureRecord): SignatureRow {
  return {
    agreement_hash: signature.agreementHash,
    party_id: signature.partyId,
    signature: signature.signature,
    signed_at: signature.signedAt,
  };
}

function fromSignatureRow(row: SignatureRow): SignatureRecord {
  return {
    agreementHash: row.agreement_hash,
    partyId: row.party_id,
    signature: row.signature,
    signedAt: row.signed_at,
  };
}
