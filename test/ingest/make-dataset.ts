// Writes a prepared dataset folder (dataset.mds, manifest.json, data-key.json) the way
// `malus dataset prepare` does, straight from the format functions: tests of upload and of the
// enclave need datasets without running a preparation.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agreementHash, type Agreement } from '../../src/agreement/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import {
  DATASET_FILES,
  MANIFEST_FORMAT,
  datasetSealer,
  newDatasetHeader,
  sealDataKeyForOwner,
  signManifest,
  tableSchemaHash,
  type DatasetHeader,
  type DatasetManifest,
  type SignedManifest,
} from '../../src/ingest/index.js';
import { keyCommitment } from '../../src/keyrelease/index.js';

export interface PreparedDatasetOptions {
  readonly agreement: Agreement;
  /** The table's name in the agreement. */
  readonly table: string;
  /** The owner's keys: they seal the data key and, unless `signer` is given, sign the manifest. */
  readonly keys: PartyKeys;
  /** The plaintext (stands in for the Parquet file); 64 KiB of random bytes by default. */
  readonly payload?: Uint8Array;
  /** Defaults to `<table>-<8 hex>`. */
  readonly dataset?: string;
  readonly rows?: number;
  /** Signs the manifest instead of `keys` (to test refusals). */
  readonly signer?: PartyKeys;
  /** Manifest fields to override before signing (to test refusals). */
  readonly manifest?: Partial<DatasetManifest>;
}

export interface PreparedDataset {
  readonly dir: string;
  readonly dataset: string;
  readonly manifest: SignedManifest;
  readonly header: DatasetHeader;
  readonly dataKey: Uint8Array;
  readonly ciphertext: Buffer;
  readonly paths: { readonly ciphertext: string; readonly manifest: string; readonly dataKey: string };
}

const sha256Ref = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export async function writePreparedDataset(dir: string, options: PreparedDatasetOptions): Promise<PreparedDataset> {
  const { agreement, keys } = options;
  const table = agreement.tables.find((t) => t.name === options.table);
  if (table === undefined) throw new Error(`the agreement has no table ${options.table}`);
  const dataset = options.dataset ?? `${table.name.toLowerCase()}-${randomBytes(4).toString('hex')}`;
  const hash = agreementHash(agreement);
  const rows = options.rows ?? 3;
  const header = newDatasetHeader({
    dataset,
    collaboration: agreement.id,
    agreementHash: hash,
    table: table.name,
    owner: keys.identity.id,
    schemaHash: tableSchemaHash(table),
    rows,
  });
  const dataKey = new Uint8Array(randomBytes(32));
  const sealer = datasetSealer(header, dataKey);
  const payload = options.payload ?? randomBytes(64 * 1024);
  const ciphertext = Buffer.concat([sealer.prefix, ...sealer.push(payload), sealer.finish()]);
  const manifest: DatasetManifest = {
    format: MANIFEST_FORMAT,
    dataset,
    collaboration: agreement.id,
    agreementHash: hash,
    table: table.name,
    owner: keys.identity.id,
    schemaHash: header.schemaHash,
    rows,
    headerHash: sha256Ref(sealer.prefix),
    ciphertext: { sha256: sha256Ref(ciphertext), bytes: ciphertext.length },
    keyCommitment: keyCommitment(dataKey, agreement.id, dataset),
    source: 'csv',
    createdAt: new Date().toISOString(),
    ...options.manifest,
  };
  const signer = options.signer ?? keys;
  const signed = signManifest(manifest, { partyId: signer.identity.id, signingSecret: signer.signingSecret });
  const sealedKey = await sealDataKeyForOwner(dataKey, { collaboration: agreement.id, dataset }, keys);
  mkdirSync(dir, { recursive: true });
  const paths = {
    ciphertext: join(dir, DATASET_FILES.ciphertext),
    manifest: join(dir, DATASET_FILES.manifest),
    dataKey: join(dir, DATASET_FILES.dataKey),
  };
  writeFileSync(paths.ciphertext, ciphertext);
  writeFileSync(paths.manifest, `${JSON.stringify(signed, null, 2)}\n`);
  writeFileSync(paths.dataKey, `${JSON.stringify(sealedKey, null, 2)}\n`, { mode: 0o600 });
  return { dir, dataset, manifest: signed, header, dataKey, ciphertext, paths };
}
