import type { PublicIdentity } from '../identity/index.js';
import { assertAgreement, parseAgreementText } from './parse.js';
import type { Agreement } from './schema.js';

// The example collaboration `malus agreement init` writes and `malus demo` runs: an advertiser and a
// publisher measure campaign reach and conversions by joining on a pseudonymized e-mail address.

export interface ExampleParties {
  readonly advertiser: Omit<PublicIdentity, 'format'>;
  readonly publisher: Omit<PublicIdentity, 'format'>;
  readonly operator: Omit<PublicIdentity, 'format'>;
}

export interface ExampleOptions {
  readonly id?: string;
  /** Start of the validity window; the window lasts 90 days. */
  readonly validFrom: Date;
  /** Enclave measurements to pin (`malus enclave measure`); `agreement init` and the demo pin the build's. */
  readonly measurements?: readonly string[];
  /** The providers' join-key commitment (`malus dataset join-secret`), when they have made one. */
  readonly joinKeyCommitment?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** The campaigns the parties publish: a public domain of the privacy policy. */
const CAMPAIGN_LIST = 'cmp-spring, cmp-summer, cmp-autumn, cmp-winter, cmp-brand, cmp-retarget';

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The example as commented YAML: the text a person reads and edits. */
export function exampleAgreementYaml(parties: ExampleParties, options: ExampleOptions): string {
  const { advertiser: adv, publisher: pub, operator: op } = parties;
  const from = new Date(Math.floor(options.validFrom.getTime() / 1000) * 1000);
  const until = new Date(from.getTime() + 90 * DAY_MS);
  // Every value is quoted: a hex id such as 1234567e890123456789 would otherwise be read as a number.
  const q = (text: string): string => JSON.stringify(text);
  return `# A Malus collaboration agreement (format malus.agreement/v1, see docs/agreement.md).
# Every party named with the signer role signs the SHA-256 hash of this document's RFC 8785
# canonical JSON form; once all have signed, and inside the validity window, it is active.
# Unknown fields are errors: a typo never silently weakens a rule.
format: malus.agreement/v1
id: ${options.id ?? 'campaign-measurement'}   # the collaboration id
title: Campaign reach and conversions
description: >-
  An advertiser and a publisher learn how many of the publisher's viewers of each campaign went on
  to buy from the advertiser, and how much they spent, without either side seeing the other's rows.
version: 1
previous: null      # for an amendment: sha256:<hex> of the version it replaces
validFrom: ${rfc3339(from)}
validUntil: ${rfc3339(until)}

# Party ids are derived from the signing key (first 10 bytes of its SHA-256, in hex):
# \`malus keygen --public FILE\` prints them. Keys are raw 32-byte keys in base64url.
parties:
  - id: ${q(adv.id)}
    name: ${q(adv.name)}
    signingKey: ${q(adv.signingKey)}       # Ed25519
    encryptionKey: ${q(adv.encryptionKey)}    # X25519: results are sealed to it
    roles: [provider, analyst, receiver, payer, signer]
  - id: ${q(pub.id)}
    name: ${q(pub.name)}
    signingKey: ${q(pub.signingKey)}
    encryptionKey: ${q(pub.encryptionKey)}
    roles: [provider, payee, signer]
  - id: ${q(op.id)}
    name: ${q(op.name)}
    signingKey: ${q(op.signingKey)}
    encryptionKey: ${q(op.encryptionKey)}
    roles: [auditor]    # hosts Malus; may audit the log, never sees rows

# Column types are DuckDB type names. Analysis rules use AWS Clean Rooms' field names.
tables:
  - name: conversions
    owner: ${q(adv.id)}
    description: The advertiser's purchases, one row per order.
    columns:
      # Normalized, then replaced by HMAC-SHA256 under the providers' join key at \`dataset prepare\`.
      - { name: email_hash, type: VARCHAR, normalize: [trim, lowercase], description: SHA-256 of the e-mail address }
      - { name: campaign_id, type: VARCHAR }
      - { name: order_date, type: DATE }
      - { name: order_value, type: "DECIMAL(12,2)" }
    identityColumn: email_hash    # the person a row is about: the unit of thresholds and privacy
    analysisRule:
      type: aggregation
      aggregateColumns:
        - { columnNames: [order_value], function: SUM }
        - { columnNames: [email_hash], function: COUNT_DISTINCT }
      joinColumns: [email_hash]
      joinRequired: true              # only ever queried joined with the publisher's table
      allowedJoinOperators: [AND]
      dimensionColumns: [campaign_id, order_date]
      scalarFunctions: [TRUNC, DATE_TRUNC]
      outputConstraints:              # drop any output row about fewer than 50 people
        - { columnName: email_hash, minimum: 50, type: COUNT_DISTINCT }
  - name: impressions
    owner: ${q(pub.id)}
    description: The publisher's ad impressions, one row per view.
    columns:
      - { name: email_hash, type: VARCHAR, normalize: [trim, lowercase] }
      - { name: campaign_id, type: VARCHAR }
      - { name: shown_at, type: TIMESTAMP }
      - { name: placement, type: VARCHAR }
      - { name: device_type, type: VARCHAR }
    identityColumn: email_hash
    analysisRule:
      type: aggregation
      aggregateColumns:
        - { columnNames: [email_hash], function: COUNT_DISTINCT }
      joinColumns: [email_hash]
      allowedJoinOperators: [AND]
      dimensionColumns: [campaign_id, placement, device_type]
      scalarFunctions: [DATE_TRUNC]
      outputConstraints:
        - { columnName: email_hash, minimum: 50, type: COUNT_DISTINCT }

# Queries both owners approved in advance; an analyst supplies only the parameters.
templates:
  - name: reach_and_conversions
    description: Viewers, buyers and revenue per campaign since a date.
    sql: >-
      SELECT i.campaign_id,
             COUNT(DISTINCT i.email_hash) AS viewers,
             COUNT(DISTINCT c.email_hash) AS buyers,
             SUM(c.order_value) AS revenue
      FROM impressions i LEFT JOIN conversions c
        ON i.email_hash = c.email_hash AND i.campaign_id = c.campaign_id
      WHERE i.shown_at >= $since
      GROUP BY i.campaign_id
    parameters:
      - { name: since, type: DATE, min: "2020-01-01", max: "2099-12-31" }
    outputConstraints:    # Malus drops any campaign with fewer than 50 viewers
      - { table: impressions, columnName: email_hash, minimum: 50, type: COUNT_DISTINCT }
    approvedBy: [${q(adv.id)}, ${q(pub.id)}]
  - name: buyers_by_campaign
    description: Buyers among each campaign's viewers, up to a date.
    sql: >-
      SELECT i.campaign_id, COUNT(DISTINCT c.email_hash) AS buyers
      FROM conversions c JOIN impressions i ON c.email_hash = i.email_hash
      WHERE c.order_date <= $until
      GROUP BY i.campaign_id
    parameters:
      - { name: until, type: DATE, min: "2020-01-01", max: "2099-12-31" }
    outputConstraints:
      - { table: conversions, columnName: email_hash, minimum: 50, type: COUNT_DISTINCT }
    approvedBy: [${q(adv.id)}, ${q(pub.id)}]

# Differential privacy (docs/dp.md): the advertiser answers nothing about its purchases without
# noise. Every query that reads conversions spends epsilon 1 of a budget of 7 that refreshes
# monthly; each buyer counts with at most 3 orders in each of at most 3 campaigns, each order
# clamped to 0..200; the six large campaigns are public, so exactly those are released.
privacy:
  accounting: pure
  budget: { epsilon: 7 }
  refresh: monthly
  policies:
    - table: conversions
      required: true
      mechanism: laplace
      costPerQuery: { epsilon: 1 }
      maxRowsPerIdentity: 3
      maxGroupsPerIdentity: 3
      bounds:
        - { column: order_value, lower: 0, upper: 200 }
      publicDomain:
        - { table: impressions, column: campaign_id, values: [${CAMPAIGN_LIST}] }
        - { column: campaign_id, values: [${CAMPAIGN_LIST}] }

# Computations on cryptography alone, with no enclave (docs/psi.md): the advertiser may learn how
# many customers the two share, by private set intersection over normalized e-mail hashes.
psi:
  - name: customer_overlap
    sender: ${q(pub.id)}
    receiver: ${q(adv.id)}
    modes: [cardinality]
    normalize: [trim, lowercase]
    maxSetSize: 1000000

receivers: [${q(adv.id)}]    # results are sealed to these parties only

# Which enclaves may receive the data keys. \`sim\` is the simulated platform for development:
# it is NOT confidential and every result made under it says so. Only enclaves whose measurement
# is listed qualify (\`malus enclave measure\` prints the one of this build); an empty list pins
# nothing, so no enclave would qualify.
enclave:
  platforms: [sim]
  measurements: [${(options.measurements ?? []).map((m) => q(m)).join(', ')}]
  maxEvidenceAgeSeconds: 300
  allowDebug: false

keyRelease:
  endpoints: []     # empty: the key-release service embedded in the Malus server
${
  options.joinKeyCommitment === undefined
    ? ''
    : `
# The providers' shared join secret, by commitment only: a provider holding another one is stopped
# at \`dataset prepare\` (see docs/dataset-preparation.md).
joinKey:
  commitment: ${q(options.joinKeyCommitment)}
`
}
settlement:
  chainId: 31337    # the embedded development chain
  currency: { type: native }
  payer: ${q(adv.id)}
  payees: [{ party: ${q(pub.id)}, shareBasisPoints: 10000 }]
  pricePerResult: "1000000000000000"   # in wei: 0.001 ether per released result
`;
}

/** The example as a validated document. */
export function exampleAgreement(parties: ExampleParties, options: ExampleOptions): Agreement {
  return assertAgreement(parseAgreementText(exampleAgreementYaml(parties, options)), 'example agreement');
}
