import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { cliHolder, LocalLocks, RedisLocks } from "../src/queues/locks.js";
import { pino } from "pino";
import { backup } from "../src/jobs/backup.js";
import { backupLease } from "../src/jobs/backup-fields.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { chromaStore, jobContext, uniqueName, uniquePrefix, vectors } from "./helpers/services.js";

const redis = createRedisConnection(inject("redisUrl"), "producer");
beforeAll(() => waitForRedis(redis, inject("redisUrl")));
afterAll(() => redis.disconnect());
const chroma = chromaStore();

/** The pid of a process that has exited (and so names no one). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

describe.each([
  { name: "Redis", make: () => new RedisLocks(redis, uniquePrefix("locks"), 30_000) },
  { name: "in-process", make: () => new LocalLocks(30_000) },
])("leases ($name)", ({ make }) => {
  it("refuses another holder, but lets a retry of the same job take over its own job's lease", async () => {
    const locks = make();
    const first = await locks.tryAcquire("backup:c", "job 1");
    expect(first).toMatchObject({ acquired: true });
    expect(await locks.tryAcquire("backup:c", "job 2")).toMatchObject({ acquired: false, heldBy: "job 1" });
    const retry = await locks.tryAcquire("backup:c", "job 1");
    expect(retry).toMatchObject({ acquired: true, tookOver: { from: "job 1", reason: "own" } });
    expect(await locks.holder("backup:c")).toBe("job 1");
    // An attempt judged dead but still running learns it before its next step that must not happen twice.
    await expect(first.confirm()).rejects.toThrow(/lease backup:c was taken over by job 1/);
    await retry.confirm();
    // The crashed attempt's release must not free the lease its retry now holds.
    await first.release();
    expect(await locks.holder("backup:c")).toBe("job 1");
    await retry.release();
    expect(await locks.holder("backup:c")).toBeUndefined();
  });

  it("breaks a lease whose holder is a dead CLI process on this host at once, and respects a live one", async () => {
    const locks = make();
    const dead = cliHolder(deadPid());
    await locks.tryAcquire("backup:d", dead);
    expect(await locks.holder("backup:d")).toBeUndefined();
    const next = await locks.tryAcquire("backup:d", cliHolder());
    expect(next).toMatchObject({ acquired: true, tookOver: { from: dead, reason: "dead" } });
    await next.release();

    const live = await locks.tryAcquire("backup:e", cliHolder(process.pid));
    expect(await locks.tryAcquire("backup:e", cliHolder(process.pid, "another-host"))).toMatchObject({ acquired: false });
    await live.release();
    // A lease of a process on another host is never judged from here: it lapses on its own.
    await locks.tryAcquire("backup:f", cliHolder(deadPid(), "another-host"));
    expect(await locks.tryAcquire("backup:f", cliHolder())).toMatchObject({ acquired: false });
  });
});

describe("a lease lost while its run goes on", () => {
  it("a renewal that finds the lease gone aborts the run's signal, and confirm no longer takes a lapsed lease back", async () => {
    const prefix = uniquePrefix("locks");
    const locks = new RedisLocks(redis, prefix, 900);
    const lease = await locks.tryAcquire("backup:lost", "job 1");
    // What a stalled run finds: its lease lapsed, and a retry ran to the end and released it.
    await redis.del(`${prefix}:lock:backup:lost`);
    await expect(lease.confirm()).rejects.toThrow("lease backup:lost lapsed");
    await new Promise<void>((resolve) => lease.lost.addEventListener("abort", () => resolve(), { once: true }));
    expect(String(lease.lost.reason)).toContain("this run stops");
    await lease.release();
  });

  it("a backup whose lease is lost mid-run stops reading and writes no manifest", async () => {
    const name = uniqueName("lease_lost");
    const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
    await collection.add({ ids: Array.from({ length: 300 }, (_, i) => `r${i}`), embeddings: vectors(300, 8, 6) });
    const prefix = uniquePrefix("locks");
    const logged: string[] = [];
    const ctx = jobContext({
      chroma,
      locks: new RedisLocks(redis, prefix, 900),
      logger: pino({ level: "warn" }, { write: (line: string) => void logged.push(line) }),
      progress: async ({ done }) => {
        if (done !== 50) return;
        // Lost after the first page: the renewal (every 500 ms) finds the lease gone before the next page is read.
        await redis.del(`${prefix}:lock:${backupLease(name)}`);
        await new Promise((resolve) => setTimeout(resolve, 1500));
      },
    });
    await expect(backup.process(backup.payload.parse({ collection: name, pageSize: 50 }), ctx)).rejects.toThrow("lapsed");
    expect((await completeBackups(ctx.backupStore, name)).backups).toEqual([]);
    expect(logged.join("")).toContain("lease lost; this run stops");
  });
});
