import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { cruise, type ICruiseResult, type IConfiguration } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

// ARCHITECTURE §6: imports never point up the layer order, and folders are entered only through
// their index.ts. The rules live in .dependency-cruiser.cjs; this test runs them.

const require = createRequire(import.meta.url);
const ruleSet = require('../.dependency-cruiser.cjs') as IConfiguration;

async function violations(baseDir: string, minimumModules: number): Promise<string[]> {
  const result = await cruise(['src'], {
    baseDir,
    validate: true,
    ruleSet: { forbidden: ruleSet.forbidden ?? [] },
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
  }, undefined, { tsConfig: { fileName: resolve('tsconfig.json') } });
  const output = result.output as ICruiseResult;
  // Guard against a vacuous pass: the cruise must actually have seen the code.
  expect(output.summary.totalCruised).toBeGreaterThanOrEqual(minimumModules);
  return output.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
}

describe('layering', () => {
  it('src has no import that points up a layer, reaches into internals, or cycles', async () => {
    expect(await violations(resolve('.'), 40)).toEqual([]);
  });

  it('the rules catch an upward import and an import of internals', async () => {
    const found = await violations(resolve('test/fixtures/layering'), 4);
    expect(found).toContain('layer-0-points-up: src/crypto/index.ts -> src/server/index.ts');
    expect(found).toContain('only-through-index: src/server/index.ts -> src/agreement/schema.ts');
  });
});
