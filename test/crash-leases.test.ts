import type { ChildProcess } from "node:child_process";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupResult } from "../src/jobs/backup.js";
import type { RestoreResult } from "../src/jobs/restore.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { collect, runCli, spawnCli, type CliResult } from "./helpers/cli.js";
import { chromaStore, seedCollection, testEnv, uniqueName } from "./helpers/services.js";

// kill -9 tests in the spirit of kopia's: a process is stopped dead at a failpoint (VK_FAILPOINT) in the middle of a
// job, and what runs next must finish the work, not stand down before a lease nobody holds any more.
const chroma = chromaStore();
const collection = uniqueName("crash_leases");
const RECORDS = 300;
// Short leases keep the test short; the agreement between lease and job lock is what is tested, not the default.
const LEASE_MS = "3000";

beforeAll(() => seedCollection(chroma, collection, RECORDS, 32));

async function until<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A child process whose output (logs and failpoint notices) is watched as it comes. */
function watched(child: ChildProcess) {
  let output = "";
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = collect(child);
  return { child, exited, output: () => output };
}

const json = <T>(result: CliResult) => JSON.parse(result.stdout) as T;

describe("a worker killed mid-job, with a second worker running", () => {
  const { env: storeEnv } = STORES[0]!.open();
  const env = testEnv({ ...storeEnv, VK_LEASE_TTL_MS: LEASE_MS, LOG_LEVEL: "info" });
  const redis = createRedisConnection(env.REDIS_URL!, "producer");
  const queues = new QueueSet(redis, env.VK_QUEUE_PREFIX!);
  const workers: ChildProcess[] = [];
  beforeAll(() => waitForRedis(redis, env.REDIS_URL!));
  afterAll(async () => {
    for (const worker of workers) worker.kill("SIGKILL");
    await queues.close();
    redis.disconnect();
  });

  /** Worker 1 takes the job and dies at the failpoint; worker 2, started then, must complete the same job. */
  async function killFirstWorker<T>(
    kind: "backup" | "restore",
    failpoint: string,
    enqueueJob: () => Promise<Job>,
  ): Promise<{ result: T }> {
    const first = watched(spawnCli(["worker"], { ...env, VK_FAILPOINT: failpoint }));
    workers.push(first.child);
    const job = await enqueueJob();
    await until(() => (first.output().includes(`failpoint ${failpoint} reached`) ? true : undefined), 60_000, "the failpoint");
    const second = watched(spawnCli(["worker"], env));
    workers.push(second.child);
    first.child.kill("SIGKILL");
    await first.exited;
    const state = await until(
      async () => {
        const s = await queues.get(kind).getJob(job.id!).then((j) => j?.getState());
        return s === "completed" || s === "failed" ? s : undefined;
      },
      90_000,
      "the job to finish on the second worker",
    );
    const finished = await queues.get(kind).getJob(job.id!);
    expect(state, finished?.failedReason).toBe("completed");
    second.child.kill("SIGKILL");
    await second.exited;
    return { result: finished!.returnvalue as T };
  }

  it("retries a backup to a real, verifiable backup, never a skip before its own lease", async () => {
    const { result } = await killFirstWorker<BackupResult>("backup", "backup:before-manifest", () =>
      enqueue(queues, "backup", { collection, chunkRecords: 100 }),
    );
    expect(result.skipped).toBeUndefined();
    expect(result).toMatchObject({ collection, records: RECORDS, chunks: 3 });
    const verified = await runCli(["backups", "verify", result.backupId, "--json"], env);
    expect(verified.code, verified.stderr).toBe(0);
  }, 150_000);

  it("retries a restore to the full collection, leaving no staging collection", async () => {
    const made = await runCli(["run", "backup", "--collection", collection, "--json"], env);
    expect(made.code, made.stderr).toBe(0);
    const target = uniqueName("crash_restored");
    const { result } = await killFirstWorker<RestoreResult>("restore", "restore:before-swap", () =>
      enqueue(queues, "restore", { collection: target, backupId: json<BackupResult>(made).backupId }),
    );
    expect(result).toMatchObject({ collection: target, records: RECORDS });
    expect(await (await chroma.openCollection(target)).count()).toBe(RECORDS);
    expect((await chroma.listCollectionNames()).filter((name) => name.startsWith(`${target}__vk`))).toEqual([]);
  }, 150_000);
});

describe("a CLI run killed mid-backup", () => {
  it("does not block the next run: a lease of a dead process on this host is broken at once", async () => {
    const { env: storeEnv } = STORES[0]!.open();
    // The default lease lifetime: the next run must not wait for it to lapse.
    const env = testEnv(storeEnv);
    const killed = watched(spawnCli(["run", "backup", "--collection", collection], { ...env, VK_FAILPOINT: "backup:before-manifest" }));
    await until(() => (killed.output().includes("failpoint backup:before-manifest reached") ? true : undefined), 60_000, "the failpoint");
    killed.child.kill("SIGKILL");
    await killed.exited;

    const next = await runCli(["run", "backup", "--collection", collection, "--json"], env);
    expect(next.code, next.stderr).toBe(0);
    expect(json<BackupResult>(next)).toMatchObject({ records: RECORDS });
    expect(json<BackupResult>(next).skipped).toBeUndefined();
  }, 120_000);
});
