import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { SERVED_KINDS } from "../src/queues/catalogue.js";
import type { BackupResult } from "../src/jobs/backup.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { runCli, runCliOnTty } from "./helpers/cli.js";
import { startLatencyProxy } from "./helpers/latency-proxy.js";
import { chromaStore, chromaUrl, quietLogger, seedCollection, testConfig, testEnv, uniqueName } from "./helpers/services.js";

const chroma = chromaStore();
const oneLine = (stderr: string) => {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
};

// Each case starts the real CLI (a second or more each, several on a loaded two-core machine).
const SLOW = { timeout: 180_000 };

describe("usage errors", () => {
  it("commander's own errors are one line with exit 2, a suggestion folded in", SLOW, async () => {
    const cases: [string[], RegExp][] = [
      [["bakup"], /^vectorkeeper: unknown command 'bakup' \(did you mean backups\?\)/],
      [["run", "probe", "--collection", "abc", "--bogus"], /^vectorkeeper: unknown option '--bogus'/],
      [["run"], /^vectorkeeper: missing required argument 'kind'/],
      [["restore"], /^vectorkeeper: missing required argument 'backupId'/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, testEnv())));
    cases.forEach(([args, message], i) => {
      expect({ args, code: results[i]!.code }).toEqual({ args, code: 2 });
      expect(oneLine(results[i]!.stderr)).toMatch(message);
    });
    const json = await runCli(["bakup", "--json"], testEnv());
    expect(JSON.parse(json.stdout)).toEqual({ error: expect.stringContaining("unknown command 'bakup'") });
  });

  it("prints its version", SLOW, async () => {
    const result = await runCli(["--version"], testEnv());
    expect(result.code).toBe(0);
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(result.stdout.trim()).toBe(pkg.version);
  });

  it("run --help and enqueue --help list the job kinds", SLOW, async () => {
    const helps = await Promise.all(["run", "enqueue"].map((command) => runCli([command, "--help"], testEnv())));
    for (const help of helps) {
      expect(help.code).toBe(0);
      const flat = help.stdout.replace(/\s+/g, " ");
      expect(flat).toContain(`the job kind: ${SERVED_KINDS.join(", ")}`);
    }
  });

  it("names the flag the user typed, and a missing one as missing", SLOW, async () => {
    const cases: [string[], string][] = [
      [["restore", "x", "--to", "x"], "vectorkeeper: restore: --to: must be 3-512 characters"],
      [["restore", "20261123T030000123Z-3f9a1c"], "vectorkeeper: restore: --to is required"],
      [["run", "restore", "--to", "some_target"], "vectorkeeper: restore: --backup-id is required"],
      [["run", "restore", "--collection", "some_target", "--backup-id", "20261123T030000123Z-3f9a1c"], "vectorkeeper: restore: name the collection to restore into with --to NAME"],
      [["run", "probe"], "vectorkeeper: probe: --collection is required"],
      [["enqueue", "backup"], "vectorkeeper: backup: --collection is required"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, testEnv())));
    cases.forEach(([args, start], i) => {
      expect({ args, code: results[i]!.code }).toEqual({ args, code: 2 });
      const line = oneLine(results[i]!.stderr);
      expect(line.startsWith(start), line).toBe(true);
      expect(line).not.toContain("Invalid input");
    });
    expect(results[0]!.stderr).not.toContain("--collection");
  });
});

