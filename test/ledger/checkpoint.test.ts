import { describe, expect, it } from 'vitest';
import { fromBase64, generateSigningKeyPair, sha256, toBase64 } from '../../src/crypto/index.js';
import { MalusError } from '../../src/errors/index.js';
import { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint } from '../../src/ledger/checkpoint.js';
import { ed25519NoteSigner, ed25519NoteVerifier, parseVerifierKey, signNote, verifyNote, type NoteVerifier } from '../../src/ledger/note.js';

const DASH = '\u2014';

// golang.org/x/mod/sumdb/tlog note_test.go (TestFormatTree, TestParseTree): a tree of 123456789012
// leaves whose root is RecordHash("hello world") = SHA-256(0x00 ‖ "hello world").
const GO_TREE = 'go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n';

// c2sp.org/tlog-checkpoint: the example checkpoint (its key is not published).
const SPEC_BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SPEC_NOTE = `${SPEC_BODY}\n${DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n`;

// Signed tree heads served by sum.golang.org, under the verifier key pinned in the go command.
const SUMDB_VKEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';
const SUMDB_HEADS: readonly [number, string, string][] = [
  [445646, 'jEFFy4AtYgBBNTSZTiNnQrgQqMbcH0mfO2oP2FxR9VU=', 'Az3grkGho/PqvUmEuTv6+r2g303hUhu60FOD6vLpm19mBwH9UjquWY2OKxNmZ55z0gHrp24AgPC3Q5WO7uZrVdvdCQU='],
  [15368405, '/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=', 'Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Ybf295EjwdSwlzgijq5WA9d1Ded7owM='],
  [63512409, 'F7eHRPqN/cqPtqti14NKdGGaI1Giw8coWP3KxihFZbg=', 'Az3gri1OBHKT87Xj8UXU8zjoHGy/X+7Nl94f8TZkELVaasolmGApUsWqwVG9vE6hgqYb/ph/w2vdkLIVRH7bMB/FPQ4='],
];

function sumdbNote([size, root, sig]: readonly [number, string, string]): string {
  return `go.sum database tree\n${size}\n${root}\n\n${DASH} sum.golang.org ${sig}\n`;
}

// A checkpoint of the arche2025h1 staging CT log of transparency.dev with its RFC 6962 and Ed25519
// log signatures and four witness cosignatures, and the log's Ed25519 verifier key.
const ARCHE_VKEY = 'arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f';
const ARCHE_NOTE = [
  'arche2025h1.staging.ct.transparency.dev',
  '1432088532',
  'U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=',
  '',
  `${DASH} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=`,
  `${DASH} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=`,
  `${DASH} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==`,
  `${DASH} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==`,
  `${DASH} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==`,
  `${DASH} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==`,
  '',
].join('\n');

function verifier(vkey: string): NoteVerifier {
  const parsed = parseVerifierKey(vkey);
  if (parsed === undefined) throw new Error(`vector key must parse: ${vkey}`);
  return parsed;
}

function expectMisuse(fn: () => unknown): void {
  expect(fn).toThrow(MalusError);
}

const ROOT = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
const B64_ROOT = toBase64(ROOT);

