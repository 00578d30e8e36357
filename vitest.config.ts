import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Tests start real servers and child processes; generous limits keep a loaded 2-core CI machine green.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
