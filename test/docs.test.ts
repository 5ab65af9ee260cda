import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProgram, cliReference, REFERENCE_BEGIN, REFERENCE_END, type CliIo } from '../src/cli/index.js';
import { ERROR_CODES } from '../src/errors/index.js';
import { EVENT_TYPES } from '../src/ledger/index.js';

const readme = readFileSync('README.md', 'utf8');

const silentIo: CliIo = {
  out: () => undefined,
  err: () => undefined,
  env: {},
  stopSignal: () => new Promise(() => undefined),
};

describe('README', () => {
  it('starts with exactly two commands: the demo and the tests', () => {
    const firstBlock = /^# Malus\n\n```sh\n([\s\S]*?)```/.exec(readme);
    expect(firstBlock?.[1]).toBe('npm ci && npx malus demo\nnpm test\n');
  });

  it('has a CLI reference generated from the commander definitions (run `npm run docs:cli`)', () => {
    const begin = readme.indexOf(REFERENCE_BEGIN);
    const end = readme.indexOf(REFERENCE_END);
    expect(begin).toBeGreaterThan(0);
    const block = readme.slice(begin + REFERENCE_BEGIN.length, end).trim();
    expect(block).toBe(cliReference(buildProgram(silentIo)).trim());
  });

  it('documents every command', () => {
    for (const name of ['demo', 'keygen', 'agreement init', 'agreement validate', 'agreement hash', 'agreement sign',
      'agreement verify', 'collab propose', 'collab sign', 'collab show', 'collab list', 'serve']) {
      expect(readme).toContain(`### \`malus ${name} `);
    }
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const rows = [...doc.matchAll(/^\| `([a-z-]+)` \| (\d{3}) \| (\d) \|/gm)].map((m) => ({
    code: m[1] ?? '',
    status: Number(m[2]),
    exit: Number(m[3]),
  }));

  it('lists exactly the error codes the code defines, with their status and exit code', () => {
    const defined = Object.entries(ERROR_CODES).map(([code, v]) => ({ code, status: v.status, exit: v.exit }));
    expect(rows.sort((a, b) => a.code.localeCompare(b.code))).toEqual(defined.sort((a, b) => a.code.localeCompare(b.code)));
  });
});

describe('docs/log.md', () => {
  const doc = readFileSync('docs/log.md', 'utf8');
  const listed = [...doc.matchAll(/^\| `([a-z]+\.[a-z]+)` \|/gm)].map((m) => m[1]);

  it('lists exactly the event types the code defines', () => {
    expect([...listed].sort()).toEqual([...EVENT_TYPES].sort());
  });
});
