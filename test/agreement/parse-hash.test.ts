import { describe, expect, it } from 'vitest';
import {
  MAX_AGREEMENT_BYTES,
  agreementHash,
  canonicalAgreementJson,
  checkAgreement,
  exampleAgreement,
  exampleAgreementYaml,
  parseAgreementText,
  type Agreement,
} from '../../src/agreement/index.js';
import { sha256, toHex } from '../../src/crypto/index.js';
import { expectMalusError, identities, makeAgreement, makeKeys, mutable, VALID_FROM } from './helpers.js';

const keys = makeKeys();
const parties = identities(keys);
const base = makeAgreement(keys);
const yaml = exampleAgreementYaml(parties, { validFrom: VALID_FROM });

function validated(value: unknown): Agreement {
  const result = checkAgreement(value);
  if (!result.ok) throw new Error(`expected a valid agreement: ${JSON.stringify(result.issues)}`);
  return result.agreement;
}

/** The same value with every object's keys in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reverseKeys(v)]));
  }
  return value;
}

/** An independent canonical form for what agreements hold (strings, integers, booleans, null). */
function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Every leaf of a JSON value, with its path. */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, [...path, i]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  return [path];
}

function changeLeaf(doc: unknown, path: (string | number)[]): void {
  let parent = doc as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  const key = path.at(-1)!;
  const old: unknown = parent[key];
  parent[key] = typeof old === 'string' ? `${old}x` : typeof old === 'number' ? old + 1 : typeof old === 'boolean' ? !old : 'x';
}

describe('parseAgreementText', () => {
  it('reads the example YAML, and it validates to the same document exampleAgreement returns', () => {
    const parsed = validated(parseAgreementText(yaml));
    expect(parsed).toEqual(base);
    expect(agreementHash(parsed)).toBe(agreementHash(base));
  });

  it('gives YAML and the equivalent JSON the same hash', () => {
    const fromYaml = validated(parseAgreementText(yaml));
    const fromJson = validated(parseAgreementText(JSON.stringify(fromYaml)));
    const fromPrettyJson = validated(parseAgreementText(`\n  ${JSON.stringify(fromYaml, null, 2)}\n`));
    expect(agreementHash(fromJson)).toBe(agreementHash(fromYaml));
    expect(agreementHash(fromPrettyJson)).toBe(agreementHash(fromYaml));
  });

  it('gives the same hash whatever the key order of the JSON', () => {
    const reordered = JSON.stringify(reverseKeys(base));
    expect(reordered).not.toBe(JSON.stringify(base));
    expect(reordered.startsWith('{"settlement":')).toBe(true);
    expect(agreementHash(validated(parseAgreementText(reordered)))).toBe(agreementHash(base));
  });

  it('reads JSON that starts with a byte order mark', () => {
    expect(agreementHash(validated(parseAgreementText(`\ufeff${JSON.stringify(base)}`)))).toBe(agreementHash(base));
  });

  it('uses the YAML core schema: no implicit dates, yes is a string, 0o17 is 15', () => {
    expect(parseAgreementText('d: 2026-01-01T00:00:00Z\nb: yes\nn: 0o17\nz: ~\nf: 1.5\n')).toEqual({
      d: '2026-01-01T00:00:00Z',
      b: 'yes',
      n: 15,
      z: null,
      f: 1.5,
    });
  });

  it('rejects YAML duplicate keys, with the line', () => {
    const error = expectMalusError(
      () => parseAgreementText('title: A\nversion: 1\ntitle: B\n', 'deal.yaml'),
      'agreement-invalid',
      'deal.yaml is not valid YAML or JSON',
    );
    expect(error.issues).toEqual([{ path: '', message: 'line 3, column 1: Map keys must be unique' }]);
  });

  it('rejects JSON duplicate keys too (RFC 8785 hashes I-JSON; JSON.parse would keep the last)', () => {
    const text = '{\n  "title": "Harmless",\n  "version": 1,\n  "title": "Harmful"\n}';
    const error = expectMalusError(() => parseAgreementText(text), 'agreement-invalid', 'agreement is not valid JSON: duplicate keys');
    expect(error.issues).toEqual([{ path: '', message: 'line 4, column 3: Map keys must be unique' }]);
  });

  it('reports invalid YAML with its line and column', () => {
    const error = expectMalusError(
      () => parseAgreementText('format: malus.agreement/v1\ntitle: "unterminated\n'),
      'agreement-invalid',
      'agreement is not valid YAML or JSON',
    );
    expect(error.issues).toEqual([{ path: '', message: 'line 3, column 1: Missing closing "quote' }]);
    const tabs = expectMalusError(() => parseAgreementText('enclave:\n\tallowDebug: true\n'), 'agreement-invalid', 'agreement is not valid YAML or JSON');
    expect(tabs.issues).toEqual([{ path: '', message: 'line 2, column 1: Tabs are not allowed as indentation' }]);
    expect(tabs.describe()).toBe('agreement is not valid YAML or JSON\nline 2, column 1: Tabs are not allowed as indentation');
  });

  it('reports invalid JSON with the parser’s message', () => {
    const text = '{"title": }';
    let expected = '';
    try {
      JSON.parse(text);
    } catch (error) {
      expected = (error as Error).message;
    }
    expect(expected).not.toBe('');
    expectMalusError(() => parseAgreementText(text, 'a.json'), 'agreement-invalid', `a.json is not valid JSON: ${expected}`);
  });

  it('refuses a YAML alias bomb as agreement-invalid, not a crash', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) {
      const name = String.fromCharCode(97 + i);
      const previous = String.fromCharCode(96 + i);
      lines.push(`${name}: &${name} [${Array<string>(10).fill(`*${previous}`).join(', ')}]`);
    }
    const error = expectMalusError(() => parseAgreementText(lines.join('\n')), 'agreement-invalid', 'agreement is not valid YAML or JSON');
    expect(error.issues).toEqual([{ path: '', message: 'Excessive alias count indicates a resource exhaustion attack' }]);
  });

  it('accepts a few aliases', () => {
    expect(parseAgreementText('a: &cols [x, y]\nb: *cols\n')).toEqual({ a: ['x', 'y'], b: ['x', 'y'] });
  });

  it('refuses text over 1 MiB, counting bytes rather than characters', () => {
    expect(MAX_AGREEMENT_BYTES).toBe(1024 * 1024);
    const message = `big.yaml is larger than ${MAX_AGREEMENT_BYTES} bytes`;
    expectMalusError(() => parseAgreementText(`#${'x'.repeat(MAX_AGREEMENT_BYTES)}`, 'big.yaml'), 'agreement-invalid', message);
    // 524,289 characters, but 1,048,578 UTF-8 bytes.
    expectMalusError(() => parseAgreementText(`#${'é'.repeat(MAX_AGREEMENT_BYTES / 2)}`, 'big.yaml'), 'agreement-invalid', message);
    expectMalusError(() => parseAgreementText(`{"x":"${'x'.repeat(MAX_AGREEMENT_BYTES)}"}`, 'big.yaml'), 'agreement-invalid', message);
  });

  it('accepts text of exactly 1 MiB', () => {
    expect(parseAgreementText(`#${'x'.repeat(MAX_AGREEMENT_BYTES - 1)}`)).toBeNull();
  });
});

