import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { QueueEvents } from "bullmq";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { startScheduler } from "../scheduler.js";
import { startWorker } from "../worker.js";
import { createAlerter } from "../src/alerts/create-alerter.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { scrape } from "./helpers/metrics-text.js";
import { chromaStore, quietLogger, seedCollection, testConfig, uniqueName } from "./helpers/services.js";

/** The shipped rules (deploy/prometheus) checked by promtool (Debian's `prometheus` package), against live /metrics. */
const DIR = fileURLToPath(new URL("../deploy/prometheus/", import.meta.url));

function promtool(args: string[], input?: string) {
  const run = spawnSync("promtool", args, { cwd: DIR, input, encoding: "utf8" });
  if (run.error) throw new Error(`promtool is needed (apt install prometheus): ${run.error.message}`);
  return run;
}

describe("deploy/prometheus", () => {
  it("is a valid rules file whose unit tests pass", () => {
    const check = promtool(["check", "rules", "alerts.yaml"]);
    expect(check.stdout + check.stderr).toContain("SUCCESS");
    expect(check.status).toBe(0);
    const tests = promtool(["test", "rules", "alerts.test.yaml", "alerts-drill.test.yaml"]);
    expect(tests.stdout + tests.stderr).toContain("SUCCESS");
    expect(tests.status).toBe(0);
  });

  it("uses only series a live worker and scheduler export, and their /metrics pass promtool check metrics", async () => {
    const name = uniqueName("prom_rules");
    const chroma = chromaStore();
    await seedCollection(chroma, name, 5, 4);
    const config = testConfig();
    const worker = await startWorker({ config, logger: quietLogger(), chroma, kinds: ["probe", "backup", "drill"] });
    const redis = createRedisConnection(config.redisUrl, "producer");
    await waitForRedis(redis, config.redisUrl);
    const queues = new QueueSet(redis, config.queuePrefix);
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("probe", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    const scheduler = await startScheduler({
      schedule: parseScheduleYaml(`jobs: [{ kind: probe, cron: "* * * * *", collections: ["${name}"] }]`, "test"),
      options: config.scheduler,
      redis,
      queues,
      chroma,
      logger: quietLogger(),
      chromaAlerts: { alerter: createAlerter(config, redis, quietLogger()), afterFailures: 3 },
      http: { port: 0, host: "127.0.0.1" },
    });
    try {
      // The catch-up pass enqueued this minute's probe; wait for it, then a backup and a drill, so every series exists.
      const probeJob = (await queues.get("probe").getJobs(["waiting", "active", "completed"], 0, 10))[0];
      await probeJob?.waitUntilFinished(events, 30_000);
      const backupEvents = new QueueEvents("backup", { connection, prefix: config.queuePrefix });
      await backupEvents.waitUntilReady();
      await (await queues.get("backup").add("backup", { collection: name })).waitUntilFinished(backupEvents, 30_000);
      await backupEvents.close();
      const drillEvents = new QueueEvents("drill", { connection, prefix: config.queuePrefix });
      await drillEvents.waitUntilReady();
      await (await queues.get("drill").add("drill", { collection: name })).waitUntilFinished(drillEvents, 60_000);
      await drillEvents.close();

      const exposition = (await scrape(worker.ops.url)) + (await scrape(scheduler.ops!.url));
      for (const text of [await scrape(worker.ops.url), await scrape(scheduler.ops!.url)]) {
        const lint = promtool(["check", "metrics"], text);
        expect(lint.stdout + lint.stderr).toBe("");
        expect(lint.status).toBe(0);
      }
      const rules = parse(readFileSync(`${DIR}alerts.yaml`, "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
      const used = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => r.expr.match(/vectorkeeper_[a-z_]+/g) ?? [])));
      expect(used.size).toBeGreaterThanOrEqual(7);
      for (const metric of used) expect(exposition, metric).toMatch(new RegExp(`^${metric}(\\{| )`, "m"));
    } finally {
      await scheduler.stop();
      await events.close();
      connection.disconnect();
      await queues.close();
      redis.disconnect();
      await worker.close();
    }
  });
});
