import { createDecipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  C3R_MAX_CELL_BYTES,
  deriveC3rKeys,
  fingerprintC3rCell,
  isC3rFingerprint,
  isC3rSealed,
  normalizeCollaborationId,
  parseC3rSharedSecret,
  sealC3rCell,
  unsealC3rCell,
  type C3rKeys,
  type C3rValue,
} from '../../../src/ingest/c3r/index.js';
import { MalusError } from '../../../src/errors/index.js';

const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const ID = '00000000-1111-2222-3333-444444444444';
const keys = deriveC3rKeys(SECRET, ID);
const NONCE = Buffer.alloc(32, 7);

/** The plaintext inside a sealed cell, opened with node:crypto directly. */
function plaintextOf(cell: string, k: C3rKeys = keys): Buffer {
  const body = Buffer.from(cell.slice('02:enc:'.length), 'base64');
  const nonce = body.subarray(0, 32);
  const key = createHash('sha256').update(k.rootKey).update(nonce).digest();
  const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(32, 44));
  decipher.setAAD(Buffer.from('02:enc:'));
  decipher.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([decipher.update(body.subarray(44, body.length - 16)), decipher.final()]);
}

function errorOf(run: () => unknown): MalusError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    return error as MalusError;
  }
  throw new Error('expected an error');
}

describe('sealing', () => {
  it('pad none: descriptor, the value, and a zero pad length', () => {
    const cell = sealC3rCell('Richmond', { keys, columnLabel: 'city', pad: { type: 'none' }, nonce: NONCE });
    expect(isC3rSealed(cell)).toBe(true);
    expect(plaintextOf(cell)).toEqual(Buffer.concat([Buffer.of(0x02), Buffer.from('Richmond'), Buffer.of(0, 0)]));
    expect(unsealC3rCell(cell, keys)).toEqual({ type: 'string', value: 'Richmond' });
  });

  it('pad fixed: the value is zero-filled to the length; a longer value has no room', () => {
    const cell = sealC3rCell('CEO', { keys, columnLabel: 'title', pad: { type: 'fixed', length: 8 } });
    expect(plaintextOf(cell)).toEqual(Buffer.from([0x02, 0x43, 0x45, 0x4f, 0, 0, 0, 0, 0, 0, 5]));
    expect(unsealC3rCell(cell, keys)).toEqual({ type: 'string', value: 'CEO' });
    // Exactly the length fits, with no padding.
    expect(plaintextOf(sealC3rCell('12345678', { keys, columnLabel: 'title', pad: { type: 'fixed', length: 8 } }))).toHaveLength(1 + 8 + 2);
    expect(errorOf(() => sealC3rCell('123456789', { keys, columnLabel: 'title', pad: { type: 'fixed', length: 8 } })).message).toBe(
      'the value is 9 bytes, longer than the 8 bytes the column\'s pad fills to (no room for padding)',
    );
  });

  it('pad max: values fill to the longest value of the column plus the length', () => {
    const cell = sealC3rCell('4 N St', { keys, columnLabel: 'address', pad: { type: 'max', length: 32 }, maxValueBytes: 14 });
    const plain = plaintextOf(cell);
    expect(plain).toHaveLength(1 + 14 + 32 + 2);
    expect(plain.readUInt16BE(plain.length - 2)).toBe(14 + 32 - 6);
    expect(unsealC3rCell(cell, keys)).toEqual({ type: 'string', value: '4 N St' });
  });

  it('counts bytes, not characters', () => {
    const cell = sealC3rCell('noté', { keys, columnLabel: 'notes', pad: { type: 'fixed', length: 5 } });
    expect(plaintextOf(cell).readUInt16BE(6)).toBe(0);
    expect(() => sealC3rCell('notés', { keys, columnLabel: 'notes', pad: { type: 'fixed', length: 5 } })).toThrow(/the value is 6 bytes/);
  });

  it("keeps C3R's limits: 12000 padded bytes, and 16383 bytes per cell", () => {
    expect(sealC3rCell('x', { keys, columnLabel: 'c', pad: { type: 'fixed', length: 12_000 } }).length).toBeLessThanOrEqual(C3R_MAX_CELL_BYTES);
    expect(errorOf(() => sealC3rCell('x', { keys, columnLabel: 'c', pad: { type: 'max', length: 10_000 }, maxValueBytes: 2001 })).message).toBe(
      "padding to 12001 bytes is over C3R's limit of 12000 bytes per padded value",
    );
    expect(errorOf(() => sealC3rCell('x'.repeat(12_500), { keys, columnLabel: 'c', pad: { type: 'none' } })).message).toBe(
      "the sealed value would be 16759 bytes; C3R's limit (AWS Glue's) is 16383 bytes per cell",
    );
  });

  it('seals NULL as a NULL descriptor, padded like any value', () => {
    const cell = sealC3rCell(null, { keys, columnLabel: 'notes', pad: { type: 'fixed', length: 4 } });
    expect(plaintextOf(cell)).toEqual(Buffer.from([0x03, 0, 0, 0, 0, 0, 4]));
    expect(unsealC3rCell(cell, keys)).toBeNull();
  });

  it('derives the IV from the column label and the nonce, and the key from the nonce', () => {
    const a = sealC3rCell('v', { keys, columnLabel: 'a', pad: { type: 'none' }, nonce: NONCE });
    const b = sealC3rCell('v', { keys, columnLabel: 'b', pad: { type: 'none' }, nonce: NONCE });
    const ivOf = (cell: string): Buffer => Buffer.from(cell.slice(7), 'base64').subarray(32, 44);
    expect(ivOf(a)).toEqual(createHash('sha256').update('a').update(NONCE).digest().subarray(0, 12));
    expect(ivOf(a)).not.toEqual(ivOf(b));
    // A fresh random nonce each time by default.
    expect(sealC3rCell('v', { keys, columnLabel: 'a', pad: { type: 'none' } })).not.toBe(sealC3rCell('v', { keys, columnLabel: 'a', pad: { type: 'none' } }));
  });

  it('round-trips typed (Parquet) values with their descriptors', () => {
    const values: C3rValue[] = [
      { type: 'bigint', value: -(2n ** 62n) },
      { type: 'int', value: -123_456 },
      { type: 'smallint', value: 4321 },
      { type: 'boolean', value: true },
      { type: 'date', value: 19_000 },
      { type: 'double', value: 3.25 },
      { type: 'float', value: 1.5 },
    ];
    const descriptors = [0x04, 0x12, 0x14, 0x06, 0x0a, 0x0e, 0x10];
    values.forEach((value, i) => {
      const cell = sealC3rCell(value, { keys, columnLabel: 'n', pad: { type: 'none' } });
      expect(plaintextOf(cell)[0]).toBe(descriptors[i]);
      expect(unsealC3rCell(cell, keys)).toEqual(value);
    });
    expect(plaintextOf(sealC3rCell({ type: 'bigint', value: 258n }, { keys, columnLabel: 'n', pad: { type: 'none' } }))).toEqual(
      Buffer.from([0x04, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0]),
    );
  });
});

