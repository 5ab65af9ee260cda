import { createCipheriv, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, generateEncryptionKeyPair, hpkeOpen, toBase64Url, utf8, type KeyPair } from '../../src/crypto/index.js';
import {
  RESULT_KEY_INFO,
  encodeResultRows,
  openResult,
  parseResultRows,
  resultValue,
  sealResult,
  sealedCiphertext,
  type SealedResult,
} from '../../src/engine/index.js';
import { openIngestDb, type IngestDb } from '../../src/ingest/index.js';
import { failure } from './failure.js';

// A query result as it leaves the enclave: canonical JSON rows, AES-256-GCM under a fresh key, the
// key sealed with HPKE to each receiver; only a receiver opens it, for that job, unaltered.

describe('resultValue', () => {
  let db: IngestDb;
  beforeAll(async () => {
    db = await openIngestDb({ threads: 1 });
  });
  afterAll(() => {
    db.close();
  });

  const valuesOf = async (sql: string): Promise<unknown[]> => ((await db.connection.runAndReadAll(sql)).getRows()[0] ?? []).map(resultValue);

  it('gives wide integers and decimals as strings, dates and timestamps as ISO 8601, doubles as numbers', async () => {
    expect(
      await valuesOf(`SELECT 42::BIGINT, 170141183460469231731687303715884105727::HUGEINT, 18446744073709551615::UBIGINT, 7::INTEGER, 3::SMALLINT,
        CAST(12.50 AS DECIMAL(12,2)), CAST(-0.05 AS DECIMAL(30,4)), 1.25::DOUBLE, 0.5::REAL, 'text', true, NULL::INTEGER,
        DATE '2026-11-05', TIMESTAMP '2026-11-05 12:30:00', TIMESTAMP '2026-11-05 12:30:00.25', TIMESTAMP '2026-11-05 12:30:00.000001',
        TIMESTAMPTZ '2026-11-05 12:30:00+02', '4c4a5c2e-8c0e-4d0e-9a8f-0c3f7b6d9e21'::UUID, '\\x01\\xff'::BLOB`),
    ).toEqual([
      '42',
      '170141183460469231731687303715884105727',
      '18446744073709551615',
      7,
      3,
      '12.50',
      '-0.0500',
      1.25,
      0.5,
      'text',
      true,
      null,
      '2026-11-05',
      '2026-11-05T12:30:00',
      '2026-11-05T12:30:00.25',
      '2026-11-05T12:30:00.000001',
      '2026-11-05T10:30:00Z',
      '4c4a5c2e-8c0e-4d0e-9a8f-0c3f7b6d9e21',
      'Af8',
    ]);
  });

  it('gives non-finite doubles as null, infinite dates as infinity, and dates before year 0 or after 9999 in the expanded form', async () => {
    expect(
      await valuesOf(`SELECT 'nan'::DOUBLE, 'inf'::DOUBLE, '-inf'::DOUBLE, 'infinity'::DATE, '-infinity'::TIMESTAMP,
        DATE '0044-03-15 (BC)', DATE '0001-01-01' - 1, DATE '12345-01-01', DATE '1969-12-31', TIMESTAMP '1969-12-31 23:59:59.5',
        TIMESTAMP '1970-01-01 00:00:00'`),
    ).toEqual([
      null,
      null,
      null,
      'infinity',
      '-infinity',
      '-000043-03-15',
      '0000-12-31',
      '+012345-01-01',
      '1969-12-31',
      '1969-12-31T23:59:59.5',
      '1970-01-01T00:00:00',
    ]);
  });

  it('agrees with JavaScript for every day of a few centuries', async () => {
    const rows = (await db.connection.runAndReadAll(`SELECT d::DATE FROM range(DATE '1890-01-01', DATE '2130-01-01', INTERVAL 13 DAY) t(d)`)).getRows();
    expect(rows.length).toBeGreaterThan(6000);
    for (const [value] of rows) {
      const text = resultValue(value ?? null);
      expect(text).toBe(new Date(`${String(text)}T00:00:00Z`).toISOString().slice(0, 10));
    }
  });
});