describe("restore, run restore and enqueue restore take the same flags", () => {
  const source = uniqueName("cli_same");
  const { store, env: storeEnv } = STORES[0]!.open();
  const env = testEnv(storeEnv);
  let worker: WorkerHandle;
  let backupId: string;
  let made: BackupResult;
  beforeAll(async () => {
    await seedCollection(chroma, source, 30, 8);
    made = JSON.parse((await runCli(["run", "backup", "--collection", source, "--json"], env)).stdout) as BackupResult;
    backupId = made.backupId;
    worker = await startWorker({ config: testConfig({ ...storeEnv, VK_QUEUE_PREFIX: env.VK_QUEUE_PREFIX! }), logger: quietLogger(), chroma });
  });
  afterAll(() => worker?.close());

  it("--to NAME, --batch-size and --replace everywhere", SLOW, async () => {
    const runs: [string, string[]][] = [
      ["restore", ["restore", backupId]],
      ["run restore", ["run", "restore", "--backup-id", backupId]],
      ["enqueue restore", ["enqueue", "restore", "--backup-id", backupId, "--wait"]],
    ];
    for (const [label, args] of runs) {
      const target = uniqueName("cli_same_to");
      for (const replace of [[], ["--replace"]]) {
        const result = await runCli([...args, "--to", target, "--batch-size", "7", ...replace, "--json"], env);
        expect({ label, code: result.code, stderr: result.stderr }).toEqual({ label, code: 0, stderr: "" });
      }
      expect(await (await chroma.openCollection(target)).count(), label).toBe(30);
    }
    expect(store.description).toContain("file://");
  });

  it("backups list reports the bytes the backup reported (chunks and manifest) and a consistency column", SLOW, async () => {
    const [listed, human] = await Promise.all([
      runCli(["backups", "list", "--collection", source, "--json"], env),
      runCli(["backups", "list", "--collection", source], env),
    ]);
    const [entry] = (JSON.parse(listed.stdout) as { backups: { backupId: string; bytes: number; consistent: boolean }[] }).backups;
    expect(entry).toMatchObject({ backupId, bytes: made.bytes, consistent: true });
    const lines = human.stdout.trim().split("\n");
    expect(lines[1]).toMatch(/backup id +collection +records +size +own +duration +consistent$/);
    expect(lines[2]).toMatch(new RegExp(`^  ${backupId} +${source} +30 +[\\d.]+ MiB +[\\d.]+ MiB +[\\d.]+ s +yes$`));
  });
});

describe("a failed verify", () => {
  it("prints its one line and nothing else on stderr", SLOW, async () => {
    const source = uniqueName("cli_verify");
    const { env: storeEnv } = STORES[0]!.open();
    const env = testEnv(storeEnv);
    await seedCollection(chroma, source, 20, 8);
    const { backupId } = JSON.parse((await runCli(["run", "backup", "--collection", source, "--json"], env)).stdout) as BackupResult;
    const chunk = `${fileURLToPath(storeEnv.BACKUP_URL!)}/${source}/${backupId}/chunk-000000.vkc.gz`;
    const body = readFileSync(chunk);
    body[body.length - 20] = body[body.length - 20]! ^ 0xff;
    writeFileSync(chunk, body);
    const result = await runCli(["backups", "verify", backupId], env);
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/^vectorkeeper: chunk chunk-000000\.vkc\.gz of backup \S+ \(\S+\) fails its SHA-256 check/);
  });
});

describe("status", () => {
  it("exits 1 naming what is not ready when Chroma does not answer", SLOW, async () => {
    const result = await runCli(["status", "--json"], testEnv({ CHROMA_URL: "http://127.0.0.1:9" }));
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ readiness: { ready: false } });
    expect(oneLine(result.stderr)).toMatch(/^vectorkeeper: not ready: Chroma at http:\/\/127\.0\.0\.1:9/);
  });
});

describe("enqueue --wait on a terminal", () => {
  const source = uniqueName("cli_tty");
  const { env: storeEnv } = STORES[0]!.open();
  let proxy: Awaited<ReturnType<typeof startLatencyProxy>>;
  let worker: WorkerHandle;
  const env = testEnv(storeEnv);
  beforeAll(async () => {
    await seedCollection(chroma, source, 300, 8);
    // Slowed down, so the backup reports progress over a few seconds rather than finishing at once.
    proxy = await startLatencyProxy(new URL(chromaUrl()), 100);
    worker = await startWorker({
      config: testConfig({ ...storeEnv, VK_QUEUE_PREFIX: env.VK_QUEUE_PREFIX! }),
      logger: quietLogger(),
      chroma: chromaStore(proxy.url),
    });
  });
  afterAll(async () => {
    await worker?.close();
    await proxy?.close();
  });

  it("shows the job's progress on one self-rewriting line, then the result", SLOW, async () => {
    const result = await runCliOnTty(["enqueue", "backup", "--collection", source, "--page-size", "20", "--read-ahead", "0", "--wait"], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`\\rbackup ${source}: \\d+/300 records \\(\\d+%\\)`));
    expect(result.stdout).toContain('"records": 300');
  });
});
