import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromBase64, generateSigningKeyPair, toBase64, toHex } from '../../src/crypto/index.js';
import { MalusError } from '../../src/errors/index.js';
import {
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  NO_KNOWN_SIGNER,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  noteKeyId,
  parseNote,
  parseVerifierKey,
  signNote,
  verifierKeyString,
  verifyNote,
  type NoteVerifier,
} from '../../src/ledger/note.js';

const DASH = '\u2014';

// golang.org/x/mod/sumdb/note: the package documentation and note_test.go (TestSign, TestOpen).
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = `${DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
const ENOCH_SIG = `${DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n`;
const PETER_NOTE = `${GO_TEXT}\n${PETER_SIG}`;

// c2sp.org/signed-note: the verifier key example, and the note example (whose key is not published).
const SPEC_VKEY = 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k';
const SPEC_NOTE = `This is an example message.\n\n${DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n`;
const QUASIMODO_TEXT = 'Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n';
const QUASIMODO_NOTE = `${QUASIMODO_TEXT}\n${DASH} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n`;

// Verifier keys whose base64 holds '+': sum.golang.org as pinned in the go command, and the Ed25519
// key of transparency-dev/formats note/note_cosigv1_test.go.
const SUMDB_VKEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';
const FORMATS_PLUS_VKEY = 'TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6';

function peter(): NoteVerifier {
  const verifier = parseVerifierKey(PETER_VKEY);
  if (verifier === undefined) throw new Error('the Go vector must parse');
  return verifier;
}

function enoch(): NoteVerifier {
  const verifier = parseVerifierKey(ENOCH_VKEY);
  if (verifier === undefined) throw new Error('the Go vector must parse');
  return verifier;
}

/** The public key of a verifier key string (fields split at the first two '+'). */
function publicKeyOf(vkey: string): Uint8Array {
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  return fromBase64(vkey.slice(second + 1))!.slice(1);
}

/** Rewrites the bytes (key id ‖ signature) of the signature line by `name`. */
function editSignature(note: string, name: string, edit: (bytes: Uint8Array) => void): string {
  return note
    .split('\n')
    .map((line) => {
      const prefix = `${DASH} ${name} `;
      if (!line.startsWith(prefix)) return line;
      const bytes = fromBase64(line.slice(prefix.length))!;
      edit(bytes);
      return `${prefix}${toBase64(bytes)}`;
    })
    .join('\n');
}

function expectMisuse(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    expect((error as MalusError).code).toBe('invalid-input');
    return;
  }
  throw new Error('expected a MalusError');
}

describe('spec vectors', () => {
  it('verifies the Go sumdb/note example under its verifier key', () => {
    expect(verifyNote(PETER_NOTE, [peter()])).toEqual({ ok: true, text: GO_TEXT, verified: ['PeterNeumann'], unverified: [] });
    expect(toHex(peter().keyId)).toBe('c74f20a3');
  });

  it('reproduces the Go example byte for byte from its private key', () => {
    const seed = fromBase64(PETER_SKEY.split('+').slice(4).join('+'))!;
    expect(seed[0]).toBe(0x01);
    const signer = ed25519NoteSigner('PeterNeumann', seed.slice(1));
    expect(toHex(signer.keyId)).toBe('c74f20a3');
    expect(signNote(GO_TEXT, [signer])).toBe(PETER_NOTE);
  });

  it("opens Go's two-signature note with one, both and neither key known (TestOpen)", () => {
    const note = `${GO_TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    expect(verifyNote(note, [peter()])).toEqual({ ok: true, text: GO_TEXT, verified: ['PeterNeumann'], unverified: ['EnochRoot'] });
    expect(verifyNote(note, [peter(), enoch()])).toEqual({ ok: true, text: GO_TEXT, verified: ['PeterNeumann', 'EnochRoot'], unverified: [] });
    expect(verifyNote(note, [])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });

  it('refuses the Go example with four base64 characters inserted into the signature (TestOpen)', () => {
    const tampered = `${GO_TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    expect(verifyNote(tampered, [peter()])).toEqual({ ok: false, reason: 'signature by PeterNeumann+c74f20a3 does not verify' });
  });

  it("refuses each of Go's malformed messages (TestOpen)", () => {
    const bad = [
      GO_TEXT,
      `${GO_TEXT}\n`,
      `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\u0001${GO_TEXT}\n${PETER_SIG}`,
      `\ud800${GO_TEXT}\n${PETER_SIG}`, // Go's invalid UTF-8 byte; in a JS string, a lone surrogate
      `${GO_TEXT}\n${DASH} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${GO_TEXT}\n${PETER_SIG}Unexpected line.\n`,
    ];
    for (const note of bad) {
      expect(parseNote(note)).toMatchObject({ error: expect.any(String) });
      expect(verifyNote(note, [peter()])).toMatchObject({ ok: false });
    }
  });

  it('verifies the signed-note verifier key example, and writes its key string back byte for byte', () => {
    const verifier = parseVerifierKey(SPEC_VKEY)!;
    expect(verifier.name).toBe('example.com/foo');
    expect(toHex(verifier.keyId)).toBe('530d903a');
    expect(toHex(publicKeyOf(SPEC_VKEY))).toBe('e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4');
    expect(verifyNote(SPEC_NOTE, [verifier])).toEqual({
      ok: true,
      text: 'This is an example message.\n',
      verified: ['example.com/foo'],
      unverified: [],
    });
    for (const vkey of [SPEC_VKEY, PETER_VKEY, ENOCH_VKEY, SUMDB_VKEY, FORMATS_PLUS_VKEY]) {
      const parsed = parseVerifierKey(vkey);
      expect(parsed?.name).toBe(vkey.slice(0, vkey.indexOf('+')));
      expect(verifierKeyString(parsed!.name, publicKeyOf(vkey))).toBe(vkey);
    }
  });

  it('parses the signed-note example, whose text holds a blank line: the last blank line separates', () => {
    const parsed = parseNote(QUASIMODO_NOTE);
    if ('error' in parsed) throw new Error(parsed.error);
    expect(parsed.text).toBe(QUASIMODO_TEXT);
    expect(parsed.signatures).toHaveLength(1);
    expect(parsed.signatures[0]?.name).toBe('quasimodo.example/salvatore');
    expect(toHex(parsed.signatures[0]!.keyId)).toBe('367ba04b');
    expect(parsed.signatures[0]?.signature).toHaveLength(64);
    // Its key is not published: with other keys the note is unverified, never accepted.
    expect(verifyNote(QUASIMODO_NOTE, [peter()])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });

  it('derives key ids as SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]', () => {
    const pub = publicKeyOf(PETER_VKEY);
    for (const [name, type] of [['PeterNeumann', 1], ['example.com/log', 4], ['ünïcödé.example', 1]] as const) {
      const expected = createHash('sha256').update(Buffer.from(name, 'utf8')).update(Uint8Array.of(0x0a, type)).update(pub).digest();
      expect(toHex(noteKeyId(name, type, pub))).toBe(expected.subarray(0, 4).toString('hex'));
    }
    expect(toHex(noteKeyId('PeterNeumann', 1, pub))).toBe('c74f20a3');
  });
});

describe('verifier key strings', () => {
  it("refuse every proper substring and every one-character change of Go's key (TestNewVerifier)", () => {
    for (let i = 0; i <= PETER_VKEY.length; i++) {
      for (let j = i + 1; j <= PETER_VKEY.length; j++) {
        if (i === 0 && j === PETER_VKEY.length) continue;
        expect(parseVerifierKey(PETER_VKEY.slice(i, j))).toBeUndefined();
      }
    }
    for (let i = 0; i < PETER_VKEY.length; i++) {
      const changed = PETER_VKEY.slice(0, i) + String.fromCharCode(PETER_VKEY.charCodeAt(i) + 1) + PETER_VKEY.slice(i + 1);
      expect(parseVerifierKey(changed)).toBeUndefined();
    }
  });

  it("refuse Go's wrong-length key and unknown algorithm, each with a matching key id", () => {
    expect(parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==')).toBeUndefined();
    expect(parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW')).toBeUndefined();
  });

  it('refuse upper-case key ids, padding, other types and keys that are not curve points', () => {
    expect(parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'C74F20A3'))).toBeUndefined();
    expect(parseVerifierKey(` ${PETER_VKEY}`)).toBeUndefined();
    expect(parseVerifierKey(`${PETER_VKEY}\n`)).toBeUndefined();
    expect(parseVerifierKey(`${PETER_VKEY}=`)).toBeUndefined();
    // A cosignature/v1 key (type 0x04) of transparency-dev/formats is not an Ed25519 note key.
    expect(parseVerifierKey('remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2')).toBeUndefined();
    // The identity point, with a key id that matches it.
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const id = toHex(noteKeyId('small.example', 1, identity));
    expect(parseVerifierKey(`small.example+${id}+${toBase64(Uint8Array.of(1, ...identity))}`)).toBeUndefined();
  });

  it('round-trip for generated keys, including names outside ASCII', () => {
    for (const name of ['log.example/a', 'ünïcödé.example', 'x']) {
      const key = generateSigningKeyPair();
      const text = verifierKeyString(name, key.publicKey);
      const verifier = parseVerifierKey(text)!;
      expect(verifier.name).toBe(name);
      expect(verifier.keyId).toEqual(noteKeyId(name, 1, key.publicKey));
      expect(verifier.keyId).toEqual(ed25519NoteSigner(name, key.secretKey).keyId);
    }
  });

  it('refuse names with spaces, plus signs or control characters, and keys of the wrong size', () => {
    const key = generateSigningKeyPair();
    for (const name of ['', 'a b', 'a+b', 'a\u00a0b', 'a\u3000b', 'a\u0085b', 'a\tb', 'a\u0001b', 'a\ud800']) {
      expectMisuse(() => verifierKeyString(name, key.publicKey));
      expectMisuse(() => ed25519NoteSigner(name, key.secretKey));
      expectMisuse(() => ed25519NoteVerifier(name, key.publicKey));
    }
    expectMisuse(() => ed25519NoteVerifier('a', key.publicKey.subarray(1)));
    expectMisuse(() => ed25519NoteSigner('a', new Uint8Array(64)));
    expectMisuse(() => noteKeyId('a', 256, key.publicKey));
    expect(parseVerifierKey(PETER_VKEY.replace('PeterNeumann', 'Peter Neumann'))).toBeUndefined();
  });
});

describe('signing and verifying', () => {
  const alice = generateSigningKeyPair();
  const bob = generateSigningKeyPair();
  const aliceSigner = ed25519NoteSigner('alice.example', alice.secretKey);
  const aliceVerifier = ed25519NoteVerifier('alice.example', alice.publicKey);

  it('round-trips, reporting unknown signers as unverified', () => {
    const note = signNote('hello\nworld\n', [aliceSigner, ed25519NoteSigner('bob.example', bob.secretKey)]);
    expect(note.startsWith('hello\nworld\n\n\u2014 alice.example ')).toBe(true);
    expect(verifyNote(note, [aliceVerifier])).toEqual({ ok: true, text: 'hello\nworld\n', verified: ['alice.example'], unverified: ['bob.example'] });
  });

  it('round-trips texts with blank lines, a final blank line, a bare newline and non-ASCII text', () => {
    for (const text of ['a\n\nb\n', 'Note\n\n', '\n', 'a\n\n\n\nb\n', 'ed è subito sera 🌅\n', `x\n\n${DASH} y AAAAAAAA\n`]) {
      const verdict = verifyNote(signNote(text, [aliceSigner]), [aliceVerifier]);
      expect(verdict).toEqual({ ok: true, text, verified: ['alice.example'], unverified: [] });
    }
  });

  it('refuses a flipped byte in the text, in the signature and in the key id', () => {
    const note = signNote('a checkpoint\n', [aliceSigner]);
    expect(verifyNote(note.replace('checkpoint', 'checkpoinT'), [aliceVerifier])).toEqual({
      ok: false,
      reason: `signature by alice.example+${toHex(aliceVerifier.keyId)} does not verify`,
    });
    for (const index of [4, 20, 67]) {
      const flipped = editSignature(note, 'alice.example', (bytes) => {
        bytes[index] = (bytes[index] ?? 0) ^ 0x01;
      });
      expect(verifyNote(flipped, [aliceVerifier])).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    }
    // A changed key id names another key: the signature is ignored, so nothing known signed.
    const otherId = editSignature(note, 'alice.example', (bytes) => {
      bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    });
    expect(verifyNote(otherId, [aliceVerifier])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });

  it('ignores a signature under a wrong key or a wrong name: nothing known signed', () => {
    const note = signNote('text\n', [aliceSigner]);
    expect(verifyNote(note, [ed25519NoteVerifier('alice.example', bob.publicKey)])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
    expect(verifyNote(note, [ed25519NoteVerifier('mallory.example', alice.publicKey)])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
    const renamed = note.replace(`${DASH} alice.example `, `${DASH} mallory.example `);
    expect(verifyNote(renamed, [ed25519NoteVerifier('mallory.example', alice.publicKey)])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
  });

  it('fails closed when a key id collides: the name and key id are known, the key is not the signer', () => {
    const note = signNote('text\n', [aliceSigner]);
    const impostor = ed25519NoteVerifier('alice.example', bob.publicKey);
    const colliding: NoteVerifier = { name: 'alice.example', keyId: aliceVerifier.keyId, verify: (m, s) => impostor.verify(m, s) };
    expect(verifyNote(note, [colliding])).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
  });

  it('fails closed when a known key has one good and one bad signature line', () => {
    const good = `${GO_TEXT}\n${PETER_SIG}`;
    const bad = editSignature(PETER_SIG, 'PeterNeumann', (bytes) => {
      bytes[40] = (bytes[40] ?? 0) ^ 0x80;
    });
    expect(verifyNote(`${good}${bad}`, [peter()])).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
  });

  it('fails closed when a verifier throws', () => {
    const throwing: NoteVerifier = {
      name: 'PeterNeumann',
      keyId: peter().keyId,
      verify: () => {
        throw new Error('boom');
      },
    };
    expect(verifyNote(PETER_NOTE, [throwing])).toMatchObject({ ok: false });
  });

  it('refuses a note without its final newline', () => {
    expect(parseNote(PETER_NOTE.slice(0, -1))).toEqual({ error: 'signature lines must end with a newline' });
    expectMisuse(() => signNote('no final newline', [aliceSigner]));
    expectMisuse(() => signNote('', [aliceSigner]));
  });

  it('refuses blank-line mistakes: none before the signatures, one after them, one between them', () => {
    expect(parseNote(`${GO_TEXT}${PETER_SIG}`)).toEqual({ error: 'note has no blank line before its signatures' });
    expect(parseNote(`${PETER_NOTE}\n`)).toEqual({ error: 'note has no signature lines' });
    // A blank line between two signature lines moves the first into the text, which then no longer verifies.
    const between = `${GO_TEXT}\n${PETER_SIG}\n${ENOCH_SIG}`;
    const parsed = parseNote(between);
    expect('error' in parsed ? undefined : parsed.text).toBe(`${GO_TEXT}\n${PETER_SIG}`);
    expect(verifyNote(between, [peter()])).toEqual({ ok: false, reason: NO_KNOWN_SIGNER });
    expect(verifyNote(between, [peter(), enoch()])).toMatchObject({ ok: false, reason: expect.stringContaining('EnochRoot') });
  });

  it('refuses non-canonical and non-standard base64 in signature lines', () => {
    const b64 = PETER_SIG.slice(`${DASH} PeterNeumann `.length, -1);
    expect(b64.endsWith('nAM=')).toBe(true);
    const variants = [
      b64.replace(/M=$/, 'N='), // a padding bit set
      b64.slice(0, -1), // padding dropped
      `${b64}=`,
      b64.replace(/\//g, '_'),
      ` ${b64}`,
      `${b64} `,
    ];
    for (const variant of variants) {
      expect(parseNote(`${GO_TEXT}\n${DASH} PeterNeumann ${variant}\n`)).toEqual({ error: 'signature line 1 is malformed' });
    }
  });

  it('refuses signature lines with another dash, spacing, name or too few bytes', () => {
    const b64 = PETER_SIG.slice(`${DASH} PeterNeumann `.length, -1);
    for (const line of [
      `- PeterNeumann ${b64}`,
      `\u2013 PeterNeumann ${b64}`,
      `${DASH}  PeterNeumann ${b64}`,
      `${DASH} PeterNeumann  ${b64}`,
      `${DASH}PeterNeumann ${b64}`,
      `${DASH} Peter+Neumann ${b64}`,
      `${DASH} Peter\u00a0Neumann ${b64}`,
      `${DASH} PeterNeumann`,
      `${DASH} PeterNeumann AAAAAA==`, // a key id and no signature
    ]) {
      expect(parseNote(`${GO_TEXT}\n${line}\n`)).toEqual({ error: 'signature line 1 is malformed' });
    }
  });

  it('refuses control characters, carriage returns and lone surrogates anywhere in a note', () => {
    for (const text of ['a\rb\n', 'a\r\n', 'tab\there\n', 'nul\u0000\n', 'lone \udc00\n']) {
      expect(parseNote(`${text}\n${PETER_SIG}`)).toMatchObject({ error: expect.any(String) });
      expectMisuse(() => signNote(text, [aliceSigner]));
    }
    expect(parseNote(`${GO_TEXT}\n${PETER_SIG.slice(0, -1)}\r\n`)).toMatchObject({ error: expect.any(String) });
  });

  it('refuses repeated signature lines and signers listed twice', () => {
    expect(parseNote(`${GO_TEXT}\n${PETER_SIG}${ENOCH_SIG}${PETER_SIG}`)).toEqual({ error: 'signature line 3 is repeated' });
    expectMisuse(() => signNote('text\n', [aliceSigner, aliceSigner]));
  });

  it('refuses oversized notes and texts', () => {
    const big = `${'x'.repeat(MAX_NOTE_BYTES)}\n`;
    expect(parseNote(`${big}\n${PETER_SIG}`)).toEqual({ error: 'note is too large' });
    expectMisuse(() => signNote(big, [aliceSigner]));
    // Counted in UTF-8 bytes, not UTF-16 units: 'é' is two bytes.
    const wide = `${'é'.repeat(MAX_NOTE_BYTES / 2)}\n`;
    expect(parseNote(`${wide}\n${PETER_SIG}`)).toEqual({ error: 'note is too large' });
  });

  it(`accepts ${MAX_NOTE_SIGNATURES} signatures (at least the 16 the spec asks for) and refuses more`, () => {
    const unknown = Array.from({ length: MAX_NOTE_SIGNATURES }, (_, i) => `${DASH} n${i} ${toBase64(new Uint8Array(68).fill(i))}\n`);
    const full = `${GO_TEXT}\n${PETER_SIG}${unknown.slice(1).join('')}`;
    const verdict = verifyNote(full, [peter()]);
    expect(verdict.ok && verdict.unverified.length).toBe(MAX_NOTE_SIGNATURES - 1);
    expect(parseNote(`${GO_TEXT}\n${PETER_SIG}${unknown.join('')}`)).toEqual({ error: 'note has too many signatures' });
    const signers = Array.from({ length: 16 }, (_, i) => ed25519NoteSigner(`s${i}.example`, generateSigningKeyPair().secretKey));
    expect(parseNote(signNote('many\n', signers))).toMatchObject({ signatures: expect.any(Array) });
    expectMisuse(() => signNote('text\n', []));
  });

  it('checks signers: a key id of 4 bytes and a non-empty signature', () => {
    expectMisuse(() => signNote('text\n', [{ name: 'a', keyId: new Uint8Array(3), sign: () => new Uint8Array(64) }]));
    expectMisuse(() => signNote('text\n', [{ name: 'a', keyId: new Uint8Array(4), sign: () => new Uint8Array(0) }]));
    expectMisuse(() => signNote('text\n', [{ name: 'a b', keyId: new Uint8Array(4), sign: () => new Uint8Array(64) }]));
  });
});