describe('encodeResultRows and parseResultRows', () => {
  const columns = [
    { name: 'campaign_id', type: 'VARCHAR' },
    { name: 'viewers', type: 'BIGINT' },
    { name: 'share', type: 'DOUBLE' },
  ];

  it('is the RFC 8785 canonical JSON of the documented shape, and reads back', () => {
    const bytes = encodeResultRows(columns, [
      ['cmp-0', 60n, 0.5],
      ['cmp-é', 9007199254740993n, Number.POSITIVE_INFINITY],
    ]);
    const text = new TextDecoder().decode(bytes);
    expect(text).toBe(
      '{"columns":[{"name":"campaign_id","type":"VARCHAR"},{"name":"viewers","type":"BIGINT"},{"name":"share","type":"DOUBLE"}],' +
        '"format":"malus.result-rows/v1","rows":[["cmp-0","60",0.5],["cmp-é","9007199254740993",null]]}',
    );
    expect(parseResultRows(bytes)).toEqual({
      format: 'malus.result-rows/v1',
      columns,
      rows: [
        ['cmp-0', '60', 0.5],
        ['cmp-é', '9007199254740993', null],
      ],
    });
    expect(new TextDecoder().decode(encodeResultRows([], []))).toBe('{"columns":[],"format":"malus.result-rows/v1","rows":[]}');
  });

  it('refuses a row that does not have one value per column (internal)', () => {
    expect(() => encodeResultRows(columns, [['only one']])).toThrow(expect.objectContaining({ code: 'internal' }) as Error);
  });

  it('refuses payloads off the shape (invalid-input)', () => {
    const bad = [
      'not json',
      '[]',
      '{"format":"malus.result-rows/v2","columns":[],"rows":[]}',
      '{"format":"malus.result-rows/v1","columns":[{"name":"a","type":"VARCHAR"}],"rows":[["x","y"]]}',
      '{"format":"malus.result-rows/v1","columns":[{"name":"a","type":"VARCHAR"}],"rows":[[{"x":1}]]}',
      '{"format":"malus.result-rows/v1","columns":[{"name":"a"}],"rows":[]}',
      '{"format":"malus.result-rows/v1","columns":[],"rows":[],"extra":1}',
    ];
    for (const text of bad) expect(() => parseResultRows(utf8(text)), text).toThrow(expect.objectContaining({ code: 'invalid-input' }) as Error);
    expect(() => parseResultRows(new Uint8Array([0xff, 0xfe]))).toThrow(expect.objectContaining({ code: 'invalid-input' }) as Error);
  });

  it("reads back an AVG column's per-row intervals, and refuses a report with another number of them than rows", () => {
    const noise = { mechanism: 'laplace' as const, scale: '1', ci95: '3' };
    const avg = { column: 'mean', mechanism: 'laplace' as const, of: { sum: noise, count: noise } };
    const privacy = (rows95: ([number, number] | null)[]) => ({ accounting: 'pure' as const, cost: { epsilon: '1' }, columns: [{ ...avg, rows95 }] });
    const two = [['a', 4.5], ['b', null]];
    const cols = [{ name: 'g', type: 'VARCHAR' }, { name: 'mean', type: 'DOUBLE' }];
    const read = parseResultRows(encodeResultRows(cols, two, privacy([[4, 5.25], null])));
    expect(read.privacy?.columns[0]?.rows95).toEqual([[4, 5.25], null]);
    expect(() => parseResultRows(encodeResultRows(cols, two, privacy([[4, 5.25]])))).toThrow(expect.objectContaining({ code: 'invalid-input' }) as Error);
  });
});

