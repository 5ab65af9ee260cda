import { defineConfig } from 'vitest/config';

// Long statistical and load runs: `npm run test:long`.
export default defineConfig({
  test: {
    include: ['test/**/*.long.test.ts'],
    testTimeout: 600_000,
    pool: 'forks',
  },
});
