import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { pseudonymizedColumns, type Agreement, type Table } from '../../agreement/index.js';
import { fromBase64Url, signEd25519, toBase64Url, utf8, verifyEd25519 } from '../../crypto/index.js';
import { decodeSigningKey } from '../../identity/index.js';
import { DATASET_ID_PATTERN } from './container.js';

// The dataset manifest, `malus.dataset-manifest/v1`: what the owner vouches for, signed with its
// Ed25519 key. The server and the enclave both check it against the active agreement; it holds
// hashes and counts only, never a value from the data.

export const MANIFEST_FORMAT = 'malus.dataset-manifest/v1';
const SIGNED_PREFIX = 'malus.dataset-manifest/v1 signature\n';

const sha256Ref = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 lower-case hex>');

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  dataset: z.string().regex(DATASET_ID_PATTERN, 'expected a dataset id: 3 to 64 characters, a-z, 0-9, ".", "_", "-"'),
  collaboration: z.string().min(1).max(64),
  agreementHash: sha256Ref,
  table: z.string().min(1).max(63),
  owner: z.string().regex(/^[0-9a-f]{20}$/, 'expected a party id'),
  schemaHash: sha256Ref,
  rows: z.number().int().min(0),
  /** SHA-256 of the header bytes (magic, length, header): the enclave checks the file it opens. */
  headerHash: sha256Ref,
  ciphertext: z.strictObject({ sha256: sha256Ref, bytes: z.number().int().min(1) }),
  /** Commits to the data key (keyrelease keyCommitment): the registered key must be this one. */
  keyCommitment: sha256Ref,
  source: z.enum(['csv', 'parquet', 'jsonl', 'c3r']),
  createdAt: z.string().max(64),
});

export const signedManifestSchema = z.strictObject({
  manifest: manifestSchema,
  signature: z.strictObject({
    signer: z.string().regex(/^[0-9a-f]{20}$/, 'expected a party id'),
    value: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'expected 64 bytes of base64url'),
  }),
});

export type DatasetManifest = z.infer<typeof manifestSchema>;
export type SignedManifest = z.infer<typeof signedManifestSchema>;

const sha256Of = (bytes: Uint8Array | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * What a dataset's columns mean: names, types, normalizers, which are pseudonymized, C3R kinds. A
 * dataset prepared under one schema is never read under another, even across amendments.
 */
export function tableSchemaHash(table: Table): string {
  return sha256Of(
    canonicalize({
      format: 'malus.table-schema/v1',
      name: table.name,
      owner: table.owner,
      identityColumn: table.identityColumn,
      columns: table.columns.map((c) => ({ name: c.name, type: c.type, normalize: c.normalize ?? [], c3r: c.c3r ?? null })),
      pseudonymized: pseudonymizedColumns(table),
      c3r: table.c3r ?? null,
    }) ?? '',
  );
}

function signedBytes(manifest: DatasetManifest): Uint8Array {
  return utf8(SIGNED_PREFIX + (canonicalize(manifest) ?? ''));
}

export function signManifest(manifest: DatasetManifest, signer: { partyId: string; signingSecret: Uint8Array }): SignedManifest {
  return { manifest, signature: { signer: signer.partyId, value: toBase64Url(signEd25519(signer.signingSecret, signedBytes(manifest))) } };
}

export const MANIFEST_REASON_CODES = [
  'wrong-collaboration',
  'unknown-table',
  'not-owner',
  'not-provider',
  'schema-mismatch',
  'rows-out-of-bounds',
  'agreement-not-in-lineage',
  'bad-signature',
] as const;

export interface ManifestReason {
  readonly code: (typeof MANIFEST_REASON_CODES)[number];
  readonly message: string;
}

/**
 * Checks a signed manifest against the agreement in force: signed by the table's owner, a provider,
 * for a table and schema of this agreement, prepared under it or under one of its ancestors.
 */
export function verifyManifest(
  signed: SignedManifest,
  active: { agreement: Agreement; lineage: readonly string[] },
): { ok: true; table: Table } | { ok: false; reasons: ManifestReason[] } {
  const { manifest, signature } = signed;
  const { agreement } = active;
  const reasons: ManifestReason[] = [];
  if (manifest.collaboration !== agreement.id) {
    reasons.push({ code: 'wrong-collaboration', message: `the manifest is for collaboration ${manifest.collaboration}, not ${agreement.id}` });
  }
  const table = agreement.tables.find((t) => t.name === manifest.table);
  if (table === undefined) {
    reasons.push({ code: 'unknown-table', message: `the agreement has no table ${manifest.table}` });
  } else {
    if (table.owner !== manifest.owner || signature.signer !== table.owner) {
      reasons.push({ code: 'not-owner', message: `table ${table.name} belongs to ${table.owner}; the manifest is signed by ${signature.signer} for owner ${manifest.owner}` });
    }
    const { min, max } = table.rows ?? {};
    if ((min !== undefined && manifest.rows < min) || (max !== undefined && manifest.rows > max)) {
      reasons.push({ code: 'rows-out-of-bounds', message: `the dataset has ${manifest.rows} rows; table ${table.name} takes ${min ?? 0} to ${max ?? 'any number of'}` });
    }
    if (tableSchemaHash(table) !== manifest.schemaHash) {
      reasons.push({ code: 'schema-mismatch', message: `the dataset was prepared for a different schema of table ${table.name} than the agreement now states` });
    }
  }
  const signer = agreement.parties.find((p) => p.id === signature.signer);
  if (signer === undefined || !signer.roles.includes('provider')) {
    reasons.push({ code: 'not-provider', message: `${signature.signer} is not a data provider of the agreement` });
  }
  if (!active.lineage.includes(manifest.agreementHash)) {
    reasons.push({ code: 'agreement-not-in-lineage', message: `the dataset was prepared under agreement ${manifest.agreementHash}, which is not the active agreement or one it amends` });
  }
  if (signer !== undefined) {
    const decoded = decodeSigningKey(signer.signingKey);
    const value = fromBase64Url(signature.value);
    if (!('key' in decoded) || value === undefined || !verifyEd25519(decoded.key, signedBytes(manifest), value)) {
      reasons.push({ code: 'bad-signature', message: `the manifest signature does not verify under ${signature.signer}'s signing key` });
    }
  }
  return reasons.length === 0 && table !== undefined ? { ok: true, table } : { ok: false, reasons };
}

export { sha256Of };
