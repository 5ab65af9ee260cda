import { createDecipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  c3rDecryptFile,
  deriveC3rKeys,
  fingerprintC3rCell,
  isC3rFingerprint,
  isC3rSealed,
  parseC3rSchema,
  unsealC3rCell,
} from '../../../src/ingest/c3r/index.js';

// The real C3R files in /work/shared/vectors/c3r: marshalled_data_sample.csv is C3R's encryption of
// data_sample_without_quotes.csv under config_sample.json, with the shared secret 00 01 .. 1f and
// the collaboration id below. C3R shuffled the rows and lower-cased the headers.

const V = '/work/shared/vectors/c3r';
const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const ID = '00000000-1111-2222-3333-444444444444';
const keys = deriveC3rKeys(SECRET, ID);

// Both sample files are simple enough to split by hand (no quoted commas), which keeps these
// checks independent of the CSV reader under test.
function splitCsv(path: string): string[][] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(','));
}

const [clearHeader = [], ...clearRows] = splitCsv(`${V}/data_sample_without_quotes.csv`);
const [sealedHeader = [], ...sealedRows] = splitCsv(`${V}/marshalled_data_sample.csv`);
const schema = parseC3rSchema(readFileSync(`${V}/config_sample.json`, 'utf8'), 'config_sample.json');

/** The cleartext row with this first and last name, as a header -> value map. */
function cleartextFor(first: string, last: string): Map<string, string> {
  const row = clearRows.find((r) => r[0] === first && r[1] === last);
  expect(row, `${first} ${last} is in the cleartext`).toBeDefined();
  return new Map(clearHeader.map((h, i) => [h, row?.[i] ?? '']));
}

/** The cleartext value a schema column is made from (schema source headers are lower-cased). */
function sourceValue(clear: Map<string, string>, sourceHeader: string): string {
  const header = clearHeader.find((h) => h.toLowerCase() === sourceHeader);
  expect(header, `column ${sourceHeader} is in the cleartext`).toBeDefined();
  return clear.get(header ?? '') ?? '';
}

