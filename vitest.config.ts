import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Tests start real servers and child processes (a CLI start alone took 7-28 s at load 17 on 2 cores); tests that
    // start the CLI three or four times in a row took over 60 s there. The limit only bounds a hung test.
    testTimeout: 150_000,
    hookTimeout: 90_000,
    pool: "forks",
    // Two files at a time in each server's run: a file mostly waits (on Chroma, child processes, timers), so a second
    // one beside it uses the time. Each worker has a Chroma of its own (test/helpers/global-setup.ts), so files running
    // at once never see each other's collections. VITEST_MAX_WORKERS=1 runs them one at a time.
    maxWorkers: 2,
  },
});
