import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { ProbeResult } from "../src/jobs/probe.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { collect, spawnCli } from "./helpers/cli.js";
import { startTcpFaultProxy, type TcpFaultProxy } from "./helpers/fault-proxy.js";
import { ownRedis } from "./helpers/redis-server.js";
import { chromaStore, seedCollection, testEnv, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

/**
 * Redis goes away under a running daemon (the proxy in front of the run's Redis stops listening and cuts every
 * connection, as a killed Redis would) and comes back. The daemon's output must stay one JSON object per line, with
 * a bounded number of lines for the outage, and the daemon must work again afterwards. Six seconds of outage is as long
 * as the one that printed 63 dumps before the fix, and spans several reconnect attempts of every connection (200 ms
 * apart, growing); how repeats are counted across the 10-second interval is throttled-log.test's subject.
 */
const OUTAGE_MS = 6_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface LogLine {
  msg: string;
  level: number;
  time: string;
  [key: string]: unknown;
}

/** Every non-empty line parsed as JSON; a line that is not JSON fails the test with the line shown. */
function jsonLines(text: string): LogLine[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`not a JSON line: ${line.slice(0, 200)}`);
      }
    });
}

const proxies: TcpFaultProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

async function redisProxy(): Promise<TcpFaultProxy> {
  const target = new URL(inject("redisUrl"));
  const proxy = await startTcpFaultProxy({ host: target.hostname, port: Number(target.port || 6379) });
  proxies.push(proxy);
  return proxy;
}

/** Runs a daemon through an outage; returns its stderr lines, split at the outage's start and end. */
async function throughOutage(args: string[], env: Record<string, string>, proxy: TcpFaultProxy, startedMsg: string) {
  const child = spawnCli(args, env);
  const output = collect(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    await until(() => stderr.includes(`"msg":"${startedMsg}"`), 30_000, startedMsg);
    const before = stderr.length;
    await proxy.down();
    await sleep(OUTAGE_MS);
    await proxy.up();
    await until(() => stderr.includes('"msg":"redis connection restored"'), 30_000, "the daemon to see Redis again");
    return { child, output, during: () => stderr.slice(before), all: () => stderr };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

describe("daemon logs during a Redis outage", () => {
  it("the worker writes a few JSON lines, not error dumps, and runs jobs again when Redis returns", async () => {
    const proxy = await redisProxy();
    const env = testEnv({ REDIS_URL: `redis://${proxy.url}`, LOG_LEVEL: "info" });
    const collection = uniqueName("outage");
    await seedCollection(chromaStore(), collection, 10, 8);
    const run = await throughOutage(["worker", "--json"], env, proxy, "worker started");

    // Recovered: a job enqueued now (straight to Redis, not through the proxy) is taken and run.
    const connection = createRedisConnection(inject("redisUrl"), "worker");
    const queues = new QueueSet(connection, env.VK_QUEUE_PREFIX!);
    const events = new QueueEvents("probe", { connection: connection.duplicate(), prefix: env.VK_QUEUE_PREFIX! });
    try {
      await events.waitUntilReady();
      const job = await enqueue(queues, "probe", { collection });
      const result = (await job.waitUntilFinished(events, 30_000)) as ProbeResult;
      expect(result).toMatchObject({ collection, count: 10, ok: true });
    } finally {
      await events.close();
      await queues.close();
      connection.disconnect();
    }
    // Shutting down after an outage sometimes waits out the shutdown limit on a BullMQ blocking connection that is
    // still reconnecting (bullmq#4656); that is not what this test is about, so a second signal ends the wait.
    run.child.kill("SIGTERM");
    const second = setTimeout(() => run.child.kill("SIGTERM"), 5000);
    const { signal, stdout } = await run.output;
    clearTimeout(second);
    expect(signal).toBeNull();
    expect(jsonLines(stdout)).toHaveLength(1);

    const lines = jsonLines(run.all());
    const outage = jsonLines(run.during());
    const errors = outage.filter((line) => line.level >= 50);
    // Before: 63 multi-line dumps in 6 s. Now one line per distinct error per 10 s, from the connections and workers.
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.length).toBeLessThanOrEqual(8);
    expect(errors.every((line) => typeof line.reason === "string" && !String(line.reason).includes("\n"))).toBe(true);
    expect(lines.filter((line) => line.msg === "redis connection restored").length).toBeGreaterThanOrEqual(1);
  });

  it("the scheduler writes a few JSON lines, not error dumps, and says when Redis is back", async () => {
    const proxy = await redisProxy();
    const dir = tempDir("outage");
    writeFileSync(join(dir, "schedule.yaml"), `jobs: [{ kind: probe, cron: "0 0 1 1 *", collections: ["*"] }]\n`);
    const env = testEnv({ REDIS_URL: `redis://${proxy.url}`, LOG_LEVEL: "info", SCHEDULE_FILE: join(dir, "schedule.yaml") });
    const run = await throughOutage(["scheduler", "--json"], env, proxy, "scheduler started");
    run.child.kill("SIGTERM");
    const { code, stdout } = await run.output;
    expect(code).toBe(0);
    expect(jsonLines(stdout)).toHaveLength(1);

    const outage = jsonLines(run.during());
    // Before: 153 multi-line dumps in 25 s.
    const errors = outage.filter((line) => line.level >= 50);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.length).toBeLessThanOrEqual(4);
    expect(outage.some((line) => line.msg === "redis connection restored")).toBe(true);
  });

  it("library console output (BullMQ's eviction warning on every connection) becomes one JSON line", async () => {
    const redis = await ownRedis();
    const admin = new Redis(redis.url);
    await admin.config("SET", "maxmemory-policy", "allkeys-lru");
    admin.disconnect();
    try {
      const child = spawnCli(["worker", "--json"], testEnv({ REDIS_URL: redis.url, LOG_LEVEL: "info" }));
      const output = collect(child);
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      await until(() => stderr.includes('"msg":"worker started"'), 30_000, "worker started");
      // BullMQ checks each connection as it opens: give the workers' blocking connections time to open.
      await sleep(3000);
      child.kill("SIGTERM");
      const { code } = await output;
      expect(code).toBe(0);
      const lines = jsonLines(stderr);
      const eviction = lines.filter((line) => String(line.reason ?? line.msg).includes("Eviction policy is allkeys-lru"));
      expect(eviction).toHaveLength(1);
      expect(eviction[0]).toMatchObject({ msg: "library warning", level: 40, source: "console" });
      expect(lines.some((line) => line.msg.startsWith("REDIS MISCONFIGURED"))).toBe(true);
    } finally {
      await redis.stop();
    }
  });
});
