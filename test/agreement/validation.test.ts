import { describe, expect, it } from 'vitest';
import {
  COLUMN_TYPES,
  ROLES,
  assertAgreement,
  checkAgreement,
  isColumnType,
  type Agreement,
} from '../../src/agreement/index.js';
import { toBase64Url } from '../../src/crypto/index.js';
import type { Issue } from '../../src/errors/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';
import { expectMalusError, makeAgreement, makeKeys, mutable } from './helpers.js';

const keys = makeKeys();
const base: Agreement = makeAgreement(keys);
const ADV = keys.advertiser.identity.id;
const PUB = keys.publisher.identity.id;
const OP = keys.operator.identity.id;
const STRANGER = generatePartyKeys('Stranger').identity;
const UNKNOWN_ID = 'ffffffffffffffffffff';
const COLUMN_TYPE_MESSAGE = `expected one of ${COLUMN_TYPES.join(', ')}`;
const ZERO_KEY = toBase64Url(new Uint8Array(32));

/** The issues checkAgreement reports for the example after `change`. */
function issuesAfter(change: (doc: any) => void): Issue[] {
  const doc = mutable(base);
  change(doc);
  const result = checkAgreement(doc);
  if (result.ok) return [];
  return result.issues;
}

function validAfter(change: (doc: any) => void): boolean {
  const doc = mutable(base);
  change(doc);
  return checkAgreement(doc).ok;
}

describe('the example agreement', () => {
  it('is valid and has the shape the cases below rely on', () => {
    expect(checkAgreement(mutable(base))).toEqual({ ok: true, agreement: base });
    expect(base.parties.map((p) => [p.id, p.name, p.roles])).toEqual([
      [ADV, 'Advertiser', ['provider', 'analyst', 'receiver', 'payer', 'signer']],
      [PUB, 'Publisher', ['provider', 'payee', 'signer']],
      [OP, 'Operator', ['auditor']],
    ]);
    expect(base.tables.map((t) => [t.name, t.owner])).toEqual([
      ['conversions', ADV],
      ['impressions', PUB],
    ]);
    expect(base.tables[0]?.columns[3]).toEqual({ name: 'order_value', type: 'DECIMAL(12,2)' });
    expect(base.templates?.map((t) => [t.name, t.approvedBy])).toEqual([
      ['reach_and_conversions', [ADV, PUB]],
      ['buyers_by_campaign', [ADV, PUB]],
    ]);
    expect(base.validFrom).toBe('2026-01-01T00:00:00Z');
    expect(base.validUntil).toBe('2026-04-01T00:00:00Z');
  });

  it('does not change the value it validates', () => {
    const doc = mutable(base);
    const before = JSON.stringify(doc);
    checkAgreement(doc);
    expect(JSON.stringify(doc)).toBe(before);
  });
});

type Case = readonly [name: string, change: (doc: any) => void, issues: Issue[]];

