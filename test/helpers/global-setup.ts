import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import S3rver from "s3rver";
import type {} from "vitest";
import type { TestProject } from "vitest/node";
import { z } from "zod";
import { startLocalChroma } from "../../src/storage/chroma/local-server.js";
import { LOCAL_CHROMA_SERVERS, type LocalChromaServer } from "../../src/storage/chroma/local-binding.js";
import { compileCli } from "./compiled-cli.js";
import { deleteKeysUnder } from "./redis-keys.js";

declare module "vitest" {
  export interface ProvidedContext {
    /**
     * One Chroma per test worker (vitest's maxWorkers), so files running at once never see each other's collections;
     * tests reach theirs through chromaUrl() in services.ts.
     */
    chromaUrls: string[];
    /** Which Chroma the run tests against (VK_TEST_CHROMA); tests that start their own Chroma start this one. */
    chromaServer: LocalChromaServer;
    redisUrl: string;
    /** Every BullMQ key of this run starts with it; teardown deletes exactly those keys. */
    runPrefix: string;
    /** An S3 protocol server (s3rver) with the bucket `vk-test`; credentials S3RVER/S3RVER. */
    s3Endpoint: string;
    /** The CLI's entry, compiled for this run (see compiled-cli.ts); tests start it through test/helpers/cli.ts. */
    cliMain: string;
  }
}

/** The one setting that picks the server of the test matrix: `npm test` runs the suite once with each. */
function chromaServerOf(env: NodeJS.ProcessEnv): LocalChromaServer {
  const parsed = z.enum(LOCAL_CHROMA_SERVERS).default("1.0.5").safeParse(env.VK_TEST_CHROMA || undefined);
  if (!parsed.success) throw new Error(`VK_TEST_CHROMA must be one of ${LOCAL_CHROMA_SERVERS.join(", ")} (got "${env.VK_TEST_CHROMA}")`);
  return parsed.data;
}

/** How many files run at once: vitest's own default when the config and command line leave it open. */
function workerCount(project: TestProject): number {
  const configured = project.config.maxWorkers;
  return typeof configured === "number" && configured > 0 ? configured : Math.max(availableParallelism() - 1, 1);
}

/**
 * Files run several at once (vitest.config.ts says why), each worker on a real Chroma of its own, on a free port and a
 * throwaway directory; S3 (s3rver, each test under a prefix of its own) and Redis (the machine's, each test under a
 * BullMQ prefix of its own) are shared.
 */
export default async function setup(project: TestProject) {
  const chromaServer = chromaServerOf(process.env);
  // Quick once installed; on a fresh machine it unpacks the glibc the current bindings need (see the script).
  if (chromaServer === "current") execFileSync(process.execPath, ["scripts/install-current-chroma.mjs"], { stdio: "inherit" });
  const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
  const runPrefix = `vktest-${process.pid}-${Date.now().toString(36)}`;
  const workers = workerCount(project);
  const dirs = Array.from({ length: workers }, () => mkdtempSync(join(tmpdir(), "vk-chroma-")));
  const chromas = await Promise.all(dirs.map((path) => startLocalChroma({ path, server: chromaServer })));
  project.provide("chromaUrls", chromas.map((chroma) => chroma.url));
  project.provide("chromaServer", chromaServer);
  project.provide("redisUrl", redisUrl);
  project.provide("runPrefix", runPrefix);
  const s3Dir = mkdtempSync(join(tmpdir(), "vk-s3-"));
  const s3 = new S3rver({ address: "127.0.0.1", port: 0, directory: s3Dir, silent: true, configureBuckets: [{ name: "vk-test" }] });
  const { port } = await s3.run();
  project.provide("s3Endpoint", `http://127.0.0.1:${port}`);
  const cli = await compileCli(fileURLToPath(new URL("../..", import.meta.url)));
  project.provide("cliMain", cli.main);

  return async () => {
    await Promise.all(chromas.map((chroma) => chroma.stop()));
    await s3.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    rmSync(s3Dir, { recursive: true, force: true });
    cli.remove();
    await deleteKeysUnder(redisUrl, runPrefix);
  };
}
