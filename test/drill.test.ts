import { pathToFileURL } from "node:url";
import { QueueEvents } from "bullmq";
import { describe, expect, it } from "vitest";
import { startWorker } from "../worker.js";
import { backup } from "../src/jobs/backup.js";
import { drill } from "../src/jobs/drill.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { cliKilledAt, runCli } from "./helpers/cli.js";
import { scrape, seriesValue, eventually } from "./helpers/metrics-text.js";
import { chromaStore, jobContext, quietLogger, seedCollection, testConfig, testEnv, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();

/** A cosine collection (Chroma normalises what it stores) with documents and metadata. */
const seedCosine = (name: string, count: number) =>
  seedCollection(chroma, name, count, 16, {
    configuration: { hnsw: { space: "cosine" } },
    idPrefix: "d",
    vectorSeed: 9,
    document: (i) => `doc ${i}`,
    recordMetadata: (i) => ({ n: i, half: i % 2 === 0 }),
  });

const scratchOf = async (name: string) => (await chroma.listCollectionNames()).filter((n) => n.startsWith(`${name}__vkdrill_`));

describe("drill job", () => {
  it("restores the newest backup into a scratch collection, compares it, times it and deletes it", async () => {
    const name = uniqueName("drill_ok");
    await seedCosine(name, 1200);
    const ctx = jobContext({ chroma });
    await backup.process(backup.payload.parse({ collection: name, chunkRecords: 200 }), ctx);
    const newest = await backup.process(backup.payload.parse({ collection: name, chunkRecords: 200 }), ctx);

    const result = await drill.process(drill.payload.parse({ collection: name }), ctx);
    expect(result).toMatchObject({ collection: name, backupId: newest.backupId, records: 1200, sampled: 100, sameInSource: 100, changedInSource: 0, goneFromSource: 0 });
    expect(result.restoreSeconds).toBeGreaterThan(0);
    expect(await scratchOf(name)).toEqual([]);

    // The source moves on after its backup: the drill still passes (the backup restored faithfully) and says so.
    const source = await chroma.openCollection(name);
    const all = await source.get({ include: [] });
    await source.update({ ids: all.ids, metadatas: all.ids.map(() => ({ n: -1, half: false })) });
    const later = await drill.process(drill.payload.parse({ collection: name, sampleRecords: 30 }), ctx);
    expect(later).toMatchObject({ sampled: 30, sameInSource: 0, changedInSource: 30, goneFromSource: 0 });
    expect(await scratchOf(name)).toEqual([]);
  });

  it("drills an empty backup; a source deleted since its backup is reported all gone, not a failure", async () => {
    const ctx = jobContext({ chroma });
    const empty = uniqueName("drill_empty");
    await chroma.client.createCollection({ name: empty, embeddingFunction: null });
    await backup.process(backup.payload.parse({ collection: empty }), ctx);
    expect(await drill.process(drill.payload.parse({ collection: empty }), ctx)).toMatchObject({ records: 0, sampled: 0, goneFromSource: 0 });
    expect(await scratchOf(empty)).toEqual([]);

    const name = uniqueName("drill_gone");
    await seedCosine(name, 50);
    await backup.process(backup.payload.parse({ collection: name }), ctx);
    await chroma.deleteCollection(name);
    const result = await drill.process(drill.payload.parse({ collection: name, sampleRecords: 20 }), ctx);
    expect(result).toMatchObject({ records: 50, sampled: 20, sameInSource: 0, changedInSource: 0, goneFromSource: 20 });
    expect(await scratchOf(name)).toEqual([]);
  });

  it("refuses a collection without a backup in one line, creating nothing", async () => {
    const name = uniqueName("drill_none");
    await seedCosine(name, 10);
    const run = await runCli(["run", "drill", "--collection", name], testEnv({ BACKUP_URL: pathToFileURL(tempDir("drill")).href }));
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("no complete backup");
    expect(await scratchOf(name)).toEqual([]);
  });

  it("leaves no scratch collection after the next run when killed mid-drill", async () => {
    const name = uniqueName("drill_kill");
    await seedCosine(name, 800);
    const env = testEnv({ BACKUP_URL: pathToFileURL(tempDir("drill")).href });
    expect((await runCli(["run", "backup", "--collection", name, "--chunk-records", "100"], env)).code).toBe(0);

    // Killed once after the scratch restore is complete, once inside the restore before its swap.
    for (const point of ["drill:restored", "restore:before-swap"]) {
      await cliKilledAt(["run", "drill", "--collection", name], env, point);
      expect(await scratchOf(name), point).not.toEqual([]);
    }

    const rerun = await runCli(["run", "drill", "--collection", name, "--json"], env);
    // Its only log line: the killed drill's lease, taken over.
    expect(rerun.stderr.trim().split("\n").filter((line) => line && !line.includes("took over the lease of a crashed run"))).toEqual([]);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ collection: name, records: 800, sameInSource: 100 });
    expect(await scratchOf(name)).toEqual([]);
  });

  it("exports the last successful drill, its restore time and measured recall from the worker", async () => {
    const name = uniqueName("drill_metrics");
    await seedCosine(name, 300);
    const backupStore = new FsStore(tempDir("drill"));
    await backup.process(backup.payload.parse({ collection: name }), jobContext({ chroma, backupStore }));
    const config = testConfig();
    const worker = await startWorker({ config, logger: quietLogger(), chroma, backupStore, kinds: ["drill", "recall"] });
    const connection = createRedisConnection(config.redisUrl, "worker");
    try {
      for (const kind of ["drill", "recall"] as const) {
        const events = new QueueEvents(kind, { connection, prefix: config.queuePrefix });
        await events.waitUntilReady();
        const job = await enqueue(worker.queues, kind, { collection: name });
        await job.waitUntilFinished(events, 60_000);
        await events.close();
      }
      const last = `vectorkeeper_drill_last_success_timestamp_seconds{collection="${name}"}`;
      const text = await eventually(() => scrape(worker.ops.url), (t) => seriesValue(t, last) !== undefined);
      expect(seriesValue(text, last)).toBeGreaterThan(Date.now() / 1000 - 120);
      expect(seriesValue(text, `vectorkeeper_drill_restore_seconds{collection="${name}"}`)).toBeGreaterThan(0);
      const recall = seriesValue(text, `vectorkeeper_recall_at_k{collection="${name}"}`);
      expect(recall).toBeGreaterThan(0);
      expect(recall).toBeLessThanOrEqual(1);
    } finally {
      connection.disconnect();
      await worker.close();
    }
  });
});
