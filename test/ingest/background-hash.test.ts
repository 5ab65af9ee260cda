import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MalusError } from '../../src/errors/index.js';
import { backgroundSha256, stopBackgroundHashing } from '../../src/ingest/background-hash.js';

const sha256 = (pieces: Buffer[]): string => `sha256:${createHash('sha256').update(Buffer.concat(pieces)).digest('hex')}`;

describe('SHA-256 on a second thread', () => {
  it('equals the hash of the whole, for streams interleaved piece by piece, and for an empty stream', async () => {
    const a = Array.from({ length: 40 }, (_, i) => randomBytes(1 + i * 997));
    const b = Array.from({ length: 25 }, (_, i) => randomBytes(3 + i * 4099));
    const first = backgroundSha256();
    const second = backgroundSha256();
    const empty = backgroundSha256();
    for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
      if (a[i] !== undefined) await first.update(a[i] as Buffer);
      if (b[i] !== undefined) await second.update(b[i] as Buffer);
    }
    expect(await Promise.all([second.digest(), first.digest(), empty.digest()])).toEqual([sha256(b), sha256(a), sha256([])]);
  });

  it('hashes what it was handed, even if the caller reuses its buffer at once', async () => {
    const piece = randomBytes(4096);
    const original = Buffer.from(piece);
    const hash = backgroundSha256();
    await hash.update(piece);
    piece.fill(0);
    expect(await hash.digest()).toBe(sha256([original]));
  });

  it('asks the caller to wait once 32 slabs of 1 MiB are queued, and catches up', async () => {
    const hash = backgroundSha256();
    const piece = randomBytes(4 << 20);
    let waits = 0;
    for (let i = 0; i < 16; i += 1) {
      const catchingUp = hash.update(piece);
      if (catchingUp !== undefined) {
        waits += 1;
        await catchingUp;
      }
    }
    expect(waits).toBeGreaterThan(0);
    expect(await hash.digest()).toBe(sha256(Array.from({ length: 16 }, () => piece)));
  });

  it('refuses to be used after its digest, and an abandoned stream leaves the others intact', async () => {
    const done = backgroundSha256();
    await done.update(Buffer.from('x'));
    await done.digest();
    expect(() => done.update(Buffer.from('y'))).toThrow(MalusError);
    const dropped = backgroundSha256();
    const kept = backgroundSha256();
    await dropped.update(Buffer.from('dropped'));
    await kept.update(Buffer.from('kept'));
    dropped.abandon();
    expect(await kept.digest()).toBe(sha256([Buffer.from('kept')]));
  });

  it('fails an open stream with internal when the thread stops, and starts a new thread for the next', async () => {
    const open = backgroundSha256();
    await open.update(randomBytes(1 << 20));
    await stopBackgroundHashing();
    const failed = await open.digest().catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(MalusError);
    expect((failed as MalusError).code).toBe('internal');
    expect((failed as MalusError).message).toMatch(/^the hashing thread stopped/);
    const next = backgroundSha256();
    await next.update(Buffer.from('again'));
    expect(await next.digest()).toBe(sha256([Buffer.from('again')]));
  });

  it('does not keep a process alive once its streams are done, abandoned or not', () => {
    const module = join(import.meta.dirname, '../../src/ingest/background-hash.ts');
    const script = `import { backgroundSha256 } from ${JSON.stringify(module)};
const a = backgroundSha256(); a.update(new Uint8Array(10)); console.log(await a.digest());
const b = backgroundSha256(); b.update(new Uint8Array(10)); b.abandon();`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(sha256([Buffer.alloc(10)]));
  });
});