describe('exampleAgreementYaml / exampleAgreement', () => {
  it('writes commented YAML that validates', () => {
    expect(yaml).toContain('# A Malus collaboration agreement');
    expect(yaml).toContain('format: malus.agreement/v1');
    expect(checkAgreement(parseAgreementText(yaml)).ok).toBe(true);
  });

  it('uses the given id, truncates validFrom to the second and lasts 90 days', () => {
    const agreement = exampleAgreement(parties, { id: 'spring-campaign', validFrom: new Date('2026-03-01T12:34:56.789Z') });
    expect(agreement.id).toBe('spring-campaign');
    expect(agreement.validFrom).toBe('2026-03-01T12:34:56Z');
    expect(agreement.validUntil).toBe('2026-05-30T12:34:56Z');
  });

  it('quotes party names safely', () => {
    const tricky = { ...parties, publisher: { ...parties.publisher, name: 'News: "Daily" # 1' } };
    const agreement = exampleAgreement(tricky, { validFrom: VALID_FROM });
    expect(agreement.parties[1]?.name).toBe('News: "Daily" # 1');
  });

  it('throws agreement-invalid when the parties make it invalid', () => {
    const broken = { ...parties, operator: { ...parties.operator, id: parties.advertiser.id } };
    const error = expectMalusError(() => exampleAgreement(broken, { validFrom: VALID_FROM }), 'agreement-invalid', 'example agreement has 2 errors');
    expect(error.issues).toEqual([
      { path: 'parties[2].id', message: `does not match signingKey (expected ${parties.operator.id})` },
      { path: 'parties[2].id', message: `duplicate party id ${parties.advertiser.id}` },
    ]);
  });
});

describe('canonicalAgreementJson / agreementHash', () => {
  it('has the form sha256:<64 lower-case hex>', () => {
    expect(agreementHash(base)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('is SHA-256 of the canonical JSON', () => {
    expect(agreementHash(base)).toBe(`sha256:${toHex(sha256(canonicalAgreementJson(base)))}`);
  });

  it('the canonical JSON sorts keys, has no whitespace and holds the same value', () => {
    const canonical = canonicalAgreementJson(base);
    expect(canonical).toBe(sortedJson(base));
    expect(canonical.startsWith('{"description":')).toBe(true);
    expect(JSON.parse(canonical)).toEqual(base);
    expect(canonicalAgreementJson(reverseKeys(base) as Agreement)).toBe(canonical);
  });

  it('matches the RFC 8785 §3.2.2 sample (numbers, escapes, literals)', () => {
    const input = String.raw`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`;
    const expected = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;
    expect(canonicalAgreementJson(JSON.parse(input) as Agreement)).toBe(expected);
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew', '1': 'One', '\ud83d\ude00': 'Emoji', '\u0080': 'Control', '\u00f6': 'o umlaut' };
    expect(canonicalAgreementJson(input as unknown as Agreement)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"o umlaut","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji","\ufb33":"Hebrew"}',
    );
  });

  it('changes when any single field changes', () => {
    const hash = agreementHash(base);
    const paths = leaves(base);
    expect(paths.length).toBeGreaterThan(100);
    const seen = new Set([hash]);
    for (const path of paths) {
      const doc = mutable(base);
      changeLeaf(doc, path);
      const changed = agreementHash(doc as Agreement);
      expect(changed, path.join('.')).not.toBe(hash);
      seen.add(changed);
    }
    expect(seen.size).toBe(paths.length + 1);
  });

  it('changes when array order changes, or an optional field is removed', () => {
    const doc = mutable(base);
    const approvers: string[] = doc.templates[0].approvedBy;
    doc.templates[0].approvedBy = [...approvers].reverse();
    expect(agreementHash(doc as Agreement)).not.toBe(agreementHash(base));
    const without = mutable(base);
    delete without.description;
    expect(agreementHash(without as Agreement)).not.toBe(agreementHash(base));
  });
});
