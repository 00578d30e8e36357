import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startScheduler } from "../scheduler.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { slotJobId } from "../src/scheduling/slots.js";
import { eventually, scrape, seriesValue } from "./helpers/metrics-text.js";
import { ownRedis, type OwnRedis } from "./helpers/redis-server.js";
import { chromaStore, quietLogger, seedCollection, uniqueName, uniquePrefix } from "./helpers/services.js";

/** Redis (a redis-server of this test's own) cut over a slot: the slot is enqueued once Redis answers, exactly once. */
describe("a scheduler slot while Redis is unreachable", () => {
  let redisServer: OwnRedis;
  const name = uniqueName("redis_cut");
  beforeAll(async () => {
    redisServer = await ownRedis();
    await seedCollection(chromaStore(), name, 3, 4);
  });
  afterAll(() => redisServer.stop());

  it("is retried within the catch-up window and enqueued exactly once when Redis answers", async () => {
    const redis = createRedisConnection(redisServer.url, "producer");
    redis.on("error", () => undefined);
    await waitForRedis(redis, redisServer.url);
    const queues = new QueueSet(redis, uniquePrefix("redis-cut"));
    // The clock is the test's: the nightly slot arrives while Redis is down.
    let clock = new Date("2026-03-10T02:59:50Z");
    const scheduler = await startScheduler({
      schedule: parseScheduleYaml(`jobs: [{ kind: backup, cron: "0 3 * * *", collections: ["${name}"] }]`, "test"),
      options: { ...DEFAULTS.scheduler, catchUpIntervalMs: 200 },
      redis,
      queues,
      chroma: chromaStore(),
      logger: quietLogger(),
      now: () => clock,
      http: { port: 0, host: "127.0.0.1" },
    });
    try {
      // Yesterday's 03:00 is outside the window: nothing at start.
      expect(scheduler.catchUp[0]!.enqueued).toEqual([]);
      await redisServer.stop();
      clock = new Date("2026-03-10T03:00:01Z");
      const failed = `vectorkeeper_scheduler_slots_failed_total{kind="backup"}`;
      const text = await eventually(() => scrape(scheduler.ops!.url), (t) => (seriesValue(t, failed) ?? 0) >= 2, 20_000);
      expect(seriesValue(text, failed)).toBeGreaterThanOrEqual(2);

      await redisServer.start();
      const jobId = slotJobId("backup", name, new Date("2026-03-10T03:00:00Z"));
      // Polled while the connection may still be reconnecting.
      const jobs = () => queues.get("backup").getJobs(["waiting", "delayed", "active", "completed", "failed"], 0, 100).catch(() => []);
      await eventually(jobs, (list) => list.length > 0, 20_000);
      // Several more passes, and a second scheduler's start, change nothing.
      await new Promise((r) => setTimeout(r, 1500));
      const again = await startScheduler({
        schedule: parseScheduleYaml(`jobs: [{ kind: backup, cron: "0 3 * * *", collections: ["${name}"] }]`, "test"),
        options: DEFAULTS.scheduler,
        redis,
        queues,
        chroma: chromaStore(),
        logger: quietLogger(),
        now: () => clock,
      });
      await again.stop();
      expect((await jobs()).map((job) => job.id)).toEqual([jobId]);
      expect(again.catchUp[0]!.alreadyClaimed).toEqual([jobId]);
      const after = await scrape(scheduler.ops!.url);
      expect(seriesValue(after, `vectorkeeper_scheduler_jobs_enqueued_total{kind="backup"}`)).toBe(1);
      expect(seriesValue(after, `vectorkeeper_scheduler_next_slot_timestamp_seconds{entry="0",kind="backup"}`)).toBe(
        Date.parse("2026-03-11T03:00:00Z") / 1000,
      );
    } finally {
      await scheduler.stop();
      await queues.close();
      redis.disconnect();
    }
  });
});
