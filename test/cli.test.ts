import { readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { freePort } from "../src/storage/chroma/local-server.js";
import { collect, runCli, spawnCli, spawnCliMerged } from "./helpers/cli.js";
import { chromaStore, quietLogger, seedCollection, testConfig, testEnv, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const store = chromaStore();
const collection = uniqueName("cli_probe");

beforeAll(() => seedCollection(store, collection, 12, 384));

describe("run", () => {
  it("runs a probe inline and prints exactly one JSON object on stdout", async () => {
    const result = await runCli(["run", "probe", "--collection", collection, "--json"], testEnv());
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ collection, ok: true, count: 12, dimension: 384 });
  });

  it("exits 2 with one line for an unknown collection and for an unknown kind", async () => {
    const missing = await runCli(["run", "probe", "--collection", "nope_nope", "--json"], testEnv());
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toMatch(/^vectorkeeper: collection "nope_nope" does not exist/);
    expect(JSON.parse(missing.stdout)).toEqual({ error: expect.stringContaining("nope_nope") });

    const kind = await runCli(["run", "snapshot", "--collection", collection], testEnv());
    expect(kind.code).toBe(2);
    expect(kind.stderr.trim().split("\n")).toEqual([expect.stringContaining('unknown job kind "snapshot"')]);
  });

  it("says where Chroma was expected when it does not answer", async () => {
    const result = await runCli(["run", "probe", "--collection", collection], testEnv({ CHROMA_URL: "http://127.0.0.1:9" }));
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      "vectorkeeper: Chroma does not answer at http://127.0.0.1:9 (CHROMA_URL): start it, or point CHROMA_URL at a running server",
    );
  });
});

describe("enqueue and status", () => {
  const env = testEnv();
  let worker: WorkerHandle;
  beforeAll(async () => {
    worker = await startWorker({ config: testConfig(env), logger: quietLogger(), chroma: store });
  });
  afterAll(() => worker.close());

  it("enqueue --wait prints the job's result", async () => {
    const result = await runCli(["enqueue", "probe", "--collection", collection, "--wait", "--json"], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ kind: "probe", result: { collection, count: 12 } });
  });

  it("enqueue --wait exits 1 naming the failure of a failed job", async () => {
    const result = await runCli(["enqueue", "probe", "--collection", "gone_gone", "--wait"], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/probe job \S+ failed: collection "gone_gone" does not exist/);
  });

  it("status reports counts, the last result per collection and recent failures", async () => {
    const result = await runCli(["status", "--json"], env);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as {
      readiness: { ready: boolean };
      kinds: { kind: string; counts: Record<string, number>; lastResults: Record<string, { result: { count: number } }>; recentFailures: { collection: string }[] }[];
    };
    expect(status.readiness.ready).toBe(true);
    const probe = status.kinds.find((k) => k.kind === "probe")!;
    expect(probe.counts.completed).toBe(1);
    expect(probe.lastResults[collection]!.result.count).toBe(12);
    expect(probe.recentFailures.map((f) => f.collection)).toEqual(["gone_gone"]);
  });
});

describe("without Redis", () => {
  it("enqueue says how to get a Redis and exits 1", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 1));
      });
    });
    const result = await runCli(["enqueue", "probe", "--collection", collection], testEnv({ REDIS_URL: `redis://127.0.0.1:${port}` }));
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain(`Redis does not answer at 127.0.0.1:${port}`);
    expect(result.stderr).toContain("apt install redis-server");
  });
});

describe("start", () => {
  const dir = tempDir("start");

  it("runs a local Chroma, the worker, the scheduler and the dashboard in one process", async () => {
    writeFileSync(join(dir, "schedule.yaml"), `jobs: [{ kind: probe, cron: "* * * * * *", collections: ["*"] }]\n`);
    // A port of its own: the suites of both Chroma servers run at once, and two starts racing for the default 8000
    // could each find it free and one end up talking to the other's Chroma.
    const chromaPort = await freePort();
    const env = testEnv({ CHROMA_URL: "", VK_LOCAL_CHROMA_PORT: String(chromaPort) });
    delete (env as Record<string, string | undefined>).SCHEDULE_FILE;
    const child = spawnCli(["start", "--json"], env, dir);
    const exited = collect(child);
    try {
      const summary = await new Promise<{ dashboard: string; dashboardUser: string; dashboardPassword: string; metrics: string; chroma: string; schedule: string }>(
        (resolve, reject) => {
          let out = "";
          child.stdout?.on("data", (d: Buffer) => {
            out += d.toString();
            if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0]!));
          });
          child.once("exit", (code) => reject(new Error(`start exited early with ${code}`)));
        },
      );
      expect(summary.schedule).toBe("./schedule.yaml");
      expect(summary.chroma).toBe(`http://127.0.0.1:${chromaPort}`);
      const dashboard = await fetch(summary.dashboard, {
        headers: { authorization: `Basic ${Buffer.from(`${summary.dashboardUser}:${summary.dashboardPassword}`).toString("base64")}` },
      });
      expect(dashboard.status).toBe(200);

      // A collection created in the local Chroma is probed on the next tick and shows up in /metrics.
      const name = uniqueName("start_probe");
      await seedCollection(chromaStore(summary.chroma), name, 7, 32);
      const deadline = Date.now() + 20_000;
      let metrics = "";
      while (Date.now() < deadline && !metrics.includes(`vectorkeeper_collection_records{collection="${name}"} 7`)) {
        await new Promise((r) => setTimeout(r, 250));
        metrics = await (await fetch(summary.metrics)).text();
      }
      expect(metrics).toContain(`vectorkeeper_collection_records{collection="${name}"} 7`);
    } finally {
      child.kill("SIGTERM");
    }
    const result = await exited;
    expect(result.code).toBe(0);
  });

  it("keeps a generated dashboard password in ./data (mode 0600) and prints it last, after the start-up log lines", async () => {
    const home = tempDir("start-pw");
    writeFileSync(join(home, "schedule.yaml"), `jobs: [{ kind: probe, cron: "0 0 1 1 *", collections: ["*"] }]\n`);
    const env = testEnv();
    delete (env as Record<string, string | undefined>).SCHEDULE_FILE;
    const passwords: string[] = [];
    for (let run = 0; run < 2; run++) {
      const child = spawnCliMerged(["start"], env, home);
      const exited = collect(child);
      let out = "";
      child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 45_000;
      while (Date.now() < deadline && !/password +\S+/.test(out)) await new Promise((r) => setTimeout(r, 100));
      // Whatever start-up logs there are have had time to appear.
      await new Promise((r) => setTimeout(r, 2_000));
      const shown = out;
      child.kill("SIGTERM");
      expect((await exited).code).toBe(0);
      const lines = shown.trim().split("\n");
      expect(lines.some((line) => line.startsWith("{"))).toBe(true);
      const last = lines.at(-1)!;
      expect(last).toMatch(/^ {2}password {3}\S+ {2}\(kept in \.\/data\/dashboard-password;/);
      passwords.push(last.split(/\s+/)[2]!);
    }
    expect(passwords[1]).toBe(passwords[0]);
    const file = join(home, "data", "dashboard-password");
    expect(readFileSync(file, "utf8").trim()).toBe(passwords[0]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  }, 180_000);
});
