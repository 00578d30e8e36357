import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { QueueEvents } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import type { BackupResult } from "../src/jobs/backup.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { collect, runCli, spawnCli } from "./helpers/cli.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { startLatencyProxy } from "./helpers/latency-proxy.js";
import { chromaStore, chromaUrl, quietLogger, seedCollection, testConfig, testEnv, uniqueName } from "./helpers/services.js";
import { tempFile } from "./helpers/temp-dir.js";

const chroma = chromaStore();
const collection = uniqueName("cli_backup");
const fsStore = STORES[0]!;
const s3Store = STORES[1]!;

beforeAll(() => seedCollection(chroma, collection, 600, 64));

const json = <T>(stdout: string) => JSON.parse(stdout) as T;

/** A schedule without backup entries, so a prune without --keep-* has no retention to fall back on. */
function probeOnlySchedule(): string {
  const file = tempFile("sched", "schedule.yaml");
  writeFileSync(file, `jobs: [{ kind: probe, cron: "* * * * *", collections: ["*"] }]\n`);
  return file;
}

describe("backup, list, verify, restore and prune from the command line", () => {
  const { env: storeEnv } = s3Store.open();
  const env = testEnv(storeEnv);

  it("round-trips through a real S3 server with one JSON object per command", async () => {
    const made = await runCli(["run", "backup", "--collection", collection, "--chunk-records", "250", "--json"], env);
    expect(made.code).toBe(0);
    const result = json<BackupResult>(made.stdout);
    expect(result).toMatchObject({ collection, records: 600, chunks: 3, consistent: true });
    expect(result.bytes).toBeGreaterThan(600 * 64 * 4 * 0.5);
    expect(result.durationMs).toBeGreaterThan(0);

    const listed = json<{ backups: { backupId: string; records: number }[] }>((await runCli(["backups", "list", "--json"], env)).stdout);
    expect(listed.backups).toEqual([expect.objectContaining({ backupId: result.backupId, records: 600 })]);

    const verified = await runCli(["backups", "verify", result.backupId, "--json"], env);
    expect(verified.code).toBe(0);
    expect(json(verified.stdout)).toMatchObject({ chunksChecked: 3, recordsChecked: 600 });

    const target = uniqueName("cli_restored");
    const restored = await runCli(["restore", result.backupId, "--to", target, "--json"], env);
    expect(restored.code).toBe(0);
    expect(json(restored.stdout)).toMatchObject({ backupId: result.backupId, collection: target, records: 600 });
    expect(await (await chroma.openCollection(target)).count()).toBe(600);
  });

  it("gives one line and a non-zero exit for each kind of bad input", async () => {
    const listBackups = async () => json<{ backups: unknown[] }>((await runCli(["backups", "list", "--json"], env)).stdout).backups;
    const before = await listBackups();
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [["run", "backup", "--collection", "no_such_coll"], {}, 2, /collection "no_such_coll" does not exist/],
      [["restore", "20260101T000000000Z-abcdef", "--to", "x_target"], {}, 2, /backup 20260101T000000000Z-abcdef not found in s3:\/\/vk-test/],
      [["restore", "yesterday", "--to", "x_target"], {}, 2, /is not a backup id .*"yesterday"/],
      [["backups", "verify", "20260101T000000000Z-abcdef"], {}, 2, /not found/],
      [["backups", "prune", "--collection", collection], { SCHEDULE_FILE: probeOnlySchedule() }, 2, /no retention for/],
      [["run", "verify", "--collection", collection, "--sample", "0"], {}, 2, /--sample: /],
      [["run", "backup", "--collection", collection, "--replace"], {}, 2, /--replace does not apply to backup/],
      [["run", "backup", "--collection", collection], { BACKUP_URL: "s3://no-such-bucket/x" }, 2, /bucket "no-such-bucket" does not exist/],
      [["run", "backup", "--collection", collection], { AWS_ACCESS_KEY_ID: "WRONGKEY" }, 2, /S3 refused the credentials/],
      [["run", "backup", "--collection", collection], { S3_ENDPOINT: "http://127.0.0.1:9" }, 1, /S3 endpoint does not answer/],
      [["run", "backup", "--collection", collection], { BACKUP_URL: "ftp://x" }, 2, /BACKUP_URL: must be s3:\/\/bucket\/prefix/],
    ];
    for (const [args, extra, code, message] of cases) {
      const result = await runCli(args, { ...env, ...extra });
      expect({ args, extra, code: result.code }).toEqual({ args, extra, code });
      const lines = result.stderr.trim().split("\n");
      expect(lines, args.join(" ")).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
    // None of those failures left a backup behind.
    expect(await listBackups()).toEqual(before);
    // Thirteen CLI processes one after another: minutes on a loaded two-core machine.
  }, 240_000);
});

