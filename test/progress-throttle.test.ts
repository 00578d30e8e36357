import { QueueEvents } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { backup } from "../src/jobs/backup.js";
import type { Progress } from "../src/jobs/job-context.js";
import { ProgressThrottle, withThrottledProgress } from "../src/jobs/progress-throttle.js";
import type { RestoreResult } from "../src/jobs/restore.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import type { StoredProgress } from "../src/queues/job-progress.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { chromaStore, jobContext, quietLogger, seedCollection, testConfig, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();
const RECORDS = 3000;
const INTERVAL = DEFAULTS.progress.intervalMs;

describe("a restore of many chunks through a worker", () => {
  const dir = tempDir("progress");
  const backupStore = new FsStore(dir);
  const config = testConfig({ BACKUP_URL: `file://${dir}` });
  let worker: WorkerHandle;
  let backupId: string;
  let chunks: number;

  beforeAll(async () => {
    const source = uniqueName("progress_src");
    await seedCollection(chroma, source, RECORDS, 16);
    // Deduplicated: chunks of ~6 records, so ~500 chunks, each of which the restore reports in both of its passes.
    const made = await backup.process(backup.payload.parse({ collection: source, dedupe: true }), jobContext({ chroma, backupStore }));
    backupId = made.backupId;
    chunks = made.chunks;
    worker = await startWorker({ config, logger: quietLogger(), chroma, backupStore, kinds: ["restore"] });
  });
  afterAll(() => worker.close());

  it("stores a bounded number of progress updates in Redis, the last one complete", async () => {
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("restore", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    try {
      const seen: { jobId: string; data: StoredProgress }[] = [];
      events.on("progress", ({ jobId, data }) => void seen.push({ jobId, data: data as StoredProgress }));
      const target = uniqueName("progress_restored");
      const started = performance.now();
      const job = await enqueue(worker.queues, "restore", { collection: target, backupId, batchSize: 100 });
      const result = (await job.waitUntilFinished(events, 120_000)) as RestoreResult;
      const elapsedMs = performance.now() - started;
      expect(result).toMatchObject({ records: RECORDS, chunks });
      expect(await (await chroma.openCollection(target)).count()).toBe(RECORDS);

      const updates = seen.filter((e) => e.jobId === job.id).map((e) => e.data);
      // At most one per interval, plus those sent at once: the first, each pass complete, the unit changing, the flush.
      const bound = Math.ceil(elapsedMs / INTERVAL) + 6;
      // Unthrottled, the restore sends one per chunk per pass, far over the bound (else this test proves nothing).
      expect(2 * chunks).toBeGreaterThan(3 * bound);
      expect(updates.length).toBeLessThanOrEqual(bound);
      // Each pass is seen complete, and the last update, in the event stream and on the job, is the whole restore.
      expect(updates).toContainEqual({ progress: 100, done: chunks, total: chunks, unit: "chunks verified" });
      const done = { progress: 100, done: RECORDS, total: RECORDS, unit: "records" };
      expect(updates.at(-1)).toEqual(done);
      expect((await worker.queues.get("restore").getJob(job.id!))?.progress).toEqual(done);
      // Never backwards within a pass.
      const records = updates.filter((u) => u.unit === "records").map((u) => u.done);
      expect(records).toEqual([...records].sort((a, b) => a - b));
    } finally {
      await events.close();
      connection.disconnect();
    }
  });
});

describe("progress throttle", () => {
  const recorder = () => {
    const sent: Progress[] = [];
    return { sent, send: async (p: Progress) => void sent.push(p) };
  };

  it("sends what it held back once the interval ends, without another report", async () => {
    const { sent, send } = recorder();
    const throttle = new ProgressThrottle(send, 100);
    for (let done = 1; done <= 50; done++) await throttle.report({ done, total: 1000, unit: "records" });
    expect(sent).toEqual([{ done: 1, total: 1000, unit: "records" }]);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(sent.at(-1)).toEqual({ done: 50, total: 1000, unit: "records" });
    expect(sent).toHaveLength(2);
    throttle.stop();
  });

  it("sends at once a completed total, another unit and a changed note; flush sends the last held value", async () => {
    const { sent, send } = recorder();
    const throttle = new ProgressThrottle(send, 60_000);
    await throttle.report({ done: 1, total: 3, unit: "chunks verified" });
    await throttle.report({ done: 2, total: 3, unit: "chunks verified" });
    await throttle.report({ done: 3, total: 3, unit: "chunks verified" });
    await throttle.report({ done: 0, total: 9, unit: "records" });
    await throttle.report({ done: 2, total: 9, unit: "records" });
    await throttle.report({ done: 3, total: 9, unit: "records", note: "limited to 5 records/s" });
    await throttle.report({ done: 4, total: 9, unit: "records", note: "limited to 5 records/s" });
    await throttle.report({ done: 5, total: 9, unit: "records", note: "limited to 5 records/s" });
    await throttle.flush();
    expect(sent.map((p) => `${p.done}/${p.total} ${p.unit}${p.note ? " (noted)" : ""}`)).toEqual([
      "1/3 chunks verified",
      "3/3 chunks verified",
      "0/9 records",
      "3/9 records (noted)",
      "5/9 records (noted)",
    ]);
    throttle.stop();
  });

  it("passes on a failure of a held-back send at the next report", async () => {
    let calls = 0;
    const throttle = new ProgressThrottle(async () => {
      if (++calls === 2) throw new Error("redis gone");
    }, 50);
    await throttle.report({ done: 1, unit: "records" });
    await throttle.report({ done: 2, unit: "records" });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await expect(throttle.report({ done: 3, unit: "records" })).rejects.toThrow("redis gone");
    throttle.stop();
  });

  it("sends a total once at once when reached, and throttles a count that runs past it", async () => {
    const { sent, send } = recorder();
    const throttle = new ProgressThrottle(send, 60_000);
    for (const done of [1, 10, 11, 12, 13]) await throttle.report({ done, total: 10, unit: "records copied" });
    await throttle.flush();
    expect(sent.map((p) => p.done)).toEqual([1, 10, 13]);
    throttle.stop();
  });

  it("sends nothing after stop, not even a send queued behind a slow one", async () => {
    const sent: number[] = [];
    let release: () => void = () => undefined;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const throttle = new ProgressThrottle(async (p) => {
      if (p.done === 1) await slow;
      sent.push(p.done);
    }, 20);
    const first = throttle.report({ done: 1, unit: "records" });
    await throttle.report({ done: 2, unit: "records" });
    // The timer starts the held send, which waits behind the first.
    await new Promise((resolve) => setTimeout(resolve, 80));
    throttle.stop();
    release();
    await first;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent).toEqual([1]);
  });

  it("does not fail a finished job when its last progress update cannot be sent, and logs it", async () => {
    const warnings: string[] = [];
    const logger = quietLogger();
    logger.warn = ((_: unknown, message: string) => void warnings.push(message)) as typeof logger.warn;
    const ctx = jobContext({
      logger,
      progress: async (p) => {
        if (p.done === 2) throw new Error("redis gone");
      },
    });
    const result = await withThrottledProgress(
      ctx,
      async (throttled) => {
        await throttled.progress({ done: 1, total: 5, unit: "records" });
        await throttled.progress({ done: 2, total: 5, unit: "records" });
        return "finished";
      },
      60_000,
    );
    expect(result).toBe("finished");
    expect(warnings).toEqual(["could not send the job's last progress update"]);
  });
});
