import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/crypto/index.js';
import {
  MerkleTree,
  buildReceipt,
  cosignatureLine,
  cosignatureVerifier,
  addCosignatures,
  decodeEntryBundle,
  decodeEvent,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  encodeEntryBundle,
  encodeEvent,
  encodeTileIndex,
  leafHash,
  parseNote,
  parseTilePath,
  signCheckpoint,
  tilePath,
  tilesForSize,
  verifyReceipt,
  type LogEvent,
} from '../../src/ledger/index.js';

describe('tlog-tiles paths', () => {
  it('encodes indexes in x-prefixed groups of three, as in the C2SP example', () => {
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(encodeTileIndex(5)).toBe('005');
    expect(tilePath(0, 1234067, 256)).toBe('tile/0/x001/x234/067');
    expect(tilePath(1, 0, 5)).toBe('tile/1/000.p/5');
  });

  it('parses only canonical paths', () => {
    expect(parseTilePath('tile/0/x001/x234/067')).toEqual({ kind: 'hash', level: 0, index: 1234067, width: 256 });
    expect(parseTilePath('tile/entries/000.p/7')).toEqual({ kind: 'entries', index: 0, width: 7 });
    for (const bad of ['tile/0/x000/001', 'tile/0/001.p/256', 'tile/0/001.p/0', 'tile/0/001.p/07', 'tile/00/001', 'tile/abc/000', 'tile/0/1', 'xtile/0/000']) {
      expect(parseTilePath(bad), bad).toBeUndefined();
    }
  });

  it('lists every tile a tree has', () => {
    expect(tilesForSize(0)).toEqual([]);
    expect(tilesForSize(300)).toEqual([
      { level: 0, index: 0, width: 256 },
      { level: 0, index: 1, width: 44 },
      { level: 1, index: 0, width: 1 },
    ]);
  });

  it('encodes entry bundles with 2-byte lengths and refuses truncation', () => {
    const entries = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(7)];
    const bundle = encodeEntryBundle(entries);
    expect(bundle.length).toBe(2 + 3 + 2 + 2 + 300);
    expect(decodeEntryBundle(bundle)).toEqual(entries);
    expect(() => decodeEntryBundle(bundle.subarray(0, bundle.length - 1))).toThrow(RangeError);
    expect(() => encodeEntryBundle([new Uint8Array(65536)])).toThrow(RangeError);
  });
});

const PARTY = '0123456789abcdef0123';
const event = (i: number): LogEvent => ({
  format: 'malus.event/v1',
  type: 'agreement.signed',
  collaboration: 'campaign-measurement',
  actor: { kind: 'party', id: PARTY },
  time: '2026-11-22T10:00:00.000Z',
  agreement: `sha256:${String(i).padStart(64, '0')}`,
  version: 1,
  signer: PARTY,
});

describe('log entries (malus.event/v1)', () => {
  it('are canonical JSON that decodes back', () => {
    const bytes = encodeEvent(event(1));
    const text = new TextDecoder().decode(bytes);
    expect(text.startsWith('{"actor":{"id":"0123456789abcdef0123","kind":"party"},"agreement":')).toBe(true);
    expect(decodeEvent(bytes)).toEqual({ ok: true, event: event(1) });
  });

  it('refuses non-canonical, unknown and malformed entries', () => {
    const pretty = new TextEncoder().encode(JSON.stringify(event(1), null, 1));
    expect(decodeEvent(pretty)).toEqual({ ok: false, reason: 'entry is not in RFC 8785 canonical form' });
    expect(decodeEvent(new TextEncoder().encode('{"format":"malus.event/v1","type":"data.leaked"}'))).toMatchObject({ ok: false });
    expect(decodeEvent(new Uint8Array([0xff, 0xfe]))).toEqual({ ok: false, reason: 'entry is not UTF-8 JSON' });
    expect(() => encodeEvent({ ...event(1), extra: 'x' } as unknown as LogEvent)).toThrow(expect.objectContaining({ code: 'invalid-input' }));
  });

  it('record a job start with its worker, and a failed job with its reason code only', () => {
    const job = `job-${'a'.repeat(32)}`;
    const common = { format: 'malus.event/v1', collaboration: 'campaign-measurement', time: '2026-11-22T10:00:00.000Z' } as const;
    const started: LogEvent = { ...common, type: 'job.started', actor: { kind: 'server', id: 'malus-queue' }, job, worker: 'k'.repeat(43), platform: 'sim', measurement: 'ab'.repeat(48) };
    const failed: LogEvent = { ...common, type: 'job.finished', actor: { kind: 'enclave', id: 'k'.repeat(43) }, job, outcome: 'failed', result: null, code: 'query-failed' };
    for (const e of [started, failed]) expect(decodeEvent(encodeEvent(e))).toEqual({ ok: true, event: e });
    // A code is a code: a message (which could hold data values) does not fit.
    expect(() => encodeEvent({ ...failed, code: 'Query failed: value 42' })).toThrow(expect.objectContaining({ code: 'invalid-input' }));
  });
});