describe('opening refuses what it cannot trust', () => {
  const cell = sealC3rCell('12345 Mills Rd', { keys, columnLabel: 'address', pad: { type: 'max', length: 32 }, maxValueBytes: 14 });
  const AUTH = 'the sealed value does not authenticate: the shared secret or the collaboration id is wrong, or the value was altered';

  it('a flipped byte anywhere after the prefix', () => {
    const body = Buffer.from(cell.slice(7), 'base64');
    for (const at of [0, 40, 50, body.length - 1]) {
      const tampered = Buffer.from(body);
      tampered[at] = (tampered[at] ?? 0) ^ 0x01;
      expect(errorOf(() => unsealC3rCell(`02:enc:${tampered.toString('base64')}`, keys)).message).toBe(AUTH);
    }
  });

  it('the wrong shared secret or the wrong collaboration id', () => {
    const otherSecret = deriveC3rKeys(Buffer.alloc(32, 1), ID);
    const otherId = deriveC3rKeys(SECRET, '00000000-1111-2222-3333-444444444445');
    expect(errorOf(() => unsealC3rCell(cell, otherSecret)).message).toBe(AUTH);
    expect(errorOf(() => unsealC3rCell(cell, otherId)).message).toBe(AUTH);
  });

  it('a truncated cell', () => {
    expect(errorOf(() => unsealC3rCell(cell.slice(0, cell.length - 8), keys)).message).toBe(AUTH);
    expect(errorOf(() => unsealC3rCell(`02:enc:${Buffer.alloc(62).toString('base64')}`, keys)).message).toBe(
      'the sealed value is truncated: 62 bytes after base64, at least 63 expected',
    );
    expect(errorOf(() => unsealC3rCell('02:enc:', keys)).message).toBe('the sealed value is truncated: 0 bytes after base64, at least 63 expected');
  });

  it('a wrong prefix, another format version, or broken base64', () => {
    expect(errorOf(() => unsealC3rCell(`03${cell.slice(2)}`, keys)).message).toBe('the value is sealed with C3R format version `03`; Malus opens version 02 only');
    expect(errorOf(() => unsealC3rCell(`01${cell.slice(2)}`, keys)).message).toBe('the value is sealed with C3R format version `01`; Malus opens version 02 only');
    expect(errorOf(() => unsealC3rCell(`02:hmac:${cell.slice(7)}`, keys)).message).toBe('not a C3R sealed value (it does not start with 02:enc:)');
    expect(errorOf(() => unsealC3rCell('Richmond', keys)).message).toBe('not a C3R sealed value (it does not start with 02:enc:)');
    expect(errorOf(() => unsealC3rCell(`${cell.slice(0, 20)}*${cell.slice(21)}`, keys)).message).toBe('the sealed value is not valid base64');
  });
});

