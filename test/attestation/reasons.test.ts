import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ATTESTATION_REASON_CODES } from '../../src/attestation/index.js';

// Every reason code a verifier can return is documented, and the docs name no code that does not exist.

describe('attestation reason codes', () => {
  const doc = readFileSync('docs/attestation.md', 'utf8');
  const section = /## Reason codes\n([\s\S]*?)(?=\n## |$)/.exec(doc)?.[1] ?? '';
  const documented = [...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);

  it('lists exactly the codes the verifiers define', () => {
    expect([...documented].sort()).toEqual([...ATTESTATION_REASON_CODES].sort());
  });
});