describe('receipts (malus.receipt/v1)', () => {
  const logKey = generateSigningKeyPair();
  const witnessKey = generateSigningKeyPair();
  const log = ed25519NoteVerifier('example.com/log', logKey.publicKey);
  const witness = cosignatureVerifier('malus-witness-w', witnessKey.publicKey);
  const entries = Array.from({ length: 10 }, (_, i) => encodeEvent(event(i)));
  const tree = new MerkleTree();
  tree.appendMany(entries.map(leafHash));
  const note = signCheckpoint(
    { origin: 'example.com/log', size: 10, root: tree.root(), extensions: [] },
    ed25519NoteSigner('example.com/log', logKey.secretKey),
  );
  const body = (parseNote(note) as { text: string }).text;
  const cosigned = addCosignatures(note, [cosignatureLine(body, 'malus-witness-w', witnessKey.secretKey, 1_700_000_000)]);
  const receipt = buildReceipt({ entry: entries[6]!, index: 6, checkpointNote: cosigned, inclusionProof: tree.inclusionProof(6, 10) });

  it('verifies offline with the log key and the witness', () => {
    const verdict = verifyReceipt(receipt, { log, witnesses: [witness], minCosignatures: 1 });
    expect(verdict).toMatchObject({ ok: true, index: 6, cosignedBy: ['malus-witness-w'] });
  });

  it('names the failing step for each kind of tampering', () => {
    const policy = { log };
    expect(verifyReceipt({ ...receipt, extra: 1 }, policy)).toMatchObject({ ok: false, step: 'shape' });
    expect(verifyReceipt({ ...receipt, index: 5 }, policy)).toMatchObject({ ok: false, step: 'inclusion' });
    expect(verifyReceipt({ ...receipt, entry: receipt.entry.replace('"version":1', '"version":2') }, policy)).toMatchObject({ ok: false, step: 'inclusion' });
    expect(verifyReceipt({ ...receipt, entry: receipt.entry.replace('{', '{ ') }, policy)).toMatchObject({ ok: false, step: 'entry' });
    expect(verifyReceipt({ ...receipt, inclusionProof: receipt.inclusionProof.slice(1) }, policy)).toMatchObject({ ok: false, step: 'inclusion' });
    const otherLog = ed25519NoteVerifier('example.com/log', generateSigningKeyPair().publicKey);
    expect(verifyReceipt(receipt, { log: otherLog })).toMatchObject({ ok: false, step: 'checkpoint' });
    expect(verifyReceipt(receipt, { log, witnesses: [witness], minCosignatures: 2 })).toMatchObject({ ok: false, step: 'cosignatures' });
    const stranger = cosignatureVerifier('malus-witness-x', generateSigningKeyPair().publicKey);
    expect(verifyReceipt(receipt, { log, witnesses: [stranger], minCosignatures: 1 })).toMatchObject({ ok: false, step: 'cosignatures' });
  });
});

describe('receipts with a forged cosignature', () => {
  it('fail at the cosignature step even when no cosignature is required', () => {
    const logKey = generateSigningKeyPair();
    const witnessKey = generateSigningKeyPair();
    const entry = encodeEvent(event(0));
    const tree = new MerkleTree();
    tree.append(leafHash(entry));
    const note = signCheckpoint(
      { origin: 'example.com/log', size: 1, root: tree.root(), extensions: [] },
      ed25519NoteSigner('example.com/log', logKey.secretKey),
    );
    const body = (parseNote(note) as { text: string }).text;
    const line = cosignatureLine(body, 'malus-witness-w', witnessKey.secretKey, 1_700_000_000);
    const [dash, name, b64] = line.split(' ');
    const forged = Buffer.from(b64!, 'base64');
    forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1;
    const receipt = buildReceipt({
      entry,
      index: 0,
      checkpointNote: addCosignatures(note, [`${dash} ${name} ${forged.toString('base64')}`]),
      inclusionProof: [],
    });
    const verdict = verifyReceipt(receipt, {
      log: ed25519NoteVerifier('example.com/log', logKey.publicKey),
      witnesses: [cosignatureVerifier('malus-witness-w', witnessKey.publicKey)],
    });
    expect(verdict).toMatchObject({ ok: false, step: 'cosignatures' });
  });
});