const schemaCases: Case[] = [
  ['missing field (title)', (d) => delete d.title, [{ path: 'title', message: 'required (expected string)' }]],
  ['wrong type (version: "1")', (d) => (d.version = '1'), [{ path: 'version', message: 'expected number, received string' }]],
  ['a non-integer version', (d) => (d.version = 1.5), [{ path: 'version', message: 'expected int, received number' }]],
  ['version 0', (d) => (d.version = 0), [{ path: 'version', message: 'expected at least 1' }]],
  ['wrong format', (d) => (d.format = 'malus.agreement/v2'), [{ path: 'format', message: 'expected malus.agreement/v1' }]],
  ['an array where an array is not expected', (d) => (d.enclave = []), [{ path: 'enclave', message: 'expected object, received array' }]],
  ['an object where an array is expected', (d) => (d.tables = {}), [{ path: 'tables', message: 'expected array, received object' }]],
  ['unknown top-level field', (d) => (d.colour = 'red'), [{ path: 'colour', message: 'unknown field' }]],
  [
    'unknown nested field (tables[0].columns[0].extra)',
    (d) => (d.tables[0].columns[0].extra = true),
    [{ path: 'tables[0].columns[0].extra', message: 'unknown field' }],
  ],
  [
    'misspelt optional field (joinRequierd)',
    (d) => (d.tables[0].analysisRule.joinRequierd = true),
    [{ path: 'tables[0].analysisRule.joinRequierd', message: 'unknown field' }],
  ],
  ['bad column type', (d) => (d.tables[1].columns[0].type = 'TEXT'), [{ path: 'tables[1].columns[0].type', message: COLUMN_TYPE_MESSAGE }]],
  ['DECIMAL(40,2)', (d) => (d.tables[0].columns[3].type = 'DECIMAL(40,2)'), [{ path: 'tables[0].columns[3].type', message: COLUMN_TYPE_MESSAGE }]],
  [
    'bad analysisRule.type',
    (d) => (d.tables[0].analysisRule.type = 'aggregate'),
    [{ path: 'tables[0].analysisRule.type', message: 'expected one of aggregation, list, custom' }],
  ],
  [
    'unknown role',
    (d) => (d.parties[2].roles = ['auditor', 'owner']),
    [{ path: 'parties[2].roles[1]', message: `expected one of ${ROLES.join(', ')}` }],
  ],
  ['repeated role', (d) => (d.parties[2].roles = ['auditor', 'auditor']), [{ path: 'parties[2].roles', message: 'has duplicates' }]],
  ['no roles', (d) => (d.parties[2].roles = []), [{ path: 'parties[2].roles', message: 'expected at least 1 items' }]],
  [
    'a party id that is not 20 hex characters',
    (d) => (d.parties[2].id = 'OPERATOR'),
    [{ path: 'parties[2].id', message: 'expected a party id (20 lower-case hex characters)' }],
  ],
  ['previous that is not a sha256 reference', (d) => (d.previous = 'sha256:abc'), [{ path: 'previous', message: 'expected sha256:<64 lower-case hex>' }]],
  [
    'validFrom without a time zone',
    (d) => (d.validFrom = '2026-01-01T00:00:00'),
    [{ path: 'validFrom', message: 'expected an RFC 3339 date-time with a time zone, such as 2026-01-01T00:00:00Z' }],
  ],
  ['validFrom that is not a real date', (d) => (d.validFrom = '2026-13-01T00:00:00Z'), [{ path: 'validFrom', message: 'not a real date-time' }]],
  ['an infinite budget', (d) => (d.privacy.budget.epsilon = Infinity), [{ path: 'privacy.budget.epsilon', message: 'expected number, received Infinity' }]],
  ['a zero budget (the bound is exclusive)', (d) => (d.privacy.budget.epsilon = 0), [{ path: 'privacy.budget.epsilon', message: 'expected more than 0' }]],
  ['a delta above 1', (d) => (d.privacy.budget.delta = 1.5), [{ path: 'privacy.budget.delta', message: 'expected at most 1' }]],
  [
    'an unknown platform',
    (d) => (d.enclave.platforms = ['sgx']),
    [{ path: 'enclave.platforms[0]', message: 'expected one of sim, nitro, sev-snp, tdx' }],
  ],
  [
    'a measurement in upper case',
    (d) => (d.enclave.measurements = ['A'.repeat(64)]),
    [{ path: 'enclave.measurements[0]', message: 'expected 64 or 96 lower-case hex characters' }],
  ],
  [
    'an output constraint below 2',
    (d) => (d.tables[0].analysisRule.outputConstraints[0].minimum = 1),
    [{ path: 'tables[0].analysisRule.outputConstraints[0].minimum', message: 'expected at least 2' }],
  ],
  [
    'a column name that is not an identifier',
    (d) => (d.tables[1].columns[4].name = '4device'),
    [
      { path: 'tables[1].columns[4].name', message: 'expected an identifier (letters, digits, _; at most 63; not starting with a digit)' },
    ],
  ],
  [
    'a price that is not an integer string',
    (d) => (d.settlement.pricePerResult = '0.001'),
    [{ path: 'settlement.pricePerResult', message: 'expected an integer amount in the smallest unit, as a string' }],
  ],
  [
    'several schema problems at once, all reported',
    (d) => {
      delete d.title;
      d.version = '1';
      d.colour = 'red';
    },
    [
      { path: 'title', message: 'required (expected string)' },
      { path: 'version', message: 'expected number, received string' },
      { path: 'colour', message: 'unknown field' },
    ],
  ],
];

