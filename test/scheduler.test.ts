import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { inject } from "vitest";
import { startScheduler, type SchedulerHandle } from "../scheduler.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { nextSlots, slotJobId } from "../src/scheduling/slots.js";
import { createAlerter } from "../src/alerts/create-alerter.js";
import { startHttpFaultProxy } from "./helpers/fault-proxy.js";
import { startWebhookReceiver } from "./helpers/webhook-receiver.js";
import { chromaStore, quietLogger, seedCollection, testConfig, uniqueName, uniquePrefix } from "./helpers/services.js";

const store = chromaStore();
const tag = uniqueName("sched");
const names = [`${tag}_a`, `${tag}_b`];
const other = uniqueName("unrelated");

beforeAll(async () => {
  for (const name of [...names, other]) await seedCollection(store, name, 3, 8);
});

interface Replica {
  redis: Redis;
  queues: QueueSet;
  handle?: SchedulerHandle;
}

async function replica(prefix: string): Promise<Replica> {
  const redis = createRedisConnection(inject("redisUrl"), "producer");
  await waitForRedis(redis, inject("redisUrl"));
  return { redis, queues: new QueueSet(redis, prefix) };
}

async function closeAll(replicas: Replica[]) {
  for (const r of replicas) {
    await r.handle?.stop();
    await r.queues.close();
    r.redis.disconnect();
  }
}

const options = (catchUpWindowMs: number) => ({ ...DEFAULTS.scheduler, catchUpWindowMs, slotClaimTtlMs: 600_000 });

/** A scheduler on one replica's connection, with a one-hour catch-up window and a fixed clock. */
const startAt = (r: Replica, schedule: Parameters<typeof startScheduler>[0]["schedule"], at: Date) =>
  startScheduler({
    schedule,
    options: options(3_600_000),
    redis: r.redis,
    queues: r.queues,
    chroma: store,
    logger: quietLogger(),
    now: () => at,
  });

