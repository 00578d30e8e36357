import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { collect, spawnCli } from "./helpers/cli.js";
import { startLatencyProxy } from "./helpers/latency-proxy.js";
import { chromaStore, chromaUrl, seedCollection, testEnv, uniqueName } from "./helpers/services.js";

const collection = uniqueName("shutdown");
let proxy: Awaited<ReturnType<typeof startLatencyProxy>>;

beforeAll(async () => {
  await seedCollection(chromaStore(), collection, 10, 16);
  // Each of the probe's five requests to Chroma takes 700 ms more: about 3.5 s per probe, longer than the forced
  // shutdown's 2 s wait.
  proxy = await startLatencyProxy(new URL(chromaUrl()), 700);
});
afterAll(() => proxy.close());

async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Starts the real `vectorkeeper worker`, enqueues a slow probe, and sends SIGTERM once the job is active. */
async function sigtermDuringJob(shutdownTimeoutMs: number) {
  const env = testEnv({ CHROMA_URL: proxy.url, VK_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs), LOG_LEVEL: "info" });
  const redis = createRedisConnection(env.REDIS_URL!, "producer");
  await waitForRedis(redis, env.REDIS_URL!);
  const queue = new Queue("probe", { connection: redis, prefix: env.VK_QUEUE_PREFIX });
  const child = spawnCli(["worker"], env);
  const exited = collect(child);
  try {
    const job = await queue.add("probe", { collection });
    await waitFor(async () => ((await job.getState()) === "active" ? true : undefined), 30_000, "the job to start");
    child.kill("SIGTERM");
    const result = await exited;
    return { result, state: await job.getState(), job: await queue.getJob(job.id!) };
  } finally {
    child.kill("SIGKILL");
    await queue.close();
    redis.disconnect();
  }
}

describe("graceful shutdown", () => {
  it("SIGTERM while a job runs lets it finish, then exits 0", async () => {
    const { result, state, job } = await sigtermDuringJob(30_000);
    expect(result.code).toBe(0);
    expect(state).toBe("completed");
    expect(job?.returnvalue).toMatchObject({ collection, count: 10, dimension: 16 });
    expect(result.stderr).toContain("waiting for active ones");
  });

  it("exits non-zero when active jobs outlive the shutdown limit, leaving the job to be retried", async () => {
    const { result, state } = await sigtermDuringJob(300);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("did not finish within the shutdown limit");
    expect(state).not.toBe("completed");
  });
});
