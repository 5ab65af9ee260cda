import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { assertAgreement, type Agreement } from '../../src/agreement/index.js';
import { DATA_SCHEMA } from '../../src/rules/index.js';
import { makeAgreement, makeKeys, mutable } from '../agreement/helpers.js';

/**
 * The example agreement (aggregation rules on conversions and impressions, the
 * reach_and_conversions template) plus two list-rule tables and a custom-rule table with its
 * templates, so that every rule type is exercised.
 */
export function rulesAgreement(): Agreement {
  const keys = makeKeys();
  const d = mutable(makeAgreement(keys));
  // The rule tests check k-only SQL; the DP tests set their own privacy policies.
  d.privacy.policies = [];
  const advertiser = keys.advertiser.identity.id;
  const publisher = keys.publisher.identity.id;
  const listRule = (listColumns: string[]) => ({
    type: 'list',
    joinColumns: ['email_hash'],
    listColumns,
    outputConstraints: [{ columnName: 'email_hash', minimum: 10, type: 'COUNT_DISTINCT' }],
  });
  (d.tables[0].analysisRule.aggregateColumns as unknown[]).push({ columnNames: ['order_value'], function: 'AVG' });
  (d.tables as unknown[]).push(
    {
      name: 'audiences',
      owner: publisher,
      columns: [
        { name: 'email_hash', type: 'VARCHAR' },
        { name: 'segment', type: 'VARCHAR' },
        { name: 'region', type: 'VARCHAR' },
      ],
      identityColumn: 'email_hash',
      analysisRule: listRule(['segment', 'region']),
    },
    {
      name: 'loyalty',
      owner: advertiser,
      columns: [
        { name: 'email_hash', type: 'VARCHAR' },
        { name: 'tier', type: 'VARCHAR' },
        { name: 'points', type: 'BIGINT' },
      ],
      identityColumn: 'email_hash',
      analysisRule: listRule(['tier']),
    },
    {
      name: 'claims',
      owner: advertiser,
      columns: [
        { name: 'email_hash', type: 'VARCHAR' },
        { name: 'amount', type: 'DECIMAL(12,2)' },
        { name: 'filed_on', type: 'DATE' },
        { name: 'kind', type: 'VARCHAR' },
      ],
      identityColumn: 'email_hash',
      analysisRule: { type: 'custom', allowedTemplates: ['claims_total', 'claims_by_kind'] },
    },
  );
  (d.templates as unknown[]).push(
    {
      name: 'claims_total',
      sql: 'SELECT count(DISTINCT email_hash) AS people, sum(amount) AS total FROM claims WHERE amount >= $floor AND filed_on >= $since',
      parameters: [
        { name: 'floor', type: 'DOUBLE', min: 0, max: 1000000 },
        { name: 'since', type: 'DATE', min: '2020-01-01', max: '2099-12-31' },
      ],
      approvedBy: [advertiser],
    },
    {
      name: 'claims_by_kind',
      sql: "WITH recent AS (SELECT * FROM claims WHERE filed_on >= DATE '2025-01-01') SELECT kind, count(*) AS n FROM recent WHERE kind = $kind GROUP BY kind",
      parameters: [{ name: 'kind', type: 'VARCHAR', max: 40 }],
      approvedBy: [advertiser],
    },
    {
      name: 'viewers_only',
      sql: 'SELECT i.campaign_id, count(DISTINCT i.email_hash) AS viewers FROM impressions i GROUP BY i.campaign_id',
      parameters: [],
      approvedBy: [advertiser],
    },
    {
      name: 'sneaky_file',
      sql: "SELECT count(*) AS n FROM read_csv('/etc/passwd')",
      parameters: [],
      approvedBy: [advertiser, publisher],
    },
    {
      name: 'tier_by_mode',
      sql: 'SELECT tier, count(*) AS n, $label AS label, $limit AS top FROM loyalty GROUP BY tier',
      parameters: [
        { name: 'label', type: 'VARCHAR', values: ['gold', 'silver'] },
        { name: 'limit', type: 'BIGINT', min: 1, max: 100 },
      ],
      outputConstraints: [{ table: 'loyalty', columnName: 'email_hash', minimum: 10, type: 'COUNT_DISTINCT' }],
      approvedBy: [advertiser],
    },
  );
  return assertAgreement(d, 'rules test agreement');
}

/** An in-memory DuckDB with the agreement's tables, empty, in the schema rewritten queries read. */
export async function emptyTables(agreement: Agreement): Promise<{ connection: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`CREATE SCHEMA ${DATA_SCHEMA}`);
  for (const table of agreement.tables) {
    const columns = table.columns.map((c) => `"${c.name}" ${c.type}`).join(', ');
    await connection.run(`CREATE TABLE ${DATA_SCHEMA}."${table.name}" (${columns})`);
  }
  return {
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}
