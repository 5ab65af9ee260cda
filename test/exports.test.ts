import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The public surface is deliberate: the exports map names each entry point, and this snapshot makes
// every change to what an entry exports visible in review.

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, unknown> };

describe('package exports', () => {
  const entries = Object.keys(pkg.exports).filter((entry) => entry !== './package.json');

  it('maps each entry point to a built index', () => {
    expect(entries).toEqual(['./agreement', './attestation', './client', './errors', './identity', './joint', './psi', './secagg', './server']);
  });

  it.each(entries)('%s exports exactly the snapshotted names', async (entry) => {
    const module = (await import(`../src/${entry.slice(2)}/index.ts`)) as Record<string, unknown>;
    expect(Object.keys(module).sort()).toMatchSnapshot();
  });
});
