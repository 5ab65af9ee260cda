import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SECAGG_REASONS } from '../../src/secagg/index.js';

// Every reason a secagg refusal can carry is documented, and the docs name no reason that does not exist.

describe('secagg reason codes', () => {
  const doc = readFileSync('docs/secagg.md', 'utf8');
  const section = /## Reason codes\n([\s\S]*?)(?=\n## |$)/.exec(doc)?.[1] ?? '';
  const documented = [...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);

  it('lists exactly the reasons the code defines', () => {
    expect([...documented].sort()).toEqual([...SECAGG_REASONS].sort());
  });
});
