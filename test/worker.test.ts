import { QueueEvents, type Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import type { ProbeResult } from "../src/jobs/probe.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import type { LocalChroma } from "../src/storage/chroma/local-server.js";
import { chromaStore, quietLogger, seedCollection, startTestChroma, testConfig, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const store = chromaStore();
const collection = uniqueName("worker_probe");
const auth = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
});

/** Listens before any job is added: a job that finishes before a late listener attaches would never be seen. */
async function listen(config: ReturnType<typeof testConfig>) {
  const connection = createRedisConnection(config.redisUrl, "worker");
  const events = new QueueEvents("probe", { connection, prefix: config.queuePrefix });
  await events.waitUntilReady();
  return {
    finished: (job: Job) => job.waitUntilFinished(events, 30_000) as Promise<unknown>,
    close: async () => {
      await events.close();
      connection.disconnect();
    },
  };
}

describe("worker with ops server", () => {
  const config = testConfig({ DASHBOARD_USER: "ops", DASHBOARD_PASSWORD: "s3cret-pass" });
  let worker: WorkerHandle;
  let events: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    await seedCollection(store, collection, 25, 1536);
    events = await listen(config);
    worker = await startWorker({ config, logger: quietLogger(), chroma: store });
  });
  afterAll(async () => {
    await events.close();
    expect(await worker.close()).toBe(false);
  });

  it("runs an enqueued probe and exports its figures as metrics", async () => {
    const job = await enqueue(worker.queues, "probe", { collection });
    const result = (await events.finished(job)) as ProbeResult;
    expect(result).toMatchObject({ collection, count: 25, dimension: 1536, ok: true });

    const metrics = await (await fetch(`${worker.ops.url}/metrics`)).text();
    expect(metrics).toContain(`vectorkeeper_collection_records{collection="${collection}"} 25`);
    expect(metrics).toContain(`vectorkeeper_probe_up{collection="${collection}"} 1`);
    expect(metrics).toMatch(new RegExp(`vectorkeeper_probe_query_latency_seconds\\{collection="${collection}"\\} \\d`));
    expect(metrics).toContain('vectorkeeper_jobs_completed_total{kind="probe"} 1');
    expect(metrics).toContain('vectorkeeper_job_duration_seconds_count{kind="probe",outcome="completed"} 1');
    expect(metrics).toContain('vectorkeeper_jobs{queue="probe",state="completed"} 1');
    expect(metrics).toContain("vectorkeeper_process_resident_memory_bytes");
  });

  it("fails a probe of a missing collection once, without retries, and counts it", async () => {
    const job = await enqueue(worker.queues, "probe", { collection: "no_such_collection_zz" });
    await expect(events.finished(job)).rejects.toThrow(/does not exist/);
    const failed = await worker.queues.get("probe").getJob(job.id!);
    expect(failed?.attemptsMade).toBe(1);
    const metrics = await (await fetch(`${worker.ops.url}/metrics`)).text();
    expect(metrics).toContain('vectorkeeper_job_failures_total{kind="probe",final="true"} 1');
    expect(metrics).toContain('vectorkeeper_probe_up{collection="no_such_collection_zz"} 0');
  });

  it("fails a job with an invalid payload without retrying it", async () => {
    // Bypasses enqueue()'s validation, as a foreign producer could.
    const job = await worker.queues.get("probe").add("raw", { collection: "x", extra: 1 }, { attempts: 5 });
    await expect(events.finished(job)).rejects.toThrow(/invalid probe payload/);
    expect((await worker.queues.get("probe").getJob(job.id!))?.attemptsMade).toBe(1);
  });

  it("answers /livez and /readyz", async () => {
    expect((await fetch(`${worker.ops.url}/livez`)).status).toBe(200);
    const ready = await fetch(`${worker.ops.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, checks: { redis: { ok: true }, chroma: { ok: true } } });
  });

  it("serves the dashboard only with the right credentials", async () => {
    expect((await fetch(`${worker.ops.url}/dashboard`)).status).toBe(401);
    expect((await fetch(`${worker.ops.url}/dashboard`, { headers: auth("ops", "wrong") })).status).toBe(401);
    expect((await fetch(`${worker.ops.url}/dashboard/api/queues`)).status).toBe(401);
    const page = await fetch(`${worker.ops.url}/dashboard`, { headers: auth("ops", "s3cret-pass") });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    const api = await fetch(`${worker.ops.url}/dashboard/api/queues`, { headers: auth("ops", "s3cret-pass") });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name)).toContain("probe");
  });
});

describe("worker without dashboard credentials", () => {
  it("does not serve the dashboard at all", async () => {
    const worker = await startWorker({ config: testConfig(), logger: quietLogger(), chroma: store });
    try {
      expect((await fetch(`${worker.ops.url}/dashboard`)).status).toBe(404);
      expect((await fetch(`${worker.ops.url}/livez`)).status).toBe(200);
    } finally {
      await worker.close();
    }
  });
});

describe("/readyz when Chroma stops", () => {
  let local: LocalChroma;
  const dir = tempDir("ready");
  afterAll(async () => {
    await local?.stop();
  });

  it("turns 503 and names Chroma as the reason", async () => {
    local = await startTestChroma({ path: dir });
    const worker = await startWorker({ config: testConfig({ CHROMA_URL: local.url }), logger: quietLogger(), chroma: chromaStore(local.url) });
    try {
      expect((await fetch(`${worker.ops.url}/readyz`)).status).toBe(200);
      await local.stop();
      const down = await fetch(`${worker.ops.url}/readyz`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { reason: string; checks: { redis: { ok: boolean } } };
      expect(body.reason).toContain(`Chroma at ${local.url}`);
      expect(body.checks.redis.ok).toBe(true);
      // Liveness is not readiness: the process itself is fine.
      expect((await fetch(`${worker.ops.url}/livez`)).status).toBe(200);
    } finally {
      await worker.close();
    }
  });
});
