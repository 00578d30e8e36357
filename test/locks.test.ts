import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { cliHolder, LocalLocks, RedisLocks } from "../src/queues/locks.js";
import { uniquePrefix } from "./helpers/services.js";

const redis = createRedisConnection(inject("redisUrl"), "producer");
beforeAll(() => waitForRedis(redis, inject("redisUrl")));
afterAll(() => redis.disconnect());

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
