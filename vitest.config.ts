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
  },
});