/** The marshalled cells of every row, with the schema column each came from. */
const cells = sealedRows.flatMap((row) =>
  schema.columns.map((column, i) => ({ column, cell: row[i] ?? '', clear: cleartextFor(row[0] ?? '', row[1] ?? '') })),
);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('C3R sample vectors', () => {
  it('have the lower-cased target headers of the schema, and rows in another order than the cleartext', () => {
    expect(sealedHeader).toEqual(schema.columns.map((c) => c.targetHeader));
    expect(sealedHeader).toContain('phonenumber_cleartext');
    expect(sealedRows.length).toBe(clearRows.length);
    expect(sealedRows.map((r) => r[0])).not.toEqual(clearRows.map((r) => r[0]));
  });

  it('every sealed cell opens to the cleartext value (an empty cleartext value is NULL)', () => {
    const sealed = cells.filter((c) => c.column.type === 'sealed');
    expect(sealed.length).toBe(5 * 7);
    for (const { column, cell, clear } of sealed) {
      expect(isC3rSealed(cell)).toBe(true);
      const expected = sourceValue(clear, column.sourceHeader);
      const opened = unsealC3rCell(cell, keys);
      expect(opened).toEqual(expected === '' ? null : { type: 'string', value: expected });
    }
  });

  it('every fingerprint cell is reproduced exactly from the cleartext', () => {
    const fingerprints = cells.filter((c) => c.column.type === 'fingerprint');
    expect(fingerprints.length).toBe(2 * 7);
    for (const { column, cell, clear } of fingerprints) {
      expect(isC3rFingerprint(cell)).toBe(true);
      const value = sourceValue(clear, column.sourceHeader);
      expect(fingerprintC3rCell(value, { keys, columnLabel: column.targetHeader })).toBe(cell);
    }
  });

  it('cleartext cells are copied as they are', () => {
    for (const { column, cell, clear } of cells.filter((c) => c.column.type === 'cleartext')) {
      expect(cell).toBe(sourceValue(clear, column.sourceHeader));
    }
  });

  it('match the documented byte layout (checked with node:crypto alone)', () => {
    const root = Buffer.from(hkdfSync('sha256', SECRET, Buffer.from(ID), Buffer.from('c3r-encryption-primary-aes-gcm-256'), 32));
    for (const row of sealedRows) {
      const nonces = new Set<string>();
      row.forEach((cell, i) => {
        const column = schema.columns[i];
        if (column?.type !== 'sealed') return;
        expect(cell.startsWith('02:enc:')).toBe(true);
        const body = Buffer.from(cell.slice(7), 'base64');
        const nonce = body.subarray(0, 32);
        const iv = body.subarray(32, 44);
        nonces.add(nonce.toString('hex'));
        // The IV is derived from the lower-cased target header and the row's nonce.
        expect(iv).toEqual(createHash('sha256').update(column.targetHeader).update(nonce).digest().subarray(0, 12));
        const key = createHash('sha256').update(root).update(nonce).digest();
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(Buffer.from('02:enc:'));
        decipher.setAuthTag(body.subarray(body.length - 16));
        const plain = Buffer.concat([decipher.update(body.subarray(44, body.length - 16)), decipher.final()]);
        const pad = plain.readUInt16BE(plain.length - 2);
        const valueLength = plain.length - 3 - pad;
        // Descriptor: STRING (type index 1) << 1, with the low bit set for NULL (an empty Notes).
        const clear = sourceValue(cleartextFor(row[0] ?? '', row[1] ?? ''), column.sourceHeader);
        expect(plain[0]).toBe(clear === '' ? 0x03 : 0x02);
        expect(plain.subarray(1 + valueLength, plain.length - 2).every((b) => b === 0)).toBe(true);
        // Pad lengths count value bytes only: max 32 over a longest Address of 14 bytes is 46,
        // max 16 over a longest City of 10 is 26, fixed 128 is 128, none adds nothing.
        const filled = valueLength + pad;
        if (column.targetHeader === 'address') expect(filled).toBe(14 + 32);
        if (column.targetHeader === 'city') expect(filled).toBe(10 + 16);
        if (column.targetHeader === 'title') expect(filled).toBe(128);
        if (column.pad?.type === 'none') expect(pad).toBe(0);
      });
      // One nonce per row, shared by all of its sealed cells.
      expect(nonces.size).toBe(1);
    }
  });

  it('the fingerprint key is per column, from the lower-cased target header', () => {
    // HMAC over the value followed by its descriptor byte (0x02, a STRING).
    const hmac = (info: string, value: string): string => {
      const key = Buffer.from(hkdfSync('sha256', SECRET, Buffer.from(ID), Buffer.from(info), 32));
      return `02:hmac:${createHmac('sha256', key).update(value).update(Buffer.of(0x02)).digest('base64')}`;
    };
    const virginia = sealedRows.find((r) => r[0] === 'Mark')?.[4];
    expect(hmac('c3r-hmac-sha256-col-state', 'VA')).toBe(virginia);
    expect(hmac('c3r-hmac-sha256-col-State', 'VA')).not.toBe(virginia);
  });

  it('decrypting the whole file gives back the cleartext rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'malus-c3r-vectors-'));
    dirs.push(dir);
    const output = join(dir, 'out.csv');
    const summary = await c3rDecryptFile({ input: `${V}/marshalled_data_sample.csv`, output, secret: SECRET, collaborationId: ID });
    expect(summary).toEqual({ format: 'csv', output, dryRun: false, rows: 7, columns: 11, sealedColumns: 5, sealedCells: 35, fingerprintColumns: 2 });
    const lines = readFileSync(output, 'utf8').split('\n');
    expect(lines[0]).toBe(sealedHeader.join(','));
    expect(lines).toContain('Carl,Carlson,"0 Street",Bethesda,02:hmac:+dN/pFTpIHUfH0S+jtmzb55SwEg+rzoHTRuoj5qHsuA=,404-555-111,404-555-111,02:hmac:urbu+vA/UCQzW3XW25tRvG4XJWeest0ultEkul266Gk=,CIO,9,"This is a really long noté that could really be a paragraph"');
    // John Smith's Notes were empty, so C3R sealed a NULL; it is written back as nothing.
    expect(lines.find((l) => l.startsWith('John,Smith,'))?.endsWith(',CEO,10,')).toBe(true);
    // Jake Richards's Notes are the four letters "null": a value, not NULL.
    expect(lines.find((l) => l.startsWith('Jake,Richards,'))?.endsWith(',"SDE I",4,null')).toBe(true);
  });
});

