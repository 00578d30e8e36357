import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";
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
    /** An S3 protocol server (s3rver) with the bucket `vk-test`; credentials S3RVER/S3RVER. */
    s3Endpoint: string;
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
  const s3Dir = mkdtempSync(join(tmpdir(), "vk-s3-"));
  const s3 = new S3rver({ address: "127.0.0.1", port: 0, directory: s3Dir, silent: true, configureBuckets: [{ name: "vk-test" }] });
  const { port } = await s3.run();
  project.provide("s3Endpoint", `http://127.0.0.1:${port}`);

  return async () => {
    await chroma.stop();
    await s3.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(s3Dir, { recursive: true, force: true });
    await deleteKeysUnder(redisUrl, runPrefix);
  };
}
