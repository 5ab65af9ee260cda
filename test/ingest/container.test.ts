import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MalusError } from '../../src/errors/index.js';
import { CHUNK_BYTES, datasetSealer, newDatasetHeader, openDataset, parseDatasetHeader, type DatasetHeader } from '../../src/ingest/index.js';

const fields = {
  dataset: 'conversions',
  collaboration: 'campaign-measurement',
  agreementHash: `sha256:${'a'.repeat(64)}`,
  table: 'conversions',
  owner: '0123456789abcdef0123',
  schemaHash: `sha256:${'b'.repeat(64)}`,
  rows: 10,
};

function seal(plaintext: Buffer, key: Buffer, header: DatasetHeader = newDatasetHeader(fields), pieceBytes = 333_333): { file: Buffer; chunks: Buffer[]; prefix: Buffer } {
  const sealer = datasetSealer(header, key);
  const chunks: Buffer[] = [];
  // Fed in odd sizes by default: chunking must not depend on how the plaintext arrives.
  for (let offset = 0; offset < plaintext.length; offset += pieceBytes) chunks.push(...sealer.push(plaintext.subarray(offset, offset + pieceBytes)));
  chunks.push(sealer.finish());
  return { file: Buffer.concat([sealer.prefix, ...chunks]), chunks, prefix: sealer.prefix };
}

async function open(file: Buffer, key: Buffer, pieceBytes = 65_536): Promise<Buffer> {
  // eslint-disable-next-line @typescript-eslint/require-await -- an async source, as a file stream is
  async function* pieces() {
    for (let offset = 0; offset < file.length; offset += pieceBytes) yield file.subarray(offset, offset + pieceBytes);
  }
  const out: Buffer[] = [];
  for await (const chunk of openDataset(pieces(), key)) out.push(chunk);
  return Buffer.concat(out);
}

async function openError(file: Buffer, key: Buffer): Promise<string> {
  try {
    await open(file, key);
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    return (error as MalusError).message;
  }
  throw new Error('opened');
}

