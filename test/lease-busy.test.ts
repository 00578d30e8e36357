import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { startWorker } from "../worker.js";
import { backup } from "../src/jobs/backup.js";
import { enqueue } from "../src/queues/enqueue.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { runCli } from "./helpers/cli.js";
import { chromaStore, jobContext, quietLogger, testConfig, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

// "Already running" is not bad input: the CLI exits 1 (not 2), and a queued job meeting a running one is retried
// with the queue's backoff instead of failing for good.
const chroma = chromaStore();
const redis = new Redis(inject("redisUrl"));
afterAll(() => redis.quit());

/** What a run elsewhere holds; it lapses after `ms`, as if that run had finished. */
const holdElsewhere = (prefix: string, lease: string, ms: number) =>
  redis.set(`${prefix}:lock:${lease}`, JSON.stringify({ holder: "job elsewhere", token: "t" }), "PX", ms);

async function backedUp(name: string) {
  const dir = tempDir("busy");
  const backupStore = new FsStore(dir);
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
  await collection.add({ ids: Array.from({ length: 20 }, (_, i) => `r${i}`), embeddings: vectors(20, 8, 4) });
  const { backupId } = await backup.process(backup.payload.parse({ collection: name }), jobContext({ chroma, backupStore }));
  return { dir, backupStore, backupId };
}

describe("a run meeting one already running", () => {
  it("from the CLI: one line, exit 1", async () => {
    const name = uniqueName("busy_cli");
    const { dir } = await backedUp(name);
    const env = testEnv({ BACKUP_URL: pathToFileURL(dir).href });
    await holdElsewhere(env.VK_QUEUE_PREFIX!, `drill:${name}`, 60_000);
    const cli = await runCli(["run", "drill", "--collection", name], env);
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim().split("\n")).toEqual([`vectorkeeper: a drill of ${name} is already running (job elsewhere)`]);
  });

  it("from the queue: an archive is retried once the other has finished, not failed for good", async () => {
    const name = uniqueName("busy_queue");
    const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
    await collection.add({
      ids: Array.from({ length: 20 }, (_, i) => `r${i}`),
      embeddings: vectors(20, 8, 4),
      metadatas: Array.from({ length: 20 }, () => ({ _created_at: Date.now() - 40 * 86_400_000 })),
    });
    const backupStore = new FsStore(tempDir("busy"));
    const config = testConfig();
    await holdElsewhere(config.queuePrefix, `archive:${name}`, 4000);
    const worker = await startWorker({ config, logger: quietLogger(), chroma, backupStore, kinds: ["archive"] });
    try {
      const job = await enqueue(worker.queues, "archive", { collection: name, olderThanDays: 30, to: "object-store" });
      // QueueEvents reports each failed attempt as "failed", so the job's own state is what tells.
      const deadline = Date.now() + 90_000;
      let state = await job.getState();
      while (state !== "completed" && state !== "failed" && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        state = await job.getState();
      }
      const settled = await worker.queues.get("archive").getJob(job.id!);
      expect(state, settled?.failedReason).toBe("completed");
      expect(settled?.attemptsMade).toBeGreaterThan(1);
      expect(await collection.count()).toBe(0);
    } finally {
      await worker.close();
    }
  });
});