describe('spec vectors', () => {
  it("formats and parses Go's tlog tree exactly, with an origin holding spaces", () => {
    const root = sha256(Uint8Array.of(0, ...Buffer.from('hello world')));
    expect(formatCheckpoint({ origin: 'go.sum database tree', size: 123456789012, root, extensions: [] })).toBe(GO_TREE);
    expect(parseCheckpoint(GO_TREE)).toEqual({ origin: 'go.sum database tree', size: 123456789012, root, extensions: [] });
  });

  it("refuses Go's bad trees; its trailing junk is an extension line only when it is a line", () => {
    expect(parseCheckpoint('go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n')).toMatchObject({ error: expect.any(String) });
    expect(parseCheckpoint('go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n')).toMatchObject({
      error: expect.any(String),
    });
    expect(parseCheckpoint(`${GO_TREE}JOE\n`)).toMatchObject({ extensions: ['JOE'] });
    expect(parseCheckpoint(`${GO_TREE}JOE`)).toEqual({ error: 'checkpoint must end with a newline' });
  });

  it('parses the tlog-checkpoint example and writes it back byte for byte', () => {
    const parsed = parseCheckpoint(SPEC_BODY);
    if ('error' in parsed) throw new Error(parsed.error);
    expect(parsed).toMatchObject({ origin: 'example.com/behind-the-sofa', size: 20852163, extensions: [] });
    expect(parsed.root).toEqual(fromBase64('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I='));
    expect(formatCheckpoint(parsed)).toBe(SPEC_BODY);
    // Its signature's key is not published: opening with any other key fails.
    const stranger = ed25519NoteVerifier('example.com/behind-the-sofa', generateSigningKeyPair().publicKey);
    expect(openCheckpoint(SPEC_NOTE, stranger)).toEqual({ ok: false, reason: 'log signature: no signature by the log key example.com/behind-the-sofa' });
  });

  it('opens signed tree heads of sum.golang.org under its pinned key', () => {
    for (const head of SUMDB_HEADS) {
      const opened = openCheckpoint(sumdbNote(head), verifier(SUMDB_VKEY), 'go.sum database tree');
      if (!opened.ok) throw new Error(opened.reason);
      expect(opened.checkpoint.size).toBe(head[0]);
      expect(toBase64(opened.checkpoint.root)).toBe(head[1]);
    }
  });

  it('refuses a sum.golang.org tree head whose size, root or signature was changed', () => {
    const head = SUMDB_HEADS[0]!;
    const note = sumdbNote(head);
    const sumdb = verifier(SUMDB_VKEY);
    expect(openCheckpoint(note.replace('\n445646\n', '\n445647\n'), sumdb)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    expect(openCheckpoint(note.replace('jEFF', 'jEFG'), sumdb)).toMatchObject({ ok: false });
    expect(openCheckpoint(note.replace('Az3grkGho', 'Az3grkGhp'), sumdb)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
  });

  it('opens a transparency.dev checkpoint carrying other log signatures and cosignatures', () => {
    const arche = verifier(ARCHE_VKEY);
    const opened = openCheckpoint(ARCHE_NOTE, arche, 'arche2025h1.staging.ct.transparency.dev');
    if (!opened.ok) throw new Error(opened.reason);
    expect(opened.checkpoint.size).toBe(1432088532);
    expect(opened.note.signatures).toHaveLength(6);
    expect(verifyNote(ARCHE_NOTE, [arche])).toEqual({
      ok: true,
      text: 'arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n',
      verified: ['arche2025h1.staging.ct.transparency.dev'],
      // The same name under its RFC 6962 key (type 0x05) is another, unknown key.
      unverified: [
        'arche2025h1.staging.ct.transparency.dev',
        'transparency.dev/DEV:witness-little-garden',
        'witness1.smartit.nu/witness1',
        'remora.n621.de',
        'witness.stagemole.eu',
      ],
    });
    expect(openCheckpoint(ARCHE_NOTE.replace('1432088532', '1432088533'), arche)).toMatchObject({ ok: false });
  });
});

describe('checkpoints signed here', () => {
  const log = generateSigningKeyPair();
  const signer = ed25519NoteSigner('example.com/log', log.secretKey);
  const logVerifier = ed25519NoteVerifier('example.com/log', log.publicKey);
  const checkpoint: Checkpoint = { origin: 'example.com/log', size: 42, root: ROOT, extensions: [] };

  it('formats the body as origin, size and base64 root lines', () => {
    expect(formatCheckpoint(checkpoint)).toBe(`example.com/log\n42\n${B64_ROOT}\n`);
    expect(formatCheckpoint({ ...checkpoint, size: 0 })).toBe(`example.com/log\n0\n${B64_ROOT}\n`);
    expect(formatCheckpoint({ ...checkpoint, size: Number.MAX_SAFE_INTEGER })).toBe(`example.com/log\n9007199254740991\n${B64_ROOT}\n`);
  });

  it('opens what it signs, with and without extension lines', () => {
    for (const extensions of [[], ['ext one', '— looks like a signature']]) {
      const c = { ...checkpoint, extensions };
      const opened = openCheckpoint(signCheckpoint(c, signer), logVerifier, 'example.com/log');
      if (!opened.ok) throw new Error(opened.reason);
      expect(opened.checkpoint).toEqual(c);
      expect(opened.note.signatures.map((s) => s.name)).toEqual(['example.com/log']);
    }
  });

  it('refuses another origin, another key, another name', () => {
    const note = signCheckpoint(checkpoint, signer);
    expect(openCheckpoint(note, logVerifier, 'other.example/log')).toEqual({
      ok: false,
      reason: 'checkpoint origin is "example.com/log", expected "other.example/log"',
    });
    expect(openCheckpoint(note, ed25519NoteVerifier('example.com/log', generateSigningKeyPair().publicKey))).toMatchObject({ ok: false });
    expect(openCheckpoint(note, ed25519NoteVerifier('example.com/log2', log.publicKey))).toMatchObject({ ok: false });
  });

  it('refuses a changed size, a flipped root bit, a changed extension and a flipped signature byte', () => {
    const note = signCheckpoint({ ...checkpoint, extensions: ['ext'] }, signer);
    const flippedRoot = Uint8Array.from(ROOT);
    flippedRoot[31] = (flippedRoot[31] ?? 0) ^ 0x01;
    const sigB64 = note.slice(note.lastIndexOf(' ') + 1, -1);
    const sigBytes = fromBase64(sigB64)!;
    sigBytes[10] = (sigBytes[10] ?? 0) ^ 0x01;
    for (const tampered of [
      note.replace('\n42\n', '\n43\n'),
      note.replace(B64_ROOT, toBase64(flippedRoot)),
      note.replace('\next\n', '\nexu\n'),
      note.replace(sigB64, toBase64(sigBytes)),
    ]) {
      expect(openCheckpoint(tampered, logVerifier)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    }
  });

  it('refuses a malformed note and a well-signed text that is not a checkpoint', () => {
    expect(openCheckpoint('example.com/log\n42\n', logVerifier)).toMatchObject({ ok: false, reason: expect.stringMatching(/^malformed note: /) });
    const notCheckpoint = signNote('hello\n', [signer]);
    expect(openCheckpoint(notCheckpoint, logVerifier)).toEqual({ ok: false, reason: 'checkpoint must have an origin, a size and a root hash line' });
    const blankLine = signNote(`example.com/log\n42\n${B64_ROOT}\n\next\n`, [signer]);
    expect(openCheckpoint(blankLine, logVerifier)).toEqual({ ok: false, reason: 'checkpoint lines must be non-empty, without control characters' });
  });
});

describe('strict parsing', () => {
  it('refuses sizes that are not canonical decimals or are out of range', () => {
    for (const size of ['042', '00', '-1', '+1', ' 1', '1 ', '1.0', '1e3', '0x2a', '', '٤٢', '9007199254740992', '18446744073709551615']) {
      expect(parseCheckpoint(`o\n${size}\n${B64_ROOT}\n`)).toMatchObject({ error: expect.any(String) });
    }
    expect(parseCheckpoint(`o\n9007199254740991\n${B64_ROOT}\n`)).toMatchObject({ size: Number.MAX_SAFE_INTEGER });
  });

  it('refuses roots that are not canonical base64 of 32 bytes', () => {
    const spareBits = B64_ROOT.replace(/.=$/, (m) => `${String.fromCharCode(m.charCodeAt(0) + 1)}=`);
    expect(fromBase64(spareBits)).toBeUndefined();
    for (const root of [toBase64(ROOT.subarray(1)), toBase64(new Uint8Array(33)), spareBits, B64_ROOT.slice(0, -1), B64_ROOT.replace(/\+/g, '-'), '']) {
      expect(parseCheckpoint(`o\n1\n${root}\n`)).toMatchObject({ error: expect.any(String) });
    }
  });

  it('refuses missing lines, empty lines, a missing final newline, carriage returns and control characters', () => {
    for (const text of [
      `o\n1\n${B64_ROOT}`,
      'o\n1\n',
      `\n1\n${B64_ROOT}\n`,
      `o\n1\n${B64_ROOT}\n\n`,
      `o\n1\n${B64_ROOT}\next\n\n`,
      `o\n1\n${B64_ROOT}\n\next\n`,
      `o\r\n1\r\n${B64_ROOT}\r\n`,
      `o\t\n1\n${B64_ROOT}\n`,
      `o\ud800\n1\n${B64_ROOT}\n`,
      '',
    ]) {
      expect(parseCheckpoint(text)).toMatchObject({ error: expect.any(String) });
    }
  });

  it('keeps origins as they are: spaces, plus signs and non-ASCII are not refused', () => {
    for (const origin of ['go.sum database tree', ' padded ', 'a+b', 'ünïcödé/log']) {
      const text = `${origin}\n7\n${B64_ROOT}\n`;
      const parsed = parseCheckpoint(text);
      expect(parsed).toMatchObject({ origin, size: 7 });
      expect(formatCheckpoint(parsed as Checkpoint)).toBe(text);
    }
  });

  it('refuses to format a checkpoint that has no spelling', () => {
    const c: Checkpoint = { origin: 'o', size: 1, root: ROOT, extensions: [] };
    for (const bad of [
      { ...c, origin: '' },
      { ...c, origin: 'a\nb' },
      { ...c, size: -1 },
      { ...c, size: 1.5 },
      { ...c, size: Number.NaN },
      { ...c, size: 2 ** 53 },
      { ...c, root: ROOT.subarray(1) },
      { ...c, extensions: [''] },
      { ...c, extensions: ['a\nb'] },
    ]) {
      expectMisuse(() => formatCheckpoint(bad));
    }
  });
});
