import { QueueEvents } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { LogChannel, WebhookChannel } from "../src/alerts/alert-channels.js";
import { AlertState } from "../src/alerts/alert-state.js";
import { Alerter, type Observation } from "../src/alerts/alerter.js";
import { checkBackupStaleness } from "../src/alerts/backup-staleness.js";
import { backup } from "../src/jobs/backup.js";
import { restore } from "../src/jobs/restore.js";
import { warm } from "../src/jobs/warm.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { startWebhookReceiver } from "./helpers/webhook-receiver.js";
import { chromaStore, jobContext, quietLogger, seedCollection, testConfig, uniqueName, uniquePrefix } from "./helpers/services.js";

const chroma = chromaStore();

describe("warm", () => {
  const wide = uniqueName("warm_wide");
  const narrow = uniqueName("warm_narrow");
  beforeAll(async () => {
    await seedCollection(chroma, wide, 300, 1536);
    await seedCollection(chroma, narrow, 50, 3);
  });

  it("reports cold and warm latency and stops once latency settles", async () => {
    const result = await warm.process(warm.payload.parse({ collection: wide, settleTolerance: 10 }), jobContext());
    expect(result.collection).toBe(wide);
    expect(result.coldMs).toBeGreaterThanOrEqual(0);
    expect(result.warmP50Ms!).toBeGreaterThan(0);
    expect(result.warmP50Ms!).toBeLessThanOrEqual(result.warmP95Ms!);
    // With a loose tolerance (a window of three within 11× of each other) it settles within a few windows and stops
    // there, far below its query limit (200); not always in the first window: under load one query can take 11× another
    // (seen in CI: 10 queries).
    expect(result.settled).toBe(true);
    expect(result.queries).toBeGreaterThanOrEqual(4);
    expect(result.queries).toBeLessThan(50);
  });

  it("stops when its budget is spent, and works on any dimension", async () => {
    const result = await warm.process(
      warm.payload.parse({ collection: narrow, settleTolerance: 0.000001, settleWindow: 50, budgetMs: 300, maxQueries: 100_000 }),
      jobContext(),
    );
    expect(result.settled).toBe(false);
    expect(result.queries).toBeGreaterThanOrEqual(2);
    expect(result.durationMs).toBeLessThan(5000);
    const limited = await warm.process(warm.payload.parse({ collection: narrow, settleTolerance: 0.000001, maxQueries: 5 }), jobContext());
    expect(limited).toMatchObject({ queries: 5, settled: false });
  });

  it("is asked for after a restore", async () => {
    const asked: [string, Record<string, unknown>][] = [];
    const ctx = jobContext({ followUp: async (kind, payload) => void asked.push([kind, payload]) });
    const made = await backup.process(backup.payload.parse({ collection: narrow }), ctx);
    const target = uniqueName("warm_restored");
    await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), ctx);
    expect(asked).toEqual([["warm", { collection: target }]]);
  });

  it("reports an empty collection without queries", async () => {
    const empty = uniqueName("warm_empty");
    await chroma.client.createCollection({ name: empty, embeddingFunction: null });
    expect(await warm.process(warm.payload.parse({ collection: empty }), jobContext())).toMatchObject({ queries: 0, coldMs: null });
  });
});

