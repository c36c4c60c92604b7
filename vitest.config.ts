import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 20000,
    hookTimeout: 30000,
    // Files use their own queue names and start private servers on ports of their own, so two may
    // run at once (`--maxWorkers=2`). The default stays one file at a time (vitest's own default on
    // 2 cores: cores - 1): measured on 7 broker and CLI files under load 20-30, two at once took
    // 143-153 s against 155-217 s, but slowed child-process start-ups past some waits. .ci/run
    // takes WQUEUE_CI_FILES_AT_ONCE to run two once the whole suite has been timed that way.
    pool: "forks",
    maxWorkers: 1,
    minWorkers: 1,
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts"],
      exclude: ["src/**/*.test.ts"],
      reporter: ["text-summary", "html"],
    },
  },
});
