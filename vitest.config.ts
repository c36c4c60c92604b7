import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 20000,
    hookTimeout: 30000,
    // Files use their own queue names and start private servers on ports of their own, so two run
    // at once. Timed on the whole suite (Node 20, 2 cores, while other jobs kept the load near 10):
    // 17.1 min two at a time against about 24 min one at a time on a quiet machine, every test
    // passing. `--maxWorkers=1` (or WQUEUE_CI_FILES_AT_ONCE=1 for .ci/run) goes back to one.
    pool: "forks",
    maxWorkers: 2,
    minWorkers: 1,
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/**/*.test.ts"],
      reporter: ["text-summary", "html"],
    },
  },
});