describe('sealResult and openResult', () => {
  const jobId = `job-${'a1'.repeat(16)}`;
  const alice: KeyPair = generateEncryptionKeyPair();
  const bob: KeyPair = generateEncryptionKeyPair();
  const mallory: KeyPair = generateEncryptionKeyPair();
  const payload = encodeResultRows([{ name: 'n', type: 'BIGINT' }], [[1n], [2n]]);
  let sealed: SealedResult;

  beforeAll(async () => {
    sealed = await sealResult({
      jobId,
      payload,
      receivers: [
        { party: 'a'.repeat(20), encryptionKey: alice.publicKey },
        { party: 'b'.repeat(20), encryptionKey: bob.publicKey },
      ],
    });
  });

  const open = (changes: Partial<{ jobId: string; sealed: SealedResult; party: string; secretKey: Uint8Array }> = {}): Promise<Uint8Array> =>
    openResult({ jobId, sealed, party: 'a'.repeat(20), secretKey: alice.secretKey, ...changes });

  const flipped = (text: string, at = 0): string => {
    const bytes = fromBase64Url(text) ?? new Uint8Array();
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    return toBase64Url(bytes);
  };

  it('has the documented envelope: 12-byte nonce, ciphertext with its 16-byte tag, one recipient each', () => {
    expect(sealed.format).toBe('malus.sealed-result/v1');
    expect(fromBase64Url(sealed.nonce)).toHaveLength(12);
    expect(sealedCiphertext(sealed)).toHaveLength(payload.length + 16);
    expect(sealed.recipients.map((r) => r.party)).toEqual(['a'.repeat(20), 'b'.repeat(20)]);
    for (const r of sealed.recipients) expect(fromBase64Url(r.enc)).toHaveLength(32);
  });

  it('opens for each receiver with its own key, to the very payload', async () => {
    expect(Buffer.from(await open())).toEqual(Buffer.from(payload));
    expect(Buffer.from(await open({ party: 'b'.repeat(20), secretKey: bob.secretKey }))).toEqual(Buffer.from(payload));
  });

  it('is AES-256-GCM under the HPKE-sealed key, with the documented AAD (an independent decryption)', async () => {
    const recipient = sealed.recipients[0];
    if (recipient === undefined) throw new Error('no recipient');
    const key = await hpkeOpen(alice.secretKey, { enc: fromBase64Url(recipient.enc) ?? new Uint8Array(), ciphertext: fromBase64Url(recipient.key) ?? new Uint8Array() }, RESULT_KEY_INFO, utf8(jobId));
    expect(key).toHaveLength(32);
    // Encrypting the payload again under the same key and nonce gives the same bytes: the AAD is the documented one.
    const cipher = createCipheriv('aes-256-gcm', key ?? new Uint8Array(), fromBase64Url(sealed.nonce) ?? new Uint8Array());
    cipher.setAAD(utf8(`malus.result/v1\0${jobId}`));
    const again = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
    expect(toBase64Url(again)).toBe(sealed.ciphertext);
  });

  it('uses a fresh key and nonce each time', async () => {
    const again = await sealResult({ jobId, payload, receivers: [{ party: 'a'.repeat(20), encryptionKey: alice.publicKey }] });
    expect(again.nonce).not.toBe(sealed.nonce);
    expect(again.ciphertext).not.toBe(sealed.ciphertext);
  });

  it('does not open for a party it is not sealed to, or with the wrong key (decryption-failed)', async () => {
    expect((await failure(open({ party: 'c'.repeat(20), secretKey: mallory.secretKey }))).code).toBe('decryption-failed');
    expect((await failure(open({ secretKey: mallory.secretKey }))).code).toBe('decryption-failed');
    expect((await failure(open({ secretKey: bob.secretKey }))).code).toBe('decryption-failed');
    expect((await failure(open({ party: 'b'.repeat(20) }))).code).toBe('decryption-failed');
  });

  it('does not open for another job (decryption-failed)', async () => {
    expect((await failure(open({ jobId: `job-${'b2'.repeat(16)}` }))).code).toBe('decryption-failed');
  });

  it('does not open once any byte of the ciphertext, tag, nonce, enc or sealed key changes (decryption-failed)', async () => {
    const [first, second] = sealed.recipients;
    if (first === undefined || second === undefined) throw new Error('two recipients expected');
    const length = sealedCiphertext(sealed).length;
    const changed: SealedResult[] = [
      { ...sealed, ciphertext: flipped(sealed.ciphertext, 0) },
      { ...sealed, ciphertext: flipped(sealed.ciphertext, length - 1) },
      { ...sealed, ciphertext: toBase64Url(sealedCiphertext(sealed).subarray(0, length - 1)) },
      { ...sealed, nonce: flipped(sealed.nonce, 5) },
      { ...sealed, nonce: toBase64Url(new Uint8Array(16)) },
      { ...sealed, recipients: [{ ...first, enc: flipped(first.enc, 3) }, second] },
      { ...sealed, recipients: [{ ...first, key: flipped(first.key, 3) }, second] },
      { ...sealed, recipients: [{ ...first, key: second.key, enc: second.enc }, second] },
      { ...sealed, ciphertext: 'not base64url!' },
      { ...sealed, format: 'malus.sealed-result/v0' as SealedResult['format'] },
    ];
    for (const candidate of changed) {
      expect((await failure(open({ sealed: candidate }))).code, JSON.stringify(candidate).slice(0, 200)).toBe('decryption-failed');
    }
  });

  it('refuses to seal to nobody (internal)', async () => {
    expect((await failure(sealResult({ jobId, payload, receivers: [] }))).code).toBe('internal');
  });

  it('binds what the statement hashes: the ciphertext bytes', () => {
    const hash = `sha256:${createHash('sha256').update(sealedCiphertext(sealed)).digest('hex')}`;
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(() => sealedCiphertext({ ...sealed, ciphertext: '!' })).toThrow(expect.objectContaining({ code: 'invalid-input' }) as Error);
  });
});
