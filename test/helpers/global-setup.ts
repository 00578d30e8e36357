import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {} from "vitest";
import type { TestProject } from "vitest/node";
import { startLocalChroma } from "../../src/storage/local-chroma.js";
import { deleteKeysUnder } from "./redis-keys.js";

declare module "vitest" {
  export interface ProvidedContext {
    chromaUrl: string;
    redisUrl: string;
    /** Every BullMQ key of this run starts with it; teardown deletes exactly those keys. */
    runPrefix: string;
  }
}

/** One real Chroma for the run, on a free port and a throwaway directory; Redis is the machine's own. */
export default async function setup(project: TestProject) {
  const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
  const runPrefix = `vktest-${process.pid}-${Date.now().toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), "vk-chroma-"));
  const chroma = await startLocalChroma({ path: dir });
  project.provide("chromaUrl", chroma.url);
  project.provide("redisUrl", redisUrl);
  project.provide("runPrefix", runPrefix);

  return async () => {
    await chroma.stop();
    rmSync(dir, { recursive: true, force: true });
    await deleteKeysUnder(redisUrl, runPrefix);
  };
}
