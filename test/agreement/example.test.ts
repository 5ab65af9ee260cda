import { describe, expect, it } from 'vitest';
import { exampleAgreementYaml, parseAgreementText } from '../../src/agreement/index.js';
import { generatePartyKeys } from '../../src/identity/index.js';

// The example is YAML; a party id is 20 hex digits, and some of those read as numbers in YAML
// (all digits, or digits around one "e": a float). The example quotes every id and key.

describe('the example agreement', () => {
  it('keeps party ids that look like numbers as strings', () => {
    const identity = (id: string) => ({ ...generatePartyKeys('Party').identity, id });
    const ids = ['12345678901234567890', '1234567e890123456789', '0000000000000000e000'];
    const [advertiser, publisher, operator] = ids.map(identity);
    if (advertiser === undefined || publisher === undefined || operator === undefined) throw new Error('three ids');
    const parsed = parseAgreementText(exampleAgreementYaml({ advertiser, publisher, operator }, { validFrom: new Date('2026-01-01T00:00:00Z') })) as {
      parties: { id: unknown }[];
      tables: { owner: unknown }[];
      receivers: unknown[];
      settlement: { payer: unknown; payees: { party: unknown }[] };
    };
    expect(parsed.parties.map((p) => p.id)).toEqual(ids);
    expect(parsed.tables.map((t) => t.owner)).toEqual(ids.slice(0, 2));
    expect(parsed.receivers).toEqual([ids[0]]);
    expect([parsed.settlement.payer, parsed.settlement.payees[0]?.party]).toEqual(ids.slice(0, 2));
  });
});