describe("scheduler", () => {
  const replicas: Replica[] = [];
  afterAll(() => closeAll(replicas));

  it("three schedulers against one Redis produce exactly one job per (collection, slot)", async () => {
    const prefix = uniquePrefix("sched3");
    // Every second, so a few seconds cover several slots.
    const schedule = parseScheduleYaml(`jobs: [{ kind: probe, cron: "* * * * * *", collections: ["${tag}_*"] }]`, "test");
    const three = await Promise.all([replica(prefix), replica(prefix), replica(prefix)]);
    replicas.push(...three);
    for (const r of three) {
      r.handle = await startScheduler({
        schedule,
        options: options(0),
        redis: r.redis,
        queues: r.queues,
        chroma: store,
        logger: quietLogger(),
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 3500));
    for (const r of three) await r.handle?.stop();

    const jobs = await three[0]!.queues.get("probe").getJobs(["waiting"], 0, 1000);
    const slots = new Set(jobs.map((job) => Number(job.id!.split(".").pop())));
    expect(slots.size).toBeGreaterThanOrEqual(3);
    // Each slot: one job per matching collection, none for the unrelated collection, no duplicates.
    expect(jobs).toHaveLength(slots.size * names.length);
    for (const slot of slots) {
      for (const name of names) {
        const matching = jobs.filter((job) => job.id === slotJobId("probe", name, new Date(slot)));
        expect(matching).toHaveLength(1);
        expect(matching[0]!.data).toEqual({ collection: name });
      }
    }
    expect(jobs.some((job) => job.data.collection === other)).toBe(false);
  });

  it("enqueues the one slot missed within the catch-up window at start, once, and never older ones", async () => {
    const prefix = uniquePrefix("catchup");
    const schedule = parseScheduleYaml(
      `jobs:\n  - { kind: probe, cron: "0 3 * * *", collections: ["${names[0]}"] }\n  - { kind: probe, cron: "0 1 * * *", collections: ["${names[1]}"] }\n`,
      "test",
    );
    const at = new Date("2026-03-10T03:20:00Z");
    const first = await replica(prefix);
    const second = await replica(prefix);
    replicas.push(first, second);
    first.handle = await startAt(first, schedule, at);
    // 03:00 was 20 minutes ago: inside the window. 01:00 was 2h20 ago: outside it, so not replayed.
    expect(first.handle.catchUp.map((o) => o.enqueued)).toEqual([
      [slotJobId("probe", names[0]!, new Date("2026-03-10T03:00:00Z"))],
      [],
    ]);
    // A second scheduler starting in the same window finds the slot claimed.
    second.handle = await startAt(second, schedule, at);
    expect(second.handle.catchUp[0]!.enqueued).toEqual([]);
    expect(second.handle.catchUp[0]!.alreadyClaimed).toHaveLength(1);

    const jobs = await first.queues.get("probe").getJobs(["waiting"], 0, 100);
    expect(jobs.map((job) => job.id)).toEqual([slotJobId("probe", names[0]!, new Date("2026-03-10T03:00:00Z"))]);
  });

  it("enqueues a literal name that does not exist too (its job fails and says so), beside the rest", async () => {
    const prefix = uniquePrefix("missing");
    const r = await replica(prefix);
    replicas.push(r);
    const schedule = parseScheduleYaml(
      `jobs: [{ kind: probe, cron: "*/10 * * * *", collections: ["${names[0]}", "no_such_collection_zz"] }]`,
      "test",
    );
    r.handle = await startAt(r, schedule, new Date("2026-03-10T03:21:00Z"));
    expect(r.handle.catchUp[0]).toMatchObject({ missing: ["no_such_collection_zz"] });
    const slot = new Date("2026-03-10T03:20:00Z");
    expect(r.handle.catchUp[0]!.enqueued).toEqual([slotJobId("probe", names[0]!, slot), slotJobId("probe", "no_such_collection_zz", slot)]);
  });

  it("serves /livez, /readyz (Redis only) and /metrics on its HTTP port, and names a port already taken", async () => {
    const r = await replica(uniquePrefix("sched-ops"));
    replicas.push(r);
    const schedule = parseScheduleYaml(`jobs: [{ kind: backup, cron: "0 3 * * *", collections: ["${names[0]}"] }]`, "test");
    const deps = { schedule, options: options(0), redis: r.redis, queues: r.queues, chroma: chromaStore("http://127.0.0.1:9"), logger: quietLogger() };
    r.handle = await startScheduler({ ...deps, http: { port: 0, host: "127.0.0.1" } });
    const base = r.handle.ops!.url;
    expect((await fetch(`${base}/livez`)).status).toBe(200);
    // Chroma does not answer at that URL: the scheduler is ready all the same, it enqueues through outages.
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { redis: { ok: true, ms: expect.any(Number) } } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const tomorrow = nextSlots("0 3 * * *", "UTC", new Date(), 1)[0]!.getTime() / 1000;
    expect(metrics).toContain(`vectorkeeper_scheduler_next_slot_timestamp_seconds{entry="0",kind="backup"} ${tomorrow}`);
    expect(metrics).toContain('vectorkeeper_scheduler_slots_failed_total{kind="backup"} 0');
    // No probe entry, so no check of Chroma ran: no chroma_up series (at 0 it would fire VectorkeeperChromaDown).
    expect(metrics).not.toMatch(/^vectorkeeper_chroma_up/m);

    const port = Number(new URL(base).port);
    await expect(startScheduler({ ...deps, http: { port, host: "127.0.0.1" } })).rejects.toThrow(
      `HTTP_PORT: ${port} is already in use on 127.0.0.1 (another vectorkeeper daemon?)`,
    );
  });

  it("enqueues a probe slot's jobs without waiting for the Chroma alert's webhook, which still arrives", async () => {
    const receiver = await startWebhookReceiver();
    // Every webhook POST takes 5 s to get through (within the webhook's time limit): a scheduler that waited for it
    // would start after the alert arrived.
    const proxy = await startHttpFaultProxy(new URL(receiver.url).origin);
    proxy.inject({ method: "POST", fault: { kind: "delay", ms: 5_000 } });
    try {
      const prefix = uniquePrefix("sched-webhook");
      const loaded = testConfig({ VK_ALERT_WEBHOOK_URL: `${proxy.url}${new URL(receiver.url).pathname}` });
      const config = { ...loaded, queuePrefix: prefix, alerts: { ...loaded.alerts, webhookTimeoutMs: 30_000 } };
      const r = await replica(prefix);
      replicas.push(r);
      const schedule = parseScheduleYaml(`jobs: [{ kind: probe, cron: "* * * * *", collections: ["${names[0]}"] }]`, "test");
      const at = new Date("2026-03-10T03:20:30Z");
      r.handle = await startScheduler({
        schedule,
        options: options(3_600_000),
        redis: r.redis,
        queues: r.queues,
        chroma: chromaStore("http://127.0.0.1:9"),
        logger: quietLogger(),
        now: () => at,
        chromaAlerts: { alerter: createAlerter(config, r.redis, quietLogger()), afterFailures: 1 },
      });
      // Chroma is down: the slot's probe job is enqueued from the schedule's names, before the alert got through.
      expect(r.handle.catchUp[0]).toMatchObject({ chromaDown: true, enqueued: [slotJobId("probe", names[0]!, new Date("2026-03-10T03:20:00Z"))] });
      expect(receiver.received).toEqual([]);
      // The alert is still sent, and stop waits for it.
      await r.handle.stop();
      r.handle = undefined;
      expect(receiver.received.map((x) => [x.body.alert.check, x.body.alert.transition])).toEqual([["chroma", "fire"]]);
    } finally {
      await proxy.close();
      await receiver.close();
    }
  });

  it("reads remembered glob matches back from Redis checked: garbage there still leaves a slot its literal names", async () => {
    const prefix = uniquePrefix("sched-remembered");
    const r = await replica(prefix);
    replicas.push(r);
    const patterns = [names[0]!, `${tag}_*`];
    const schedule = parseScheduleYaml(`jobs: [{ kind: backup, cron: "0 3 * * *", collections: ${JSON.stringify(patterns)} }]`, "test");
    const hash = createHash("sha256").update(JSON.stringify(patterns)).digest("hex").slice(0, 16);
    await r.redis.set(`${prefix}:scheduler:resolved:backup:${hash}`, '{"not": "a list"}', "PX", 60_000);
    const at = new Date("2026-03-10T03:20:00Z");
    r.handle = await startScheduler({ schedule, options: options(3_600_000), redis: r.redis, queues: r.queues, chroma: chromaStore("http://127.0.0.1:9"), logger: quietLogger(), now: () => at });
    expect(r.handle.catchUp[0]).toMatchObject({ chromaDown: true, enqueued: [slotJobId("backup", names[0]!, new Date("2026-03-10T03:00:00Z"))] });
  });
});
