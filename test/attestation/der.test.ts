import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { certificateExtensions, children, readOid, readTlv, readUnsigned, readWhole } from '../../src/attestation/der.js';
import { integer, oid, seq, tlv } from './x509-builder.js';

// The DER reader behind the VCEK extension checks (X.690 §8, §10), on the real VCEK and on bytes
// built to break it.

const VCEK = new Uint8Array(readFileSync('../shared/vectors/attestation/sev-snp/vcek.der'));
const AMD = '1.3.6.1.4.1.3704.1';

describe('DER reader', () => {
  it("finds the real VCEK's AMD extensions with their values", () => {
    const extensions = certificateExtensions(VCEK);
    if ('error' in extensions) throw new Error(extensions.error);
    const hex = (id: string) => Buffer.from(extensions.get(id)?.value ?? []).toString('hex');
    expect(hex(`${AMD}.2`)).toBe(Buffer.from('\x16\x08Milan-B0', 'latin1').toString('hex'));
    expect([hex(`${AMD}.3.1`), hex(`${AMD}.3.2`), hex(`${AMD}.3.3`), hex(`${AMD}.3.8`)]).toEqual(['020102', '020100', '020105', '020144']);
    // hwID: the 64 raw bytes of CHIP_ID, with no OCTET STRING of its own.
    const report = readFileSync('../shared/vectors/attestation/sev-snp/attestation.bin');
    expect(hex(`${AMD}.4`)).toBe(report.subarray(0x1a0, 0x1e0).toString('hex'));
    expect(extensions.has(`${AMD}.5`)).toBe(false);
  });

  it('reads OIDs and non-negative minimal INTEGERs', () => {
    for (const id of ['1.3.6.1.4.1.3704.1.3.8', '2.5.29.19', '2.999.1', '0.9.2342']) {
      const bytes = oid(id);
      expect(readOid(bytes, readWhole(bytes)!)).toBe(id);
    }
    for (const n of [0, 1, 127, 128, 255, 65535]) {
      const bytes = integer(n);
      expect(readUnsigned(bytes, readWhole(bytes)!)).toBe(n);
    }
  });

  it('refuses bad lengths: truncated, past the parent, indefinite, non-minimal, too long', () => {
    const bad = [
      [0x04], // no length octet
      [0x04, 0x05, 1, 2], // content shorter than stated
      [0x30, 0x80, 0x00, 0x00], // indefinite length (BER only)
      [0x04, 0x81, 0x05, 1, 2, 3, 4, 5], // long form for a short length
      [0x04, 0x82, 0x00, 0x80, ...new Array<number>(128).fill(0)], // a leading zero length octet
      [0x04, 0x85, 1, 0, 0, 0, 0], // five length octets
      [0x04, 0x84, 0xff, 0xff, 0xff, 0xff], // 4 GiB claimed
      [0x1f, 0x22, 0x00], // high tag number form
    ];
    for (const bytes of bad) expect(readTlv(Uint8Array.from(bytes), 0), Buffer.from(bytes).toString('hex')).toBeUndefined();
    // A child running past its parent.
    const parent = Uint8Array.of(0x30, 0x03, 0x04, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00);
    expect(children(parent, readTlv(parent, 0)!)).toBeUndefined();
    // Trailing bytes after the one element.
    expect(readWhole(Uint8Array.of(0x05, 0x00, 0x00))).toBeUndefined();
  });

  it('refuses negative, non-minimal and oversized INTEGERs and badly encoded OIDs', () => {
    for (const bytes of [[0x02, 0x01, 0xff], [0x02, 0x02, 0x00, 0x01], [0x02, 0x00], [0x02, 0x07, 1, 0, 0, 0, 0, 0, 0]]) {
      const b = Uint8Array.from(bytes);
      expect(readUnsigned(b, readWhole(b)!), Buffer.from(b).toString('hex')).toBeUndefined();
    }
    for (const bytes of [[0x06, 0x00], [0x06, 0x02, 0x2b, 0x86], [0x06, 0x03, 0x2b, 0x80, 0x01]]) {
      const b = Uint8Array.from(bytes);
      expect(readOid(b, readWhole(b)!), Buffer.from(b).toString('hex')).toBeUndefined();
    }
  });

  it('refuses certificates whose extensions are duplicated or misencoded, and truncated certificates', () => {
    const wrap = (...extensions: Uint8Array[]) => seq(seq(tlv(0xa0, integer(2)), integer(1), tlv(0xa3, seq(...extensions))), seq(), tlv(0x03, Uint8Array.of(0)));
    const ext = (id: string, value: Uint8Array) => seq(oid(id), tlv(0x04, value));
    expect(certificateExtensions(wrap(ext('2.5.29.19', seq()))) instanceof Map).toBe(true);
    expect(certificateExtensions(wrap(ext(`${AMD}.4`, Uint8Array.of(1)), ext(`${AMD}.4`, Uint8Array.of(2))))).toMatchObject({ error: expect.stringContaining('twice') });
    expect(certificateExtensions(wrap(seq(oid('2.5.29.19'), tlv(0x01, Uint8Array.of(0x00)), tlv(0x04, seq()))))).toHaveProperty('error');
    expect(certificateExtensions(wrap(seq(oid('2.5.29.19'), tlv(0x02, Uint8Array.of(1)))))).toHaveProperty('error');
    for (const length of [0, 1, 4, 100, VCEK.length - 1]) expect(certificateExtensions(VCEK.subarray(0, length)), `length ${length}`).toHaveProperty('error');
  });
});