describe('fingerprints', () => {
  const options = { keys, columnLabel: 'state' };

  it('are deterministic per column and value, and differ between columns', () => {
    const va = fingerprintC3rCell('VA', options);
    expect(va).toBe('02:hmac:dVShrpJ70MTSG9VCtCW8WcMdoKbeel144Aln4vRwWk4=');
    expect(isC3rFingerprint(va)).toBe(true);
    expect(fingerprintC3rCell('VA', options)).toBe(va);
    expect(fingerprintC3rCell('VA', { keys, columnLabel: 'state2' })).not.toBe(va);
    expect(fingerprintC3rCell('va', options)).not.toBe(va);
  });

  it('with allowJoinsOnColumnsWithDifferentNames, one key for every column', () => {
    const a = fingerprintC3rCell('VA', { keys, columnLabel: 'state', allowJoinsOnColumnsWithDifferentNames: true });
    const b = fingerprintC3rCell('VA', { keys, columnLabel: 'home_state', allowJoinsOnColumnsWithDifferentNames: true });
    expect(a).toBe(b);
    expect(a).not.toBe(fingerprintC3rCell('VA', options));
  });

  it('NULL is NULL with preserveNulls, else a random fingerprint that matches nothing', () => {
    expect(fingerprintC3rCell(null, { ...options, preserveNulls: true })).toBeNull();
    const first = fingerprintC3rCell(null, options);
    expect(isC3rFingerprint(first)).toBe(true);
    expect(fingerprintC3rCell(null, options)).not.toBe(first);
  });

  it('normalize integers to BIGINT, so equal numbers match whatever their width', () => {
    const big = fingerprintC3rCell({ type: 'bigint', value: 42n }, options);
    expect(fingerprintC3rCell({ type: 'int', value: 42 }, options)).toBe(big);
    expect(fingerprintC3rCell({ type: 'smallint', value: 42 }, options)).toBe(big);
    expect(fingerprintC3rCell('42', options)).not.toBe(big);
    expect(errorOf(() => fingerprintC3rCell({ type: 'double', value: 4.2 }, options)).message).toBe(
      'C3R does not fingerprint DOUBLE values (only strings, integers, booleans and dates)',
    );
  });
});

describe('keys', () => {
  it('read the shared secret as base64 of at least 32 bytes, never echoing it', () => {
    const base64 = SECRET.toString('base64');
    expect(parseC3rSharedSecret(base64, '$C3R_SHARED_SECRET')).toEqual(SECRET);
    expect(parseC3rSharedSecret(Buffer.alloc(64, 9).toString('base64'))).toHaveLength(64);
    const short = Buffer.alloc(16, 9).toString('base64');
    const error = errorOf(() => parseC3rSharedSecret(short, '$C3R_SHARED_SECRET'));
    expect(error.message).toBe('$C3R_SHARED_SECRET decodes to 16 bytes; C3R needs at least 32');
    expect(error.message).not.toContain(short);
    expect(errorOf(() => parseC3rSharedSecret('not base64!', '$C3R_SHARED_SECRET')).message).toBe('$C3R_SHARED_SECRET is not valid base64');
    expect(errorOf(() => parseC3rSharedSecret(undefined, '$C3R_SHARED_SECRET')).message).toBe(
      '$C3R_SHARED_SECRET is not set (base64 of at least 32 random bytes)',
    );
  });

  it('take the collaboration id as C3R does: a UUID, in lower case', () => {
    expect(normalizeCollaborationId(' 0000000A-1111-2222-3333-44444444444B ')).toBe('0000000a-1111-2222-3333-44444444444b');
    expect(deriveC3rKeys(SECRET, ID.toUpperCase()).rootKey).toEqual(keys.rootKey);
    expect(errorOf(() => normalizeCollaborationId('my-collaboration')).message).toBe(
      'collaboration id `my-collaboration` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)',
    );
  });
});
