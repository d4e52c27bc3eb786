import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // A fixed key keeps every test from warning that no pseudonym key is configured.
    env: { TOLLGATE_PSEUDONYM_KEY: 'vitest key, not a secret' },
  },
});