describe('malus.dataset/v1 container', () => {
  const key = randomBytes(32);
  const plaintext = randomBytes(CHUNK_BYTES * 2 + 12_345);
  const { file, chunks, prefix } = seal(plaintext, key);

  it('round-trips, in any piece size, including an exact multiple of the chunk size and an empty payload', async () => {
    expect(chunks).toHaveLength(3);
    expect((await open(file, key)).equals(plaintext)).toBe(true);
    expect((await open(file, key, 4093)).equals(plaintext)).toBe(true);
    const small = randomBytes(1000);
    expect((await open(seal(small, key).file, key, 1)).equals(small)).toBe(true);
    const exact = randomBytes(CHUNK_BYTES * 2);
    expect(seal(exact, key).chunks).toHaveLength(2);
    expect((await open(seal(exact, key).file, key)).equals(exact)).toBe(true);
    expect((await open(seal(Buffer.alloc(0), key).file, key)).equals(Buffer.alloc(0))).toBe(true);
  });

  it('seals the same bytes however the plaintext is fed: whole chunks, pieces larger than two chunks, or one piece', () => {
    const header = newDatasetHeader(fields);
    const reference = seal(plaintext, key, header).file;
    for (const pieceBytes of [CHUNK_BYTES, CHUNK_BYTES + 1, CHUNK_BYTES * 2 + 7, plaintext.length, 65_536]) {
      expect(seal(plaintext, key, header, pieceBytes).file.equals(reference), `pieces of ${pieceBytes}`).toBe(true);
    }
  });

  it('binds the header: its fields parse back, and a changed field fails every chunk', async () => {
    expect(parseDatasetHeader(file).header.rows).toBe(10);
    const edited = Buffer.from(file.toString('latin1').replace('"rows":10', '"rows":99'), 'latin1');
    expect(await openError(edited, key)).toBe(`chunk 0 at offset ${prefix.length} does not authenticate: the chunk was altered, moved, or taken from another dataset, or the key is wrong`);
  });

  it('fails on a flipped byte, naming the chunk and offset', async () => {
    const flipped = Buffer.from(file);
    const at = prefix.length + 4 + CHUNK_BYTES + 16 + 4 + 100;
    flipped[at] = (flipped[at] as number) ^ 1;
    expect(await openError(flipped, key)).toBe(`chunk 1 at offset ${prefix.length + 4 + CHUNK_BYTES + 16} does not authenticate: the chunk was altered, moved, or taken from another dataset, or the key is wrong`);
  });

  it('yields nothing of a chunk that straddles reads until all of it, tag included, has verified', async () => {
    const chunkOne = prefix.length + 4 + CHUNK_BYTES + 16;
    // The last byte of chunk 1's body, and the last byte of its tag split across two reads.
    for (const [at, pieceBytes] of [[chunkOne + 4 + CHUNK_BYTES - 1, 4093], [chunkOne + 4 + CHUNK_BYTES + 15, 65_536]] as const) {
      const altered = Buffer.from(file);
      altered[at] = (altered[at] as number) ^ 0x80;
      let yielded = 0;
      // eslint-disable-next-line @typescript-eslint/require-await -- an async source, as a file stream is
      async function* pieces() {
        for (let offset = 0; offset < altered.length; offset += pieceBytes) yield altered.subarray(offset, offset + pieceBytes);
      }
      await expect(
        (async () => {
          for await (const part of openDataset(pieces(), key)) yielded += part.length;
        })(),
      ).rejects.toThrow(`chunk 1 at offset ${chunkOne} does not authenticate`);
      expect(yielded, `altered byte ${at}, pieces of ${pieceBytes}`).toBe(CHUNK_BYTES);
    }
  });

  it('fails on truncation at a chunk boundary, inside a chunk, and after the header', async () => {
    const boundary = Buffer.concat([prefix, chunks[0] as Buffer, chunks[1] as Buffer]);
    expect(await openError(boundary, key)).toMatch(/^chunk 1 at offset \d+ does not authenticate: the file is truncated/);
    expect(await openError(file.subarray(0, file.length - 10), key)).toMatch(/^the dataset file is truncated inside chunk 2 at offset \d+$/);
    expect(await openError(prefix, key)).toBe(`the dataset file is truncated at offset ${prefix.length}: its last chunk is missing`);
    expect(await openError(Buffer.alloc(0), key)).toBe('the dataset file is empty');
  });

  it('fails on reordered chunks, chunks spliced from another dataset, and the wrong key', async () => {
    const reordered = Buffer.concat([prefix, chunks[1] as Buffer, chunks[0] as Buffer, chunks[2] as Buffer]);
    expect(await openError(reordered, key)).toMatch(/^chunk 0 at offset \d+ does not authenticate/);
    const other = seal(randomBytes(CHUNK_BYTES * 2 + 5), randomBytes(32), newDatasetHeader({ ...fields, dataset: 'impressions' }));
    const spliced = Buffer.concat([prefix, chunks[0] as Buffer, other.chunks[1] as Buffer, chunks[2] as Buffer]);
    expect(await openError(spliced, key)).toMatch(/^chunk 1 at offset \d+ does not authenticate/);
    const swappedHeader = Buffer.concat([other.prefix, ...chunks]);
    expect(await openError(swappedHeader, key)).toMatch(/^chunk 0 at offset \d+ does not authenticate/);
    expect(await openError(file, randomBytes(32))).toMatch(/^chunk 0 at offset \d+ does not authenticate/);
  });

  it('refuses a file that is not a dataset, a header that is not canonical, and bytes after the last chunk', async () => {
    expect(await openError(Buffer.from('PAR1 not a dataset at all'), key)).toBe('not a Malus dataset file: the first 8 bytes are not MALUSDS1');
    expect(await openError(Buffer.concat([file, Buffer.from([0])]), key)).toMatch(/does not authenticate|follow the last chunk/);
    const json = prefix.subarray(12).toString('utf8');
    const spaced = Buffer.from(json.replace(':', ': '), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(spaced.length);
    expect(await openError(Buffer.concat([prefix.subarray(0, 8), length, spaced, ...chunks]), key)).toBe('dataset header is not in canonical form');
  });
});
