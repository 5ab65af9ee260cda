import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MalusError } from '../../../src/errors/index.js';
import { c3rSettings, checkSchemaAgainstSettings, parseC3rSchema } from '../../../src/ingest/c3r/index.js';

const V = '/work/shared/vectors/c3r';

function problems(input: unknown): { message: string; issues: string[] } {
  try {
    parseC3rSchema(input, 'schema s.json');
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    const e = error as MalusError;
    expect(e.code).toBe('invalid-input');
    return { message: e.message, issues: e.issues.map((i) => `${i.path}: ${i.message}`) };
  }
  throw new Error('expected the schema to be refused');
}

const mapped = (columns: unknown[]): unknown => ({ headerRow: true, columns });

describe('C3R schema files', () => {
  it("reads C3R's sample schema, lower-casing headers", () => {
    const schema = parseC3rSchema(readFileSync(`${V}/config_sample.json`, 'utf8'));
    expect(schema.headerRow).toBe(true);
    expect(schema.columns).toHaveLength(11);
    expect(schema.columns[2]).toEqual({ sourceHeader: 'address', targetHeader: 'address', type: 'sealed', pad: { type: 'max', length: 32 } });
    expect(schema.columns[5]).toEqual({ sourceHeader: 'phonenumber', targetHeader: 'phonenumber_cleartext', type: 'cleartext' });
    expect(schema.columns[8]?.pad).toEqual({ type: 'fixed', length: 128 });
    expect(schema.columns[10]?.pad).toEqual({ type: 'none' });
  });

  it('derives missing target headers as C3R does, and takes types in any case', () => {
    const schema = parseC3rSchema(
      mapped([
        { sourceHeader: ' Email ', type: 'FINGERPRINT' },
        { sourceHeader: 'Email', type: ' Sealed ', pad: { type: 'NONE' } },
        { sourceHeader: 'Email', type: 'cleartext' },
      ]),
    );
    expect(schema.columns.map((c) => c.targetHeader)).toEqual(['email_fingerprint', 'email_sealed', 'email']);
  });

  it('reads positional schemas (no header row): one list per input column', () => {
    const schema = parseC3rSchema({
      headerRow: false,
      columns: [[{ targetHeader: 'First', type: 'cleartext' }, { targetHeader: 'first_fp', type: 'fingerprint' }], [], null, [{ targetHeader: 'notes', type: 'sealed', pad: { type: 'fixed', length: 10 } }]],
    });
    expect(schema.sourceColumnCount).toBe(4);
    expect(schema.columns).toEqual([
      { sourceHeader: '_c0', sourceIndex: 0, targetHeader: 'first', type: 'cleartext' },
      { sourceHeader: '_c0', sourceIndex: 0, targetHeader: 'first_fp', type: 'fingerprint' },
      { sourceHeader: '_c3', sourceIndex: 3, targetHeader: 'notes', type: 'sealed', pad: { type: 'fixed', length: 10 } },
    ]);
  });

  it('names the field of every problem', () => {
    const found = problems(
      mapped([
        { sourceHeader: 'a', type: 'sealed', pad: { type: 'fixed' } },
        { sourceHeader: 'b', type: 'sealed' },
        { sourceHeader: 'c', type: 'fingerprint', pad: { type: 'none' } },
        { sourceHeader: 'd', type: 'sealed', pad: { type: 'max', length: 10001 } },
        { sourceHeader: 'e', type: 'sealed', pad: { type: 'none', length: 3 } },
        { sourceHeader: 'f', type: 'hashed' },
        { type: 'cleartext' },
        { sourceHeader: 'g.h', type: 'cleartext' },
        { sourceHeader: 'i', targetheader: 'j', type: 'cleartext' },
        { sourceHeader: 'k', type: 'sealed', pad: { type: 'max', length: 2.5 } },
        { sourceHeader: 'l', type: 'sealed', pad: { type: 'random', length: 2 } },
      ]),
    );
    expect(found.message).toBe('schema s.json is not a valid C3R schema');
    expect(found.issues).toEqual([
      'columns[0].pad.length: a fixed pad needs a length: an integer from 0 to 10000 (bytes)',
      'columns[1].pad: a sealed column needs a pad, e.g. {"type": "none"}',
      'columns[2].pad: only sealed columns are padded; this column is fingerprint',
      'columns[3].pad.length: a max pad needs a length: an integer from 0 to 10000 (bytes)',
      'columns[4].pad.length: a pad length is only allowed when the pad type is fixed or max',
      'columns[5].type: must be one of cleartext, sealed, fingerprint',
      'columns[6].sourceHeader: is required when headerRow is true',
      'columns[7].sourceHeader: column name `g.h` does not match AWS Clean Rooms\' pattern [a-z0-9_](([a-z0-9_ ]+-)*([a-z0-9_ ]+))?',
      'columns[8].targetheader: unknown field (allowed: sourceHeader, targetHeader, type, pad)',
      'columns[9].pad.length: a max pad needs a length: an integer from 0 to 10000 (bytes)',
      'columns[10].pad.type: must be one of none, fixed, max',
    ]);
  });

  it('refuses repeated target headers (after lower-casing), and too long names', () => {
    expect(problems(mapped([{ sourceHeader: 'a', targetHeader: 'X', type: 'cleartext' }, { sourceHeader: 'b', targetHeader: 'x', type: 'cleartext' }])).issues).toEqual([
      'columns: each target header may be used once (after lower-casing); repeated: x',
    ]);
    expect(problems(mapped([{ sourceHeader: 'a'.repeat(129), type: 'cleartext' }])).issues).toEqual([
      `columns[0].sourceHeader: column name \`${'a'.repeat(129)}\` is 129 characters; AWS Clean Rooms allows at most 128`,
    ]);
    expect(problems(mapped([{ sourceHeader: 'a'.repeat(120), type: 'fingerprint' }])).issues).toEqual([
      `columns[0].targetHeader: the default target name: column name \`${'a'.repeat(120)}_fingerprint\` is 132 characters; AWS Clean Rooms allows at most 128`,
    ]);
  });

  it('refuses malformed top levels', () => {
    expect(problems({ columns: [] }).issues).toEqual([
      'headerRow: must be true (the data has a header row) or false (columns are matched by position)',
      'columns: must be a non-empty array of column objects',
    ]);
    expect(problems({ headerRow: false, columns: [[], null] }).issues).toEqual(['columns: must name at least one output column']);
    expect(problems({ headerRow: false, columns: [[{ sourceHeader: 'a', type: 'cleartext' }]] }).issues).toEqual([
      'columns[0][0].sourceHeader: unknown field (allowed: targetHeader, type, pad)',
      'columns[0][0].targetHeader: is required when headerRow is false (there is no source name to derive it from)',
    ]);
    expect(problems({ headerRow: true, columns: [{ sourceHeader: 'a', type: 'cleartext' }], comment: 'x' }).issues).toEqual([
      'comment: unknown field (allowed: headerRow, columns)',
    ]);
    expect(() => parseC3rSchema('{"headerRow": true,', 'schema s.json')).toThrow(/^schema s\.json is not JSON: /);
    expect(() => parseC3rSchema('[1]', 'schema s.json')).toThrow('schema s.json is not a C3R schema: expected a JSON object with headerRow and columns');
  });

  it('refuses more than 1600 output columns', () => {
    const columns = Array.from({ length: 1601 }, (_, i) => ({ sourceHeader: `c${i}`, type: 'cleartext' }));
    expect(problems(mapped(columns)).issues).toEqual(['columns: names 1601 output columns; C3R allows at most 1600']);
  });
});

describe('collaboration settings against a schema', () => {
  const schema = parseC3rSchema(readFileSync(`${V}/config_sample.json`, 'utf8'));

  it('refuse cleartext columns unless allowCleartext', () => {
    expect(() => {
      checkSchemaAgainstSettings(schema, c3rSettings());
    }).toThrow(
      'the schema has cleartext columns (`firstname`, `lastname`, `phonenumber_cleartext`, `level`) but the collaboration does not allow cleartext (pass --allowCleartext if it does)',
    );
    expect(() => {
      checkSchemaAgainstSettings(schema, c3rSettings({ allowCleartext: true }));
    }).not.toThrow();
  });
});