describe("a backup killed mid-way", () => {
  const { env: storeEnv } = fsStore.open();
  // Leftovers younger than one lease lifetime are never collected; a short one lets `--grace-hours 0` act at once.
  const env = testEnv({ ...storeEnv, VK_LEASE_TTL_MS: "1000" });
  const root = fileURLToPath(storeEnv.BACKUP_URL!);
  let proxy: Awaited<ReturnType<typeof startLatencyProxy>>;
  beforeAll(async () => {
    proxy = await startLatencyProxy(new URL(chromaUrl()), 150);
  });
  afterAll(() => proxy.close());

  it("leaves no listed backup; the next backup succeeds; prune collects the leftovers after the grace period", async () => {
    const child = spawnCli(["run", "backup", "--collection", collection, "--page-size", "50", "--chunk-records", "50"], {
      ...env,
      CHROMA_URL: proxy.url,
    });
    const exited = collect(child);
    const folder = join(root, collection);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !(existsSync(folder) && readdirSync(folder).some((id) => readdirSync(join(folder, id)).length >= 2))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");
    const [killedId] = readdirSync(folder);
    expect(readdirSync(join(folder, killedId!))).not.toContain("manifest.json");

    const listed = json<{ backups: unknown[] }>((await runCli(["backups", "list", "--collection", collection, "--json"], env)).stdout);
    expect(listed.backups).toEqual([]);

    // The killed run's lease names a process that is gone: the next run breaks it rather than standing down.
    const next = await runCli(["run", "backup", "--collection", collection, "--json"], env);
    expect(next.code).toBe(0);
    const { backupId } = json<BackupResult>(next.stdout);

    const young = json<{ leftoversKept: string[]; leftoversDeleted: string[] }>(
      (await runCli(["backups", "prune", "--collection", collection, "--keep-last", "5", "--json"], env)).stdout,
    );
    expect(young).toMatchObject({ leftoversKept: [killedId], leftoversDeleted: [] });

    const pruned = await runCli(["backups", "prune", "--collection", collection, "--keep-last", "5", "--grace-hours", "0", "--json"], env);
    expect(json(pruned.stdout)).toMatchObject({ leftoversDeleted: [killedId], deleted: [] });
    expect(readdirSync(folder)).toEqual([backupId]);
  });
});

describe("backups through the queue", () => {
  const { env: storeEnv } = fsStore.open();
  const config = testConfig(storeEnv);
  let worker: WorkerHandle;
  beforeAll(async () => {
    worker = await startWorker({ config, logger: quietLogger(), chroma });
  });
  afterAll(() => worker.close());

  it("runs a scheduled-style backup with retention and reports progress", async () => {
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("backup", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    try {
      const results: BackupResult[] = [];
      for (let i = 0; i < 3; i++) {
        const job = await enqueue(worker.queues, "backup", { collection, keep: { last: 2 } });
        results.push((await job.waitUntilFinished(events, 30_000)) as BackupResult);
        const finished = await worker.queues.get("backup").getJob(job.id!);
        // The percentage under `progress` is what bull-board draws its bar from.
        expect(finished?.progress).toEqual({ progress: 100, done: 600, total: 600, unit: "records" });
      }
      expect(results[2]!.pruned?.deleted).toEqual([results[0]!.backupId]);
      const listed = json<{ backups: { backupId: string }[] }>(
        (await runCli(["backups", "list", "--collection", collection, "--json"], testEnv(storeEnv))).stdout,
      );
      expect(listed.backups.map((b) => b.backupId)).toEqual([results[2]!.backupId, results[1]!.backupId]);
      const metrics = await (await fetch(`${worker.ops.url}/metrics`)).text();
      expect(metrics).toContain('vectorkeeper_jobs_completed_total{kind="backup"} 3');
    } finally {
      await events.close();
      connection.disconnect();
    }
  });
});

