import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startScheduler, type SchedulerHandle } from "../scheduler.js";
import { startWorker, type WorkerHandle } from "../worker.js";
import { createAlerter } from "../src/alerts/create-alerter.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { redactUrl } from "../src/redact.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { slotJobId } from "../src/scheduling/slots.js";
import { enqueueUnchecked } from "../src/queues/enqueue.js";
import { slotJobOptions } from "../src/queues/slot-retry.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import type { LocalChroma } from "../src/storage/chroma/local-server.js";
import { eventually, scrape, seriesValue } from "./helpers/metrics-text.js";
import { startWebhookReceiver } from "./helpers/webhook-receiver.js";
import { chromaStore, quietLogger, seedCollection, startTestChroma, testConfig, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

/**
 * Chroma stopped under a running worker and scheduler (a Chroma of this test's own, restarted on the same port and
 * data directory): the outage is exported, alerted once after N failures and once on recovery, per server and per
 * collection, and a backup slot inside the outage still yields its backup.
 */
describe("a Chroma outage", () => {
  const dir = tempDir("outage");
  let chroma: LocalChroma;
  const stops: (() => Promise<unknown>)[] = [];
  const restart = async () => {
    chroma = await startTestChroma({ path: dir, port: chroma.port });
  };

  beforeAll(async () => {
    chroma = await startTestChroma({ path: dir });
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });
  afterAll(async () => {
    await chroma.stop();
  });

  async function schedulerFor(
    config: ReturnType<typeof testConfig>,
    yaml: string,
    afterFailures: number,
    now?: () => Date,
  ): Promise<SchedulerHandle> {
    const redis = createRedisConnection(config.redisUrl, "producer");
    await waitForRedis(redis, config.redisUrl);
    const queues = new QueueSet(redis, config.queuePrefix);
    const handle = await startScheduler({
      schedule: parseScheduleYaml(yaml, "test"),
      options: { ...config.scheduler, catchUpIntervalMs: 500 },
      redis,
      queues,
      chroma: chromaStore(chroma.url),
      logger: quietLogger(),
      chromaAlerts: { alerter: createAlerter(config, redis, quietLogger()), afterFailures },
      http: { port: 0, host: "127.0.0.1" },
      ...(now ? { now } : {}),
    });
    stops.push(async () => {
      await handle.stop();
      await queues.close();
      redis.disconnect();
    });
    return handle;
  }

  /** The scheduler's chroma_up once it reads `want` (a heartbeat slower than its limit on a loaded machine reads 0). */
  const chromaUp = async (scheduler: SchedulerHandle, want: number) =>
    seriesValue(await eventually(() => scrape(scheduler.ops!.url), (t) => seriesValue(t, "vectorkeeper_chroma_up") === want), "vectorkeeper_chroma_up");

  it("sets chroma_up 0, fails the collections' probes, alerts after N failures and once on recovery", async () => {
    const literal = uniqueName("outage_named");
    const globbed = `${uniqueName("outage_glob")}_x`;
    const store = chromaStore(chroma.url);
    await seedCollection(store, literal, 5, 8);
    await seedCollection(store, globbed, 5, 8);
    const receiver = await startWebhookReceiver();
    stops.push(() => receiver.close());
    const config = testConfig({ CHROMA_URL: chroma.url, VK_ALERT_WEBHOOK_URL: receiver.url, VK_ALERT_PROBE_FAILURES: "2" });
    const worker: WorkerHandle = await startWorker({ config, logger: quietLogger(), chroma: store, kinds: ["probe"] });
    stops.push(() => worker.close());
    const glob = `${globbed.slice(0, -2)}*`;
    // Every second, so the test sees several ticks in a few seconds.
    const scheduler = await schedulerFor(config, `jobs: [{ kind: probe, cron: "* * * * * *", collections: ["${literal}", "${glob}"] }]`, 2);
    const up = (name: string) => `vectorkeeper_probe_up{collection="${name}"}`;
    const both = (text: string, value: number) => seriesValue(text, up(literal)) === value && seriesValue(text, up(globbed)) === value;

    expect(both(await eventually(() => scrape(worker.ops.url), (t) => both(t, 1)), 1)).toBe(true);
    expect(await chromaUp(scheduler, 1)).toBe(1);

    await chroma.stop();
    const server = redactUrl(chroma.url);
    const fired = (check: string, subject: string) =>
      receiver.received.some((r) => r.body.alert.transition === "fire" && r.body.alert.check === check && r.body.alert.subject === subject);
    await eventually(async () => receiver.received.length, () => fired("chroma", server) && fired("probe", literal) && fired("probe", globbed));
    expect(fired("chroma", server)).toBe(true);
    expect(fired("probe", literal)).toBe(true);
    expect(fired("probe", globbed)).toBe(true);
    expect(seriesValue(await scrape(scheduler.ops!.url), "vectorkeeper_chroma_up")).toBe(0);
    // The probes failed rather than vanished: both collections still have a series, at 0.
    expect(both(await scrape(worker.ops.url), 0)).toBe(true);

    await restart();
    const recovered = (check: string, subject: string) =>
      receiver.received.some((r) => r.body.alert.transition === "recover" && r.body.alert.check === check && r.body.alert.subject === subject);
    await eventually(async () => receiver.received.length, () => recovered("chroma", server) && recovered("probe", literal) && recovered("probe", globbed));
    expect(both(await eventually(() => scrape(worker.ops.url), (t) => both(t, 1)), 1)).toBe(true);
    expect(await chromaUp(scheduler, 1)).toBe(1);
    // Each alert fired once and then recovered. (A heartbeat slower than its time limit on a loaded machine may
    // start a new outage later, so only the first two transitions are this test's.)
    const transitions = (subject: string, check: string) =>
      receiver.received.filter((r) => r.body.alert.subject === subject && r.body.alert.check === check).map((r) => r.body.alert.transition);
    expect(transitions(server, "chroma").slice(0, 2)).toEqual(["fire", "recover"]);
    expect(transitions(literal, "probe").slice(0, 2)).toEqual(["fire", "recover"]);
    expect(transitions(globbed, "probe").slice(0, 2)).toEqual(["fire", "recover"]);
  });

  it("enqueues a backup slot while Chroma is down, and the job backs up once Chroma is back", async () => {
    const name = uniqueName("outage_backup");
    await seedCollection(chromaStore(chroma.url), name, 30, 8);
    const backupStore = new FsStore(tempDir("outage-backups"));
    const config = testConfig({ CHROMA_URL: chroma.url });
    await chroma.stop();
    // The scheduler's clock stands still inside one minute, so its catch-up passes all see the slot asserted here
    // whenever the test crosses a minute boundary.
    const started = new Date();
    const slot = new Date(Math.floor(started.getTime() / 60_000) * 60_000);
    const clock = () => new Date(slot.getTime() + 30_000);
    // The current minute's slot is inside the catch-up window: the first pass enqueues it, with Chroma down.
    const scheduler = await schedulerFor(config, `jobs: [{ kind: backup, cron: "* * * * *", collections: ["${name}"] }]`, 3, clock);
    const jobId = slotJobId("backup", name, slot);
    expect(scheduler.catchUp[0]).toMatchObject({ enqueued: [jobId], chromaDown: true });

    const worker = await startWorker({ config, logger: quietLogger(), chroma: chromaStore(chroma.url), backupStore, kinds: ["backup"] });
    stops.push(() => worker.close());
    const job = async () => worker.queues.get("backup").getJob(jobId);
    // The first attempt fails on the outage and is put back with a delay, not failed for good.
    const retrying = await eventually(job, (j) => (j?.attemptsMade ?? 0) >= 1, 20_000);
    expect(await retrying!.getState()).toBe("delayed");
    expect(retrying!.opts.attempts).toBeGreaterThan(DEFAULTS.jobs.attempts);

    await restart();
    const finished = await eventually(job, (j) => j?.finishedOn !== undefined, 60_000);
    expect(await finished!.getState()).toBe("completed");
    expect(finished!.returnvalue).toMatchObject({ collection: name, records: 30 });
    // (A minute boundary during the test may add the next slot's backup; this slot's is the one asserted.)
    const { backups } = await completeBackups(backupStore, name);
    const made = backups.find((b) => b.backupId === (finished!.returnvalue as { backupId: string }).backupId);
    expect(made?.manifest.records).toBe(30);
  });

  it("fails a scheduled job for good once its slot is over, counted as final and alerted", async () => {
    const name = uniqueName("outage_final");
    await seedCollection(chromaStore(chroma.url), name, 5, 4);
    const receiver = await startWebhookReceiver();
    stops.push(() => receiver.close());
    const config = testConfig({ CHROMA_URL: chroma.url, VK_ALERT_WEBHOOK_URL: receiver.url });
    await chroma.stop();
    stops.push(restart);
    const worker = await startWorker({ config, logger: quietLogger(), chroma: chromaStore(chroma.url), kinds: ["backup"] });
    stops.push(() => worker.close());
    // A slot useful for two more seconds: one outage retry, then the kind's usual attempts, then the end.
    const jobOptions = slotJobOptions("backup", Date.now() + 2000, Date.now());
    const job = await enqueueUnchecked(worker.queues, "backup", { collection: name }, { jobId: `final-${name}`, ...(jobOptions ? { jobOptions } : {}) });
    const state = await eventually(() => job.getState(), (s) => s === "failed", 60_000);
    expect(state).toBe("failed");
    const failures = `vectorkeeper_job_failures_total{kind="backup",final="true"}`;
    expect(seriesValue(await eventually(() => scrape(worker.ops.url), (t) => seriesValue(t, failures) === 1, 5000), failures)).toBe(1);
    await eventually(async () => receiver.received.length, (n) => n > 0, 5000);
    expect(receiver.received.map((r) => [r.body.alert.check, r.body.alert.transition, r.body.alert.subject])).toEqual([["job:backup", "fire", name]]);
  });
});
