// Collaborations whose agreement requires differential privacy on the publisher's impressions, for
// the budget tests: proposed, signed and given a dataset through the real client and server.

import { randomBytes } from 'node:crypto';
import { agreementHash, assertAgreement, exampleAgreement, signAgreement, type Agreement, type PrivacySettings } from '../../src/agreement/index.js';
import { createClient, proposeCollaboration, signCollaboration, uploadDataset } from '../../src/client/index.js';
import type { PartyKeys } from '../../src/identity/index.js';
import { datasetOf, impressionsSql } from '../engine/query-fixtures.js';
import { writePreparedDataset } from '../ingest/make-dataset.js';
import type { Parties } from './helpers.js';

/** A DP query the checker allows under the policy below: it costs epsilon 1/10 and delta 1/100000. */
export const DP_SQL = 'SELECT campaign_id, COUNT(DISTINCT email_hash) AS viewers FROM impressions GROUP BY campaign_id';

export interface DpOptions {
  readonly id: string;
  readonly measurements: readonly string[];
  /** Defaults: epsilon 1 (ten queries), delta 1/1000, refreshed monthly, no analyst budgets. */
  readonly privacy?: Partial<PrivacySettings>;
}

export function dpAgreement(parties: Parties, options: DpOptions): Agreement {
  const base = exampleAgreement(
    { advertiser: parties.advertiser.identity, publisher: parties.publisher.identity, operator: parties.operator.identity },
    { id: options.id, validFrom: new Date(Date.now() - 60_000), measurements: options.measurements },
  );
  const privacy: PrivacySettings = {
    accounting: 'pure',
    budget: { epsilon: 1, delta: 0.001 },
    refresh: 'monthly',
    policies: [{ table: 'impressions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 0.1 }, partitionSelection: { delta: 0.00001 } }],
    ...options.privacy,
  };
  return assertAgreement({ ...base, privacy }, 'DP test agreement');
}

/**
 * Proposes and signs the agreement on a running server and uploads one impressions dataset: real
 * rows (impressionsSql) with `rows: true`, else a payload no enclave can read, for jobs that never run.
 */
export async function establishDp(server: string, parties: Parties, work: string, options: DpOptions & { readonly rows?: boolean }): Promise<Agreement> {
  const agreement = dpAgreement(parties, options);
  const client = (keys: PartyKeys) => createClient({ server, keys });
  const signature = (party: PartyKeys) => signAgreement(agreement, agreementHash(agreement), { partyId: party.identity.id, signingSecret: party.signingSecret }, new Date());
  await proposeCollaboration(client(parties.advertiser), { agreement, signature: signature(parties.advertiser) });
  await signCollaboration(client(parties.publisher), agreement.id, signature(parties.publisher));
  const impressions = impressionsSql();
  const folder =
    options.rows === true
      ? await datasetOf(work, { agreement, table: 'impressions', keys: parties.publisher, sql: impressions.sql, rows: impressions.rows })
      : await writePreparedDataset(`${work}/${agreement.id}-impressions`, { agreement, table: 'impressions', keys: parties.publisher, payload: randomBytes(1024) });
  await uploadDataset(client(parties.publisher), { dir: folder.dir, agreement });
  return agreement;
}