const crossCases: Case[] = [
  [
    'duplicate party id',
    (d) => {
      d.parties = [...d.parties, { ...d.parties[0], name: 'Advertiser again', roles: ['auditor'] }];
    },
    [
      { path: 'parties[3].id', message: `duplicate party id ${ADV}` },
      { path: 'parties[3].signingKey', message: 'duplicate signing key' },
    ],
  ],
  [
    'duplicate signing key (under another id)',
    (d) => {
      d.parties[2].signingKey = d.parties[0].signingKey;
    },
    [
      { path: 'parties[2].id', message: `does not match signingKey (expected ${ADV})` },
      { path: 'parties[2].signingKey', message: 'duplicate signing key' },
    ],
  ],
  [
    'table owner that is not a provider',
    (d) => (d.tables[1].owner = OP),
    [{ path: 'tables[1].owner', message: `party ${OP} (Operator) must have the provider role` }],
  ],
  [
    'table owner not in parties',
    (d) => (d.tables[1].owner = UNKNOWN_ID),
    [{ path: 'tables[1].owner', message: `party ${UNKNOWN_ID} is not in parties` }],
  ],
  ['receiver not in parties', (d) => (d.receivers = [ADV, UNKNOWN_ID]), [{ path: 'receivers[1]', message: `party ${UNKNOWN_ID} is not in parties` }]],
  [
    'receiver without the receiver role',
    (d) => (d.receivers = [PUB]),
    [{ path: 'receivers[0]', message: `party ${PUB} (Publisher) must have the receiver role` }],
  ],
  [
    'template approver not in parties',
    (d) => (d.templates[0].approvedBy = [UNKNOWN_ID]),
    [{ path: 'templates[0].approvedBy[0]', message: `party ${UNKNOWN_ID} is not in parties` }],
  ],
  ['signingKey that is not base64url', (d) => (d.parties[1].signingKey = 'not+base64url'), [{ path: 'parties[1].signingKey', message: 'expected unpadded base64url' }]],
  [
    'signingKey of 31 bytes',
    (d) => (d.parties[1].signingKey = toBase64Url(new Uint8Array(31).fill(7))),
    [{ path: 'parties[1].signingKey', message: 'expected 32 bytes, got 31' }],
  ],
  [
    'signingKey that is a small-order point',
    (d) => (d.parties[1].signingKey = toBase64Url(Uint8Array.of(1, ...new Uint8Array(31)))),
    [{ path: 'parties[1].signingKey', message: 'not a valid Ed25519 public key' }],
  ],
  [
    'encryptionKey of small order',
    (d) => (d.parties[2].encryptionKey = ZERO_KEY),
    [{ path: 'parties[2].encryptionKey', message: 'not a usable X25519 public key (small order)' }],
  ],
  [
    'id that does not match its signing key',
    (d) => (d.parties[2].signingKey = STRANGER.signingKey),
    [{ path: 'parties[2].id', message: `does not match signingKey (expected ${STRANGER.id})` }],
  ],
  [
    'identityColumn not in columns',
    (d) => (d.tables[0].identityColumn = 'user_id'),
    [{ path: 'tables[0].identityColumn', message: 'column user_id is not in columns' }],
  ],
  [
    'dimension column not in columns',
    (d) => (d.tables[0].analysisRule.dimensionColumns[1] = 'order_day'),
    [{ path: 'tables[0].analysisRule.dimensionColumns[1]', message: 'column order_day is not in columns' }],
  ],
  [
    'aggregate column not in columns',
    (d) => (d.tables[0].analysisRule.aggregateColumns[0].columnNames = ['revenue']),
    [{ path: 'tables[0].analysisRule.aggregateColumns[0].columnNames[0]', message: 'column revenue is not in columns' }],
  ],
  [
    'output-constraint column not in columns',
    (d) => (d.tables[1].analysisRule.outputConstraints[0].columnName = 'viewer'),
    [{ path: 'tables[1].analysisRule.outputConstraints[0].columnName', message: 'column viewer is not in columns' }],
  ],
  [
    'list rule columns not in columns',
    (d) => (d.tables[1].analysisRule = { type: 'list', joinColumns: ['email_hash'], listColumns: ['placement', 'country'] }),
    [{ path: 'tables[1].analysisRule.listColumns[1]', message: 'column country is not in columns' }],
  ],
  [
    'custom rule allowing an unknown template',
    (d) => (d.tables[1].analysisRule = { type: 'custom', allowedTemplates: ['reach_and_conversions', 'lookalike'] }),
    [{ path: 'tables[1].analysisRule.allowedTemplates[1]', message: 'template lookalike is not in templates' }],
  ],
  [
    'custom rule allowing a provider that is not an analyst',
    (d) => (d.tables[1].analysisRule = { type: 'custom', allowedTemplates: ['reach_and_conversions'], allowedAnalysisProviders: [PUB] }),
    [{ path: 'tables[1].analysisRule.allowedAnalysisProviders[0]', message: `party ${PUB} (Publisher) must have the analyst role` }],
  ],
  [
    'duplicate column, and the column it displaced is then missing',
    (d) => (d.tables[0].columns[1].name = 'email_hash'),
    [
      { path: 'tables[0].columns[1].name', message: 'duplicate column email_hash' },
      { path: 'tables[0].analysisRule.dimensionColumns[0]', message: 'column campaign_id is not in columns' },
      { path: 'privacy.policies[0].publicDomain[1].column', message: 'conversions.campaign_id is not a column of the agreement' },
    ],
  ],
  [
    'duplicate table name',
    (d) => (d.tables[1].name = 'conversions'),
    [
      { path: 'tables[1].name', message: 'duplicate table conversions' },
      { path: 'templates[0].outputConstraints[0].table', message: 'table impressions is not in tables' },
      { path: 'privacy.policies[0].publicDomain[0].column', message: 'impressions.campaign_id is not a column of the agreement' },
    ],
  ],
  [
    'template k constraint on an unknown column',
    (d) => (d.templates[0].outputConstraints[0].columnName = 'nobody'),
    [{ path: 'templates[0].outputConstraints[0].columnName', message: 'column nobody is not in table impressions' }],
  ],
  [
    'template parameter min above max',
    (d) => (d.templates[0].parameters[0].min = '2100-01-01'),
    [{ path: 'templates[0].parameters[0].max', message: 'must not be below min' }],
  ],
  [
    'duplicate template parameter',
    (d) => {
      d.templates[0].parameters = [...d.templates[0].parameters, { name: 'since', type: 'DATE' }];
    },
    [{ path: 'templates[0].parameters[1].name', message: 'duplicate parameter since' }],
  ],
  ['version 1 with previous set', (d) => (d.previous = `sha256:${'a'.repeat(64)}`), [{ path: 'previous', message: 'must be null for version 1' }]],
  ['version 2 without previous', (d) => (d.version = 2), [{ path: 'previous', message: 'version 2 must name the hash of the version it amends' }]],
  ['validUntil before validFrom', (d) => (d.validUntil = '2025-12-31T00:00:00Z'), [{ path: 'validUntil', message: 'must be after validFrom' }]],
  ['validUntil equal to validFrom', (d) => (d.validUntil = '2026-01-01T01:00:00+01:00'), [{ path: 'validUntil', message: 'must be after validFrom' }]],
  [
    'allowDebug true with nitro',
    (d) => {
      d.enclave = { ...d.enclave, platforms: ['nitro'], allowDebug: true };
    },
    [{ path: 'enclave.allowDebug', message: 'may be true only when platforms is [sim]' }],
  ],
  [
    'allowDebug true with sim and nitro',
    (d) => {
      d.enclave = { ...d.enclave, platforms: ['sim', 'nitro'], allowDebug: true };
    },
    [{ path: 'enclave.allowDebug', message: 'may be true only when platforms is [sim]' }],
  ],
  [
    'no signer in parties',
    (d) => {
      d.parties[0].roles = ['provider', 'analyst', 'receiver', 'payer'];
      d.parties[1].roles = ['provider', 'payee'];
    },
    [{ path: 'parties', message: 'at least one party must have the signer role' }],
  ],
  [
    'settlement shares not summing to 10000',
    (d) => (d.settlement.payees[0].shareBasisPoints = 5000),
    [{ path: 'settlement.payees', message: 'shares must add up to 10000 basis points, not 5000' }],
  ],
  [
    'settlement payer and payee without their roles',
    (d) => {
      d.settlement.payer = PUB;
      d.settlement.payees = [{ party: ADV, shareBasisPoints: 10000 }];
    },
    [
      { path: 'settlement.payer', message: `party ${PUB} (Publisher) must have the payer role` },
      { path: 'settlement.payees[0].party', message: `party ${ADV} (Advertiser) must have the payee role` },
    ],
  ],
  [
    'a PSI whose sender is not a provider and is its own receiver',
    (d) => {
      d.psi[0].sender = OP;
      d.psi[0].receiver = OP;
    },
    [
      { path: 'psi[0].sender', message: `party ${OP} (Operator) must have the provider role` },
      { path: 'psi[0].receiver', message: 'the receiver must be another party than the sender' },
    ],
  ],
  [
    'a secure aggregation with a threshold of half its parties, and a stranger among them',
    (d) => {
      d.secureAggregation = [{ name: 'sums', parties: [ADV, PUB, UNKNOWN_ID, '00000000000000000000'], threshold: 2, vectorLength: 10, clip: 1, fractionBits: 16, receivers: [ADV] }];
    },
    [
      { path: 'secureAggregation[0].parties[2]', message: `party ${UNKNOWN_ID} is not in parties` },
      { path: 'secureAggregation[0].parties[3]', message: 'party 00000000000000000000 is not in parties' },
      { path: 'secureAggregation[0].threshold', message: 'more than half the parties (3 or more): a smaller one lets a server split the parties' },
    ],
  ],
  [
    'a secure aggregation whose sum could wrap around 2^32',
    (d) => {
      d.secureAggregation = [{ name: 'sums', parties: [ADV, PUB, OP], threshold: 2, vectorLength: 10, clip: 1000, fractionBits: 24, receivers: [ADV] }];
      for (const party of d.parties) party.roles = [...new Set([...party.roles, 'provider'])];
    },
    [{ path: 'secureAggregation[0].clip', message: 'parties × clip × 2^fractionBits must stay below 2^31: lower clip or fractionBits' }],
  ],
  [
    'privacy policy naming both table and template',
    (d) => (d.privacy.policies = [{ ...{ template: 'reach_and_conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 } }, table: 'conversions' }]),
    [{ path: 'privacy.policies[0]', message: 'name exactly one of table or template' }],
  ],
  [
    'privacy policy naming neither',
    (d) => (d.privacy.policies = [{ ...{ template: 'reach_and_conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 } }, template: undefined }]),
    [{ path: 'privacy.policies[0]', message: 'name exactly one of table or template' }],
  ],
  [
    'privacy policy naming an unknown table',
    (d) => {
      d.privacy.policies = [{ ...{ template: 'reach_and_conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 } }, template: undefined, table: 'clicks' }];
    },
    [{ path: 'privacy.policies[0].table', message: 'table clicks is not in tables' }],
  ],
  [
    'zCDP accounting with costs in epsilon',
    (d) => {
      d.privacy.accounting = 'zcdp';
      d.privacy.policies = [{ template: 'reach_and_conversions', required: true, mechanism: 'laplace', costPerQuery: { epsilon: 1 } }];
    },
    [
      { path: 'privacy.budget.rho', message: 'required for zcdp accounting' },
      { path: 'privacy.budget.epsilon', message: 'zcdp accounting charges rho: a budget in epsilon would limit nothing' },
      { path: 'privacy.policies[0].costPerQuery.rho', message: 'required for zcdp accounting' },
    ],
  ],
  [
    'analyst budgets in the unit the accounting does not charge, or in none',
    (d) => (d.privacy.analystBudgets = [{ party: ADV, rho: 1 }, { party: ADV }]),
    [
      { path: 'privacy.analystBudgets[0].epsilon', message: 'required for pure accounting' },
      { path: 'privacy.analystBudgets[0].rho', message: 'pure accounting charges epsilon: a budget in rho would limit nothing' },
      { path: 'privacy.analystBudgets[1].epsilon', message: 'required for pure accounting' },
    ],
  ],
  [
    'analyst budget for a party that is not an analyst',
    (d) => (d.privacy.analystBudgets = [{ party: PUB, epsilon: 1 }]),
    [{ path: 'privacy.analystBudgets[0].party', message: `party ${PUB} (Publisher) must have the analyst role` }],
  ],
  [
    'key-release endpoint over plain http, owned by a non-provider',
    (d) => (d.keyRelease.endpoints = [{ owner: OP, url: 'http://keys.example.com/release' }]),
    [
      { path: 'keyRelease.endpoints[0].owner', message: `party ${OP} (Operator) must have the provider role` },
      { path: 'keyRelease.endpoints[0].url', message: 'must be https (http only on loopback)' },
    ],
  ],
  [
    'key-release endpoint with a signing key that is not a valid key',
    (d) => (d.keyRelease.endpoints = [{ owner: ADV, url: 'https://keys.example.com/', signingKey: ZERO_KEY.slice(0, 42) }]),
    [{ path: 'keyRelease.endpoints[0].signingKey', message: 'expected 32 bytes, got 31' }],
  ],
  [
    'a string holding a lone UTF-16 surrogate (it could never be canonicalized)',
    (d) => (d.tables[0].description = 'orders \ud800'),
    [{ path: 'tables[0].description', message: 'contains a lone UTF-16 surrogate' }],
  ],
  [
    'cross-field problems in several places, all reported in order',
    (d) => {
      d.tables[1].owner = OP;
      d.receivers = [UNKNOWN_ID];
      d.settlement.payees[0].shareBasisPoints = 9999;
    },
    [
      { path: 'tables[1].owner', message: `party ${OP} (Operator) must have the provider role` },
      { path: 'receivers[0]', message: `party ${UNKNOWN_ID} is not in parties` },
      { path: 'settlement.payees', message: 'shares must add up to 10000 basis points, not 9999' },
    ],
  ],
];

describe('checkAgreement: schema errors', () => {
  it.each(schemaCases)('%s', (_name, change, issues) => {
    expect(issuesAfter(change)).toEqual(issues);
  });
});

describe('checkAgreement: cross-field errors', () => {
  it.each(crossCases)('%s', (_name, change, issues) => {
    expect(issuesAfter(change)).toEqual(issues);
  });
});

describe('checkAgreement: variations that are valid', () => {
  it.each<[string, (doc: any) => void]>([
    ['DECIMAL(38,38)', (d) => (d.tables[0].columns[3].type = 'DECIMAL(38,38)')],
    ['DECIMAL(1,0)', (d) => (d.tables[0].columns[3].type = 'DECIMAL(1,0)')],
    [
      'every plain column type',
      (d) => {
        const plain = COLUMN_TYPES.filter((t) => t !== 'DECIMAL(p,s)');
        d.tables[1].columns = [...d.tables[1].columns, ...plain.map((type, i) => ({ name: `extra_${i}`, type }))];
      },
    ],
    ['allowDebug true with platforms [sim]', (d) => (d.enclave.allowDebug = true)],
    ['http key-release on loopback', (d) => (d.keyRelease.endpoints = [{ owner: PUB, url: 'http://127.0.0.1:8443/release', signingKey: STRANGER.signingKey }])],
    ['a custom rule over existing templates', (d) => (d.tables[1].analysisRule = { type: 'custom', allowedTemplates: ['reach_and_conversions'], allowedAnalysisProviders: [ADV] })],
    ['version 2 naming the hash it amends', (d) => ((d.version = 2), (d.previous = `sha256:${'0'.repeat(64)}`))],
    [
      'no optional sections',
      (d) => {
        delete d.templates;
        delete d.privacy;
        delete d.keyRelease;
        delete d.settlement;
        delete d.description;
      },
    ],
    ['a table without an identity column', (d) => (d.tables[1].identityColumn = null)],
    ['shares split between two payees', (d) => {
      d.parties[0].roles = [...d.parties[0].roles, 'payee'];
      d.settlement.payees = [{ party: PUB, shareBasisPoints: 7500 }, { party: ADV, shareBasisPoints: 2500 }];
    }],
  ])('%s', (_name, change) => {
    expect(validAfter(change)).toBe(true);
  });
});

describe('isColumnType', () => {
  it.each(['VARCHAR', 'BIGINT', 'TIMESTAMPTZ', 'UUID', 'DECIMAL(12,2)', 'DECIMAL(38,0)', 'DECIMAL(1,1)'])('accepts %s', (type) => {
    expect(isColumnType(type)).toBe(true);
  });

  it.each(['DECIMAL(40,2)', 'DECIMAL(39,2)', 'DECIMAL(0,0)', 'DECIMAL(5,6)', 'DECIMAL(12, 2)', 'DECIMAL(p,s)', 'DECIMAL', 'decimal(12,2)', 'varchar', 'TEXT', 'DECIMAL(123,2)', ''])(
    'refuses %s',
    (type) => {
      expect(isColumnType(type)).toBe(false);
    },
  );
});

describe('assertAgreement', () => {
  it('returns the validated agreement', () => {
    expect(assertAgreement(mutable(base))).toEqual(base);
  });

  it('throws agreement-invalid with every issue, one line each in describe()', () => {
    const doc = mutable(base);
    delete doc.title;
    doc.tables[1].columns[0].type = 'TEXT';
    const error = expectMalusError(() => assertAgreement(doc, 'deal.yaml'), 'agreement-invalid', 'deal.yaml has 2 errors');
    expect(error.issues).toEqual([
      { path: 'title', message: 'required (expected string)' },
      { path: 'tables[1].columns[0].type', message: COLUMN_TYPE_MESSAGE },
    ]);
    expect(error.describe().split('\n')).toEqual([
      'deal.yaml has 2 errors',
      'title: required (expected string)',
      `tables[1].columns[0].type: ${COLUMN_TYPE_MESSAGE}`,
    ]);
  });

  it('says "1 error" for one, with the default source name', () => {
    const doc = mutable(base);
    doc.receivers = [PUB];
    const error = expectMalusError(() => assertAgreement(doc), 'agreement-invalid', 'agreement has 1 error');
    expect(error.describe()).toBe(`agreement has 1 error\nreceivers[0]: party ${PUB} (Publisher) must have the receiver role`);
  });

  it('reports non-objects', () => {
    expect(checkAgreement(null)).toEqual({ ok: false, issues: [{ path: '', message: 'expected object, received null' }] });
    expect(checkAgreement([])).toEqual({ ok: false, issues: [{ path: '', message: 'expected object, received array' }] });
  });
});

it('the order of parties does not matter', () => {
  const doc = mutable(base);
  doc.parties = [doc.parties[2], doc.parties[0], doc.parties[1]];
  expect(checkAgreement(doc).ok).toBe(true);
});
