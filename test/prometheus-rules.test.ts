import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { QueueEvents } from "bullmq";
import { parse, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { startScheduler } from "../scheduler.js";
import { startWorker } from "../worker.js";
import { createAlerter } from "../src/alerts/create-alerter.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { scrape } from "./helpers/metrics-text.js";
import { chromaStore, quietLogger, seedCollection, testConfig, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

/** The shipped rules (deploy/prometheus) checked by promtool (Debian's `prometheus` package), against live /metrics. */
const DIR = fileURLToPath(new URL("../deploy/prometheus/", import.meta.url));

function promtool(args: string[], input?: string) {
  const run = spawnSync("promtool", args, { cwd: DIR, input, encoding: "utf8" });
  if (run.error) throw new Error(`promtool is needed (apt install prometheus): ${run.error.message}`);
  return run;
}

/** Every PromQL query of the Grafana dashboard (deploy/grafana/vectorkeeper.json). */
function dashboardQueries(): string[] {
  const dashboard = JSON.parse(readFileSync(`${DIR}../grafana/vectorkeeper.json`, "utf8")) as { panels: { targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
}

describe("deploy/prometheus", () => {
  it("has a Grafana dashboard whose every query is valid PromQL", () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThanOrEqual(10);
    // promtool parses expressions only in rules files: each query becomes a recording rule of a throwaway one.
    const dir = tempDir("grafana");
    const file = join(dir, "queries.yaml");
    writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: queries.map((expr, i) => ({ record: `dashboard:query${i}`, expr })) }] }));
    const check = promtool(["check", "rules", file]);
    expect(check.stdout + check.stderr).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(check.status).toBe(0);
  });

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
      // The Grafana dashboard's queries too.
      for (const metric of new Set(dashboardQueries().flatMap((q) => q.match(/vectorkeeper_[a-z_]+/g) ?? []))) {
        expect(exposition, metric).toMatch(new RegExp(`^${metric}(\\{| )`, "m"));
      }
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
