import { QueueEvents } from "bullmq";
import { describe, expect, it } from "vitest";
import { startWorker } from "../worker.js";
import { backup } from "../src/jobs/backup.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { resolveCollections } from "../src/scheduling/collection-globs.js";
import { NamedCollections } from "../src/scheduling/named-collections.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { SERVED_KINDS } from "../src/queues/catalogue.js";
import { scrape, seriesValue, eventually } from "./helpers/metrics-text.js";
import { runCli } from "./helpers/cli.js";
import { chromaStore, jobContext, quietLogger, seedCollection, testConfig, testEnv, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();

async function runJob(config: ReturnType<typeof testConfig>, queues: Parameters<typeof enqueue>[0], kind: "warm" | "probe", collection: string) {
  const connection = createRedisConnection(config.redisUrl, "worker");
  const events = new QueueEvents(kind, { connection, prefix: config.queuePrefix });
  await events.waitUntilReady();
  try {
    const job = await enqueue(queues, kind, { collection });
    return await job.waitUntilFinished(events, 30_000).catch((error: unknown) => error);
  } finally {
    await events.close();
    connection.disconnect();
  }
}

describe("metrics that survive restarts and forget the dead", () => {
  it("exports every kind's counters at 0 before anything ran", async () => {
    const worker = await startWorker({ config: testConfig(), logger: quietLogger(), chroma, kinds: ["probe"] });
    try {
      const text = await scrape(worker.ops.url);
      for (const kind of SERVED_KINDS) {
        expect(seriesValue(text, `vectorkeeper_job_failures_total{kind="${kind}",final="true"}`)).toBe(0);
        expect(seriesValue(text, `vectorkeeper_job_failures_total{kind="${kind}",final="false"}`)).toBe(0);
        expect(seriesValue(text, `vectorkeeper_jobs_completed_total{kind="${kind}"}`)).toBe(0);
      }
    } finally {
      await worker.close();
    }
  });

  it("keeps last-success gauges across a worker restart, and seeds backups from the catalog", async () => {
    const warmed = uniqueName("restart_warm");
    const backedUp = uniqueName("restart_backup");
    await seedCollection(chroma, warmed, 20, 8);
    await seedCollection(chroma, backedUp, 20, 8);
    const backupStore = new FsStore(tempDir("restart"));
    // A backup made without any worker (as `vectorkeeper run backup` does): only the catalog knows it.
    const made = await backup.process(backup.payload.parse({ collection: backedUp }), jobContext({ backupStore }));
    const config = testConfig();
    const warmSeries = `vectorkeeper_last_success_timestamp_seconds{kind="warm",collection="${warmed}"}`;
    const backupSeries = `vectorkeeper_last_success_timestamp_seconds{kind="backup",collection="${backedUp}"}`;

    const first = await startWorker({ config, logger: quietLogger(), chroma, backupStore, kinds: ["warm"] });
    let before: number | undefined;
    try {
      await runJob(config, first.queues, "warm", warmed);
      before = seriesValue(await eventually(() => scrape(first.ops.url), (t) => seriesValue(t, warmSeries) !== undefined), warmSeries);
      expect(before).toBeGreaterThan(1e9);
    } finally {
      await first.close();
    }

    const second = await startWorker({ config, logger: quietLogger(), chroma, backupStore, kinds: ["warm"] });
    try {
      await second.seeded;
      const text = await scrape(second.ops.url);
      expect(seriesValue(text, warmSeries)).toBe(before);
      const manifest = await readManifest(backupStore, backedUp, made.backupId);
      expect(seriesValue(text, backupSeries)).toBe(Date.parse(manifest.finishedAt) / 1000);
    } finally {
      await second.close();
    }
  });

  it("counts a `vectorkeeper run` from the CLI as a last success", async () => {
    const name = uniqueName("cli_success");
    await seedCollection(chroma, name, 5, 4);
    const env = testEnv();
    const ran = await runCli(["run", "probe", "--collection", name, "--json"], env);
    expect(ran.code).toBe(0);
    const worker = await startWorker({ config: testConfig({ VK_QUEUE_PREFIX: env.VK_QUEUE_PREFIX! }), logger: quietLogger(), chroma, kinds: ["probe"] });
    try {
      const at = seriesValue(await scrape(worker.ops.url), `vectorkeeper_last_success_timestamp_seconds{kind="probe",collection="${name}"}`);
      expect(at).toBeGreaterThan(Date.now() / 1000 - 120);
    } finally {
      await worker.close();
    }
  });

  it("keeps each collection's probe_up across a worker restart, before the next probe", async () => {
    const healthy = uniqueName("restart_probe_ok");
    const missing = uniqueName("restart_probe_missing");
    await seedCollection(chroma, healthy, 5, 4);
    const config = testConfig();
    const redis = createRedisConnection(config.redisUrl, "producer");
    await waitForRedis(redis, config.redisUrl);
    // A schedule names the missing one, so its failure is kept rather than forgotten.
    await new NamedCollections(redis, config.queuePrefix).publish([missing], 60_000);
    const up = (name: string) => `vectorkeeper_probe_up{collection="${name}"}`;
    const first = await startWorker({ config, logger: quietLogger(), chroma, kinds: ["probe"] });
    try {
      await runJob(config, first.queues, "probe", healthy);
      await runJob(config, first.queues, "probe", missing);
      await eventually(() => redis.exists(`${config.queuePrefix}:alert:probe:${missing}`), (n) => n === 1, 5000);
    } finally {
      await first.close();
    }
    // The second worker serves no probe queue: what it exports is what it seeded.
    const second = await startWorker({ config, logger: quietLogger(), chroma, kinds: ["warm"] });
    try {
      await second.seeded;
      const text = await scrape(second.ops.url);
      expect(seriesValue(text, up(healthy))).toBe(1);
      expect(seriesValue(text, up(missing))).toBe(0);
    } finally {
      await second.close();
      redis.disconnect();
    }
  });

  it("removes the series and alert state of a deleted collection, but keeps those of one a schedule names", async () => {
    const doomed = uniqueName("forget_doomed");
    const named = uniqueName("forget_named");
    await seedCollection(chroma, doomed, 5, 4);
    await seedCollection(chroma, named, 5, 4);
    const config = testConfig();
    config.alerts.forgetIntervalMs = 300;
    const redis = createRedisConnection(config.redisUrl, "producer");
    await waitForRedis(redis, config.redisUrl);
    await new NamedCollections(redis, config.queuePrefix).publish([named], 60_000);
    const worker = await startWorker({ config, logger: quietLogger(), chroma, kinds: ["probe"] });
    try {
      for (const name of [doomed, named]) await runJob(config, worker.queues, "probe", name);
      const up = (name: string) => `vectorkeeper_probe_up{collection="${name}"}`;
      const text = await eventually(() => scrape(worker.ops.url), (t) => seriesValue(t, up(doomed)) === 1, 5000);
      expect(seriesValue(text, up(doomed))).toBe(1);
      // The worker records alert state right after the job's completion event; wait for it.
      expect(await eventually(() => redis.exists(`${config.queuePrefix}:alert:probe:${doomed}`), (n) => n === 1, 5000)).toBe(1);
      expect(await redis.pttl(`${config.queuePrefix}:alert:probe:${doomed}`)).toBeGreaterThan(0);

      await chroma.client.deleteCollection({ name: doomed });
      await chroma.client.deleteCollection({ name: named });
      // The named one's probe now fails: that is news, and stays exported.
      await runJob(config, worker.queues, "probe", named);
      // Series go first, then the alert state and last successes (read from Redis at scrape time): wait for all.
      const after = await eventually(() => scrape(worker.ops.url), (t) => !t.includes(`collection="${doomed}"`), 10_000);
      expect(seriesValue(after, up(doomed))).toBeUndefined();
      expect(after).not.toContain(`collection="${doomed}"`);
      expect(await eventually(() => redis.exists(`${config.queuePrefix}:alert:probe:${doomed}`), (n) => n === 0, 5000)).toBe(0);
      expect(seriesValue(await eventually(() => scrape(worker.ops.url), (t) => seriesValue(t, up(named)) === 0, 5000), up(named))).toBe(0);
      expect(await eventually(() => redis.exists(`${config.queuePrefix}:alert:probe:${named}`), (n) => n === 1, 5000)).toBe(1);
    } finally {
      await worker.close();
      redis.disconnect();
    }
  });

  it("never lets a glob match vectorkeeper's temporary collections", () => {
    const existing = ["products", "products__vkrestore_0f2f63e7", "products__vkold_069a5beb", "products__vkstage_1"];
    expect(resolveCollections(["*"], existing).collections).toEqual(["products"]);
    expect(resolveCollections(["products*"], existing).collections).toEqual(["products"]);
    // Named literally, it is what the user asked for.
    expect(resolveCollections(["products__vkold_069a5beb"], existing).collections).toEqual(["products__vkold_069a5beb"]);
  });
});