describe("alerts", () => {
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const redis = createRedisConnection(inject("redisUrl"), "producer");
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    await waitForRedis(redis, inject("redisUrl"));
  });
  afterAll(async () => {
    await receiver.close();
    redis.disconnect();
  });

  const alerterOn = (prefix: string) =>
    new Alerter(
      new AlertState(redis, prefix, 60_000),
      [new LogChannel(quietLogger()), new WebhookChannel({ url: receiver.url, headers: { "x-team": "search" }, timeoutMs: 2000 }, quietLogger())],
      quietLogger(),
    );
  const failing = (subject: string): Observation => ({ check: "probe", subject, ok: false, threshold: 3, summary: "Chroma does not answer" });

  it("fires once after three failures, stays quiet while failing, recovers once", async () => {
    const alerter = alerterOn(uniquePrefix("alerts"));
    const before = receiver.received.length;
    for (let i = 0; i < 6; i++) await alerter.observe(failing("products_v1"));
    await alerter.observe({ ...failing("products_v1"), ok: true, summary: "50000 records" });
    await alerter.observe({ ...failing("products_v1"), ok: true, summary: "50000 records" });
    const sent = receiver.received.slice(before);
    expect(sent.map((r) => r.body.alert.transition)).toEqual(["fire", "recover"]);
    expect(sent[0]!.body.text).toContain("probe failing for products_v1 (3 in a row)");
    expect(sent[0]!.headers["x-team"]).toBe("search");
  });

  it("two workers sharing Redis send one alert, not two", async () => {
    const prefix = uniquePrefix("alerts2");
    const [a, b] = [alerterOn(prefix), alerterOn(prefix)];
    const before = receiver.received.length;
    await Promise.all([a, b, a, b, a, b].map((alerter) => alerter.observe(failing("support_articles_v1"))));
    expect(receiver.received.slice(before).map((r) => r.body.alert.transition)).toEqual(["fire"]);
  });

  it("flags a collection whose last backup is older than the limit (injected clock)", async () => {
    const name = uniqueName("stale");
    await seedCollection(chroma, name, 5, 4);
    const ctx = jobContext();
    const made = await backup.process(backup.payload.parse({ collection: name }), ctx);
    const entries = parseScheduleYaml(`jobs: [{ kind: backup, cron: "0 3 * * *", collections: ["${name}"] }]`, "t").jobs;
    const alerter = alerterOn(uniquePrefix("stale"));
    const deps = { entries, chroma, backupStore: ctx.backupStore, alerter, maxAgeMs: 26 * 3_600_000, since: new Date() };
    const before = receiver.received.length;

    const fresh = await checkBackupStaleness(deps, new Date(Date.now() + 3_600_000));
    expect(fresh).toEqual([{ collection: name, lastBackupAt: expect.any(String), stale: false }]);
    const late = await checkBackupStaleness(deps, new Date(Date.now() + 27 * 3_600_000));
    expect(late[0]!.stale).toBe(true);
    const sent = receiver.received.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body.alert).toMatchObject({ transition: "fire", check: "backup-stale", subject: name });
    expect(made.backupId).toBeTruthy();
  });
});

describe("alerts from a running worker", () => {
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let worker: WorkerHandle;
  let config: ReturnType<typeof testConfig>;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    config = testConfig({ VK_ALERT_WEBHOOK_URL: receiver.url, VK_ALERT_PROBE_FAILURES: "3" });
    worker = await startWorker({ config, logger: quietLogger(), chroma });
  });
  afterAll(async () => {
    await worker.close();
    await receiver.close();
  });

  it("exports warm figures and the last success of each kind", async () => {
    const name = uniqueName("warm_metrics");
    await seedCollection(chroma, name, 40, 16);
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("warm", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    try {
      const job = await enqueue(worker.queues, "warm", { collection: name });
      await job.waitUntilFinished(events, 20_000);
    } finally {
      await events.close();
      connection.disconnect();
    }
    const metrics = await (await fetch(`${worker.ops.url}/metrics`)).text();
    for (const metric of ["warm_cold_latency_seconds", "warm_p50_latency_seconds", "warm_p95_latency_seconds"]) {
      expect(metrics).toMatch(new RegExp(`vectorkeeper_${metric}\\{collection="${name}"\\} \\d`));
    }
    expect(metrics).toMatch(new RegExp(`vectorkeeper_last_success_timestamp_seconds\\{kind="warm",collection="${name}"\\} 1\\d{9}`));
  });

  it("alerts once when a collection's probe fails three times in a row", async () => {
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("probe", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    try {
      for (let i = 0; i < 5; i++) {
        const job = await enqueue(worker.queues, "probe", { collection: "vanished_collection" });
        await job.waitUntilFinished(events, 20_000).catch(() => undefined);
      }
    } finally {
      await events.close();
      connection.disconnect();
    }
    const deadline = Date.now() + 5000;
    while (receiver.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received.map((r) => [r.body.alert.check, r.body.alert.transition, r.body.alert.subject])).toEqual([
      ["probe", "fire", "vanished_collection"],
    ]);
  });
});

describe("warming when a worker starts", () => {
  it("enqueues one warm job per collection, once for workers starting together", async () => {
    const name = uniqueName("warm_start");
    await seedCollection(chroma, name, 10, 8);
    const config = testConfig({ VK_WARM_ON_START: "true" });
    const [first, second] = [
      await startWorker({ config, logger: quietLogger(), chroma, kinds: ["probe"] }),
      await startWorker({ config, logger: quietLogger(), chroma, kinds: ["probe"] }),
    ];
    try {
      const deadline = Date.now() + 10_000;
      const mine = async () =>
        (await first.queues.get("warm").getJobs(["waiting"], 0, 100_000)).filter((job) => job.data.collection === name);
      while (Date.now() < deadline && (await mine()).length === 0) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
      expect(await mine()).toHaveLength(1);
    } finally {
      await first.close();
      await second.close();
    }
  });
});
