import { describe, expect, it } from 'vitest';
import { fromBase64, generateSigningKeyPair, toBase64, toHex, utf8, verifyEd25519 } from '../../src/crypto/index.js';
import { MalusError } from '../../src/errors/index.js';
import { formatCheckpoint, openCheckpoint, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { addCosignatures, cosignatureLine, cosignatureSigner, cosignatureVerifier } from '../../src/ledger/cosignature.js';
import { NO_KNOWN_SIGNER, ed25519NoteSigner, ed25519NoteVerifier, noteKeyId, parseNote, signNote, verifyNote } from '../../src/ledger/note.js';

const DASH = '\u2014';

// c2sp.org/tlog-cosignature: the example cosigned checkpoint; its signed message example has
// `time 1679315147`. The witness key is not published.
const SPEC_BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SPEC_NOTE =
  `${SPEC_BODY}\n` +
  `${DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n` +
  `${DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n`;

// transparency-dev/formats note/note_cosigv1_test.go (TestCosignatureTimestamp): a cosignature
// (key id and timestamped signature) of time 1727964367, and an Ed25519 note signature.
const FORMATS_COSIGNATURE = 'ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==';
const FORMATS_ED25519 = 'eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=';

// A checkpoint of the arche2025h1 staging CT log of transparency.dev cosigned by the remora.n621.de
// witness, whose cosignature/v1 verifier key (type 0x04) is that of transparency-dev/formats' tests.
const REMORA_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';
const ARCHE_BODY = 'arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n';
const REMORA_LINE = `${DASH} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==`;
const ARCHE_LOG_LINE = `${DASH} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=`;

function remoraKey(): Uint8Array {
  const raw = fromBase64(REMORA_VKEY.split('+').slice(2).join('+'))!;
  expect(raw[0]).toBe(0x04);
  return raw.slice(1);
}

function bytesOfLine(line: string): Uint8Array {
  return fromBase64(line.slice(line.lastIndexOf(' ') + 1))!;
}

function lineWith(name: string, bytes: Uint8Array): string {
  return `${DASH} ${name} ${toBase64(bytes)}`;
}

function expectMisuse(fn: () => unknown): void {
  expect(fn).toThrow(MalusError);
}

describe('spec vectors', () => {
  it('reads the timestamp of the tlog-cosignature example', () => {
    const parsed = parseNote(SPEC_NOTE);
    if ('error' in parsed) throw new Error(parsed.error);
    const cosig = parsed.signatures[1]!;
    expect(cosig.name).toBe('witness.example.com/w1');
    expect(toHex(cosig.keyId)).toBe('8d66cf3f');
    expect(cosig.signature).toHaveLength(72);
    const anyWitness = cosignatureVerifier('witness.example.com/w1', generateSigningKeyPair().publicKey);
    expect(anyWitness.timestampOf(cosig.signature)).toBe(1679315147);
  });

  it('reads the timestamp of the transparency-dev/formats vector, and refuses an Ed25519 signature there', () => {
    const anyWitness = cosignatureVerifier('w.example', generateSigningKeyPair().publicKey);
    expect(anyWitness.timestampOf(fromBase64(FORMATS_COSIGNATURE)!.subarray(4))).toBe(1727964367);
    expectMisuse(() => anyWitness.timestampOf(fromBase64(FORMATS_ED25519)!.subarray(4)));
  });

  it("verifies remora.n621.de's cosignature on a transparency.dev checkpoint", () => {
    const key = remoraKey();
    expect(toHex(noteKeyId('remora.n621.de', 0x04, key))).toBe('da77ade7');
    const remora = cosignatureVerifier('remora.n621.de', key);
    expect(toHex(remora.keyId)).toBe('da77ade7');
    const note = `${ARCHE_BODY}\n${ARCHE_LOG_LINE}\n${REMORA_LINE}\n`;
    expect(verifyNote(note, [remora])).toEqual({
      ok: true,
      text: ARCHE_BODY,
      verified: ['remora.n621.de'],
      unverified: ['arche2025h1.staging.ct.transparency.dev'],
    });
    expect(remora.timestampOf(bytesOfLine(REMORA_LINE).subarray(4))).toBe(1779573024);
  });

  it("refuses remora.n621.de's cosignature over another checkpoint or with another timestamp", () => {
    const remora = cosignatureVerifier('remora.n621.de', remoraKey());
    const otherSize = `${ARCHE_BODY.replace('1432088532', '1432088533')}\n${REMORA_LINE}\n`;
    expect(verifyNote(otherSize, [remora])).toEqual({ ok: false, reason: 'signature by remora.n621.de+da77ade7 does not verify' });
    const bytes = bytesOfLine(REMORA_LINE);
    bytes[11] = (bytes[11] ?? 0) + 1; // one second later
    expect(verifyNote(`${ARCHE_BODY}\n${lineWith('remora.n621.de', bytes)}\n`, [remora])).toMatchObject({ ok: false });
    // As a plain Ed25519 note key the witness key has another key id: its cosignature is not a note signature.
    const asNoteKey = ed25519NoteVerifier('remora.n621.de', remoraKey());
    expect(verifyNote(`${ARCHE_BODY}\n${REMORA_LINE}\n`, [asNoteKey])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });
});

describe('cosignatures made here', () => {
  const log = generateSigningKeyPair();
  const witness = generateSigningKeyPair();
  const logSigner = ed25519NoteSigner('example.com/log', log.secretKey);
  const logVerifier = ed25519NoteVerifier('example.com/log', log.publicKey);
  const checkpoint = { origin: 'example.com/log', size: 7, root: new Uint8Array(32).fill(1), extensions: [] };
  const body = formatCheckpoint(checkpoint);
  const note = signCheckpoint(checkpoint, logSigner);
  const witnessVerifier = cosignatureVerifier('witness.example', witness.publicKey);

  it('signs cosignature/v1\\ntime <t>\\n followed by the checkpoint text, after an 8-byte big-endian time', () => {
    const line = cosignatureLine(body, 'witness.example', witness.secretKey, 1_700_000_000);
    expect(line.startsWith(`${DASH} witness.example `)).toBe(true);
    const bytes = bytesOfLine(line);
    expect(bytes).toHaveLength(4 + 8 + 64);
    expect(bytes.subarray(0, 4)).toEqual(noteKeyId('witness.example', 0x04, witness.publicKey));
    expect(toHex(bytes.subarray(4, 12))).toBe((1_700_000_000).toString(16).padStart(16, '0'));
    expect(verifyEd25519(witness.publicKey, utf8(`cosignature/v1\ntime 1700000000\n${body}`), bytes.subarray(12))).toBe(true);
  });

  it('verifies and reads back the time, and leaves the log signature to open the checkpoint', () => {
    for (const time of [0, 1_700_000_000, Number.MAX_SAFE_INTEGER]) {
      const line = cosignatureLine(body, 'witness.example', witness.secretKey, time);
      const cosigned = addCosignatures(note, [line]);
      expect(verifyNote(cosigned, [witnessVerifier])).toEqual({ ok: true, text: body, verified: ['witness.example'], unverified: ['example.com/log'] });
      const opened = openCheckpoint(cosigned, logVerifier, 'example.com/log');
      if (!opened.ok) throw new Error(opened.reason);
      const sig = opened.note.signatures.find((s) => s.name === 'witness.example')!;
      expect(witnessVerifier.timestampOf(sig.signature)).toBe(time);
    }
  });

  it('signs with the time of its clock when used as a note signer', () => {
    let now = 1_800_000_000;
    const signer = cosignatureSigner('witness.example', witness.secretKey, () => now++);
    const both = signNote(body, [logSigner, signer]);
    expect(verifyNote(both, [logVerifier, witnessVerifier])).toMatchObject({ ok: true, verified: ['example.com/log', 'witness.example'] });
    const parsed = parseNote(both);
    if ('error' in parsed) throw new Error(parsed.error);
    expect(witnessVerifier.timestampOf(parsed.signatures[1]!.signature)).toBe(1_800_000_000);
    expect(signer.keyId).toEqual(witnessVerifier.keyId);
    expect(signer.keyId).not.toEqual(ed25519NoteSigner('witness.example', witness.secretKey).keyId);
  });

  it('adds each line once, whether already present, repeated or ending with a newline', () => {
    const a = cosignatureLine(body, 'witness.example', witness.secretKey, 1);
    const other = generateSigningKeyPair();
    const b = cosignatureLine(body, 'other.example', other.secretKey, 2);
    const once = addCosignatures(note, [a, a, `${a}\n`]);
    expect(once).toBe(`${note}${a}\n`);
    expect(addCosignatures(once, [a, b])).toBe(`${note}${a}\n${b}\n`);
    expect(addCosignatures(note, [])).toBe(note);
    const verdict = verifyNote(addCosignatures(once, [b]), [witnessVerifier, cosignatureVerifier('other.example', other.publicKey)]);
    expect(verdict).toMatchObject({ ok: true, verified: ['witness.example', 'other.example'] });
  });

  it('refuses to add malformed lines or to add to a malformed note', () => {
    const a = cosignatureLine(body, 'witness.example', witness.secretKey, 1);
    for (const line of ['', ' ', `${a}\n\n`, `${a}\n${a}`, ` ${a}`, `${a} `, `${a}\r\n`, a.replace(DASH, '-'), `${DASH} witness.example AAAA`]) {
      expectMisuse(() => addCosignatures(note, [line]));
    }
    expectMisuse(() => addCosignatures(body, [a]));
    expectMisuse(() => addCosignatures(note.slice(0, -1), [a]));
  });

  it('refuses a cosignature over a different checkpoint', () => {
    const otherBody = formatCheckpoint({ ...checkpoint, size: 8 });
    const wrong = cosignatureLine(otherBody, 'witness.example', witness.secretKey, 1_700_000_000);
    expect(verifyNote(addCosignatures(note, [wrong]), [witnessVerifier])).toEqual({
      ok: false,
      reason: `signature by witness.example+${toHex(witnessVerifier.keyId)} does not verify`,
    });
    // And a log verifier still opens the checkpoint: the cosignature is not its business.
    expect(openCheckpoint(addCosignatures(note, [wrong]), logVerifier)).toMatchObject({ ok: true });
  });

  it('refuses a tampered timestamp field and a flipped signature byte', () => {
    const line = cosignatureLine(body, 'witness.example', witness.secretKey, 1_700_000_000);
    for (const [index, mask] of [[4, 0x01], [11, 0x01], [4, 0x80], [40, 0x01], [75, 0x01]] as const) {
      const bytes = bytesOfLine(line);
      bytes[index] = (bytes[index] ?? 0) ^ mask;
      const tampered = addCosignatures(note, [lineWith('witness.example', bytes)]);
      expect(verifyNote(tampered, [witnessVerifier])).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    }
  });

  it('refuses a cosignature under another key or another name', () => {
    const line = cosignatureLine(body, 'witness.example', witness.secretKey, 1);
    const cosigned = addCosignatures(note, [line]);
    expect(verifyNote(cosigned, [cosignatureVerifier('witness.example', log.publicKey)])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
    expect(verifyNote(cosigned, [cosignatureVerifier('other.example', witness.publicKey)])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });
});

describe('signature type confusion', () => {
  // The same key signs as the log (type 0x01) and as a witness (type 0x04) under the same name.
  const key = generateSigningKeyPair();
  const name = 'example.com/log';
  const checkpoint = { origin: name, size: 3, root: new Uint8Array(32).fill(2), extensions: [] };
  const body = formatCheckpoint(checkpoint);
  const logNote = signCheckpoint(checkpoint, ed25519NoteSigner(name, key.secretKey));
  const logVerifier = ed25519NoteVerifier(name, key.publicKey);
  const witnessVerifier = cosignatureVerifier(name, key.publicKey);
  const cosig = cosignatureLine(body, name, key.secretKey, 1_700_000_000);
  const logLine = logNote.slice(body.length + 1, -1);

  it('gives the two uses of one key distinct key ids', () => {
    expect(logVerifier.keyId).not.toEqual(witnessVerifier.keyId);
  });

  it('does not accept a cosignature as the log signature', () => {
    const cosignedOnly = `${body}\n${cosig}\n`;
    expect(openCheckpoint(cosignedOnly, logVerifier)).toEqual({ ok: false, reason: `log signature: no signature by the log key ${name}` });
    // Relabelled with the log key id, the cosignature is checked as an Ed25519 note signature, and fails.
    const bytes = bytesOfLine(cosig);
    bytes.set(logVerifier.keyId, 0);
    const relabelled = `${body}\n${lineWith(name, bytes)}\n`;
    expect(openCheckpoint(relabelled, logVerifier)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    // Even the bare Ed25519 signature inside the cosignature does not sign the checkpoint text.
    const bare = Uint8Array.of(...logVerifier.keyId, ...bytesOfLine(cosig).subarray(12));
    expect(openCheckpoint(`${body}\n${lineWith(name, bare)}\n`, logVerifier)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
  });

  it('does not accept the log signature as a cosignature', () => {
    expect(verifyNote(logNote, [witnessVerifier])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
    // Relabelled with the witness key id, with or without a timestamp in front, it fails.
    const logSig = bytesOfLine(logLine).subarray(4);
    const relabelled = Uint8Array.of(...witnessVerifier.keyId, ...logSig);
    expect(verifyNote(`${body}\n${lineWith(name, relabelled)}\n`, [witnessVerifier])).toMatchObject({ ok: false });
    for (const time of [0, 1_700_000_000]) {
      const stamp = new Uint8Array(8);
      new DataView(stamp.buffer).setBigUint64(0, BigInt(time));
      const timestamped = Uint8Array.of(...witnessVerifier.keyId, ...stamp, ...logSig);
      expect(verifyNote(`${body}\n${lineWith(name, timestamped)}\n`, [witnessVerifier])).toMatchObject({
        ok: false,
        reason: expect.stringContaining('does not verify'),
      });
    }
  });

  it('verifies each signature under its own type when both are present', () => {
    const both = addCosignatures(logNote, [cosig]);
    expect(verifyNote(both, [logVerifier, witnessVerifier])).toEqual({ ok: true, text: body, verified: [name], unverified: [] });
    expect(openCheckpoint(both, logVerifier, name)).toMatchObject({ ok: true });
  });
});

describe('misuse', () => {
  const witness = generateSigningKeyPair();
  const body = formatCheckpoint({ origin: 'o', size: 1, root: new Uint8Array(32), extensions: [] });

  it('refuses to cosign what is not a checkpoint, at a time that is not whole seconds, or under a bad name', () => {
    expectMisuse(() => cosignatureLine('hello\n', 'w.example', witness.secretKey, 1));
    expectMisuse(() => cosignatureLine(`${body}\n`, 'w.example', witness.secretKey, 1));
    for (const time of [-1, 1.5, Number.NaN, 2 ** 53]) expectMisuse(() => cosignatureLine(body, 'w.example', witness.secretKey, time));
    for (const name of ['', 'w example', 'w+example']) expectMisuse(() => cosignatureLine(body, name, witness.secretKey, 1));
    expectMisuse(() => cosignatureVerifier('w.example', witness.publicKey.subarray(1)));
    expectMisuse(() => cosignatureSigner('w.example', witness.secretKey.subarray(1), () => 1));
  });

  it('refuses a clock that does not give whole non-negative seconds', () => {
    const signer = cosignatureSigner('w.example', witness.secretKey, () => -5);
    expectMisuse(() => signNote(body, [signer]));
  });

  it('refuses timestamps past 2^53 - 1 rather than rounding them', () => {
    const verifier = cosignatureVerifier('w.example', witness.publicKey);
    const signature = new Uint8Array(72);
    new DataView(signature.buffer).setBigUint64(0, 2n ** 53n);
    expectMisuse(() => verifier.timestampOf(signature));
    expect(verifier.verify(utf8(body), signature)).toBe(false);
  });
});
