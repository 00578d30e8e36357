import { getPriority } from "node:os";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archive } from "../src/jobs/archive.js";
import { backup } from "../src/jobs/backup.js";
import { drill } from "../src/jobs/drill.js";
import { expire } from "../src/jobs/expire.js";
import { reindex } from "../src/jobs/reindex.js";
import { LatencyProbe } from "../src/storage/chroma/latency-probe.js";
import type { Progress } from "../src/jobs/job-context.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { runCli } from "./helpers/cli.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();
const DAY_MS = 86_400_000;

/** `count` records of 8 dimensions, created 10 days ago or more; every other one expired. */
async function seed(name: string, count: number): Promise<void> {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
  const embeddings = vectors(count, 8, 5);
  for (let start = 0; start < count; start += 500) {
    const slice = embeddings.slice(start, start + 500);
    await collection.add({
      ids: slice.map((_, i) => `r${start + i}`),
      embeddings: slice,
      metadatas: slice.map((_, i) => {
        const old = (start + i) % 2 === 0;
        return { _expires_at: old ? 1_000_000_000_000 : 4_000_000_000_000, _created_at: Date.now() - (old ? 365 : 10) * DAY_MS };
      }),
    });
  }
}

interface Seen extends Progress {
  at: number;
}

/** A context that remembers every progress report with its time. */
function watched(seen: Seen[], onProgress: (p: Progress) => void = () => undefined, chromaUrl?: string) {
  return jobContext({
    ...(chromaUrl ? { chroma: chromaStore(chromaUrl) } : {}),
    progress: async (p) => {
      seen.push({ ...p, at: performance.now() });
      onProgress(p);
    },
  });
}

/** Records a second between the first and the last report. */
function rateOf(seen: readonly Seen[]): number {
  const pages = seen.filter((s) => s.done > 0);
  const first = pages[0]!;
  const last = pages.at(-1)!;
  return ((last.done - first.done) / (last.at - first.at)) * 1000;
}

/**
 * The rate a fixed limit bounds: a page is taken before its work, so the last page was taken no sooner than the
 * records before it allow after the job began (timers may fire up to a millisecond early: 1% tolerance).
 */
function boundedRate(seen: readonly Seen[], startedAt: number): number {
  const pages = seen.filter((s) => s.done > 0);
  return ((pages.at(-2)?.done ?? 0) / (pages.at(-1)!.at - startedAt)) * 1000;
}

describe("a fixed rate", () => {
  it("bounds records a second in backup, drill, expire and archive", async () => {
    const name = uniqueName("pace_fixed");
    await seed(name, 1000);

    const backupSeen: Seen[] = [];
    const ctx = watched(backupSeen);
    let started = performance.now();
    const result = await backup.process(backup.payload.parse({ collection: name, pageSize: 100, chunkRecords: 100, maxRecordsPerSecond: 1000 }), ctx);
    expect(result.records).toBe(1000);
    expect(backupSeen.filter((s) => s.done > 0)).toHaveLength(10);
    // 900 records after the first page at 1000 a second: at least 900 ms (timers fire late, never early).
    expect(boundedRate(backupSeen, started)).toBeLessThanOrEqual(1000 * 1.01);
    expect(result.pacing).toMatchObject({ maxRecordsPerSecond: 1000, adaptive: false, slowdowns: 0 });
    expect(result.pacing!.waitedMs).toBeGreaterThan(0);
    expect(backupSeen.at(-1)!.note).toBe("limited to 1000 records/s");

    // A drill's restore takes the backup's 100-record chunks at 2000 a second: 900 after the first, at least 450 ms.
    const drilled = await drill.process(drill.payload.parse({ collection: name, maxRecordsPerSecond: 2000 }), ctx);
    expect(drilled.records).toBe(1000);
    expect(drilled.restoreSeconds).toBeGreaterThanOrEqual(0.45);
    expect(drilled.pacing).toMatchObject({ maxRecordsPerSecond: 2000, adaptive: false });
    expect(drilled.pacing.waitedMs).toBeGreaterThan(0);

    const expireSeen: Seen[] = [];
    started = performance.now();
    const expired = await expire.process(expire.payload.parse({ collection: name, batchSize: 50, maxRecordsPerSecond: 500 }), watched(expireSeen));
    expect(expired.deleted).toBe(500);
    expect(await (await chroma.openCollection(name)).count()).toBe(500);
    expect(boundedRate(expireSeen, started)).toBeLessThanOrEqual(500 * 1.01);

    // The survivors, created 10 days ago, move to another collection.
    const archiveSeen: Seen[] = [];
    started = performance.now();
    const moved = await archive.process(
      archive.payload.parse({ collection: name, olderThanDays: 5, to: "{name}_cold", batchSize: 100, maxRecordsPerSecond: 300 }),
      watched(archiveSeen),
    );
    expect(moved.archived).toBe(500);
    expect(await (await chroma.openCollection(`${name}_cold`)).count()).toBe(500);
    expect(boundedRate(archiveSeen, started)).toBeLessThanOrEqual(300 * 1.01);
  });
});

describe("a paced backup's pages", () => {
  it("are small and one at a time unless the payload says otherwise, and the usual size when unpaced", async () => {
    const name = uniqueName("pace_pages");
    await seed(name, 1000);
    const steps = async (payload: Record<string, unknown>) => {
      const seen: Seen[] = [];
      const result = await backup.process(backup.payload.parse({ collection: name, ...payload }), watched(seen));
      expect(result.records).toBe(1000);
      const done = seen.filter((s) => s.done > 0).map((s) => s.done);
      return done.map((d, i) => d - (done[i - 1] ?? 0));
    };
    // A page a query must wait behind is what hurts it (maintenance bench): paced reads take DEFAULTS.pacing's pages.
    expect(await steps({ maxRecordsPerSecond: 1_000_000 })).toEqual(Array(10).fill(DEFAULTS.pacing.pageSize));
    expect(await steps({})).toEqual(Array(2).fill(DEFAULTS.backup.pageSize));
    expect(await steps({ maxRecordsPerSecond: 1_000_000, pageSize: 250 })).toEqual(Array(4).fill(250));
  });
});

describe("a fixed rate in a reindex", () => {
  it("bounds the copy's records a second", async () => {
    const name = uniqueName("pace_reindex");
    await seed(name, 1500);
    const seen: Seen[] = [];
    const started = performance.now();
    const result = await reindex.process(reindex.payload.parse({ collection: name, rebuild: true, skipRecall: true, maxRecordsPerSecond: 1000 }), watched(seen));
    expect(result).toMatchObject({ action: "rebuilt", records: 1500, copied: 1500, pacing: { maxRecordsPerSecond: 1000, adaptive: false } });
    const copied = seen.filter((s) => s.unit === "records copied");
    expect(copied.at(-1)!.done).toBe(1500);
    // Pages of 500: the last was taken no sooner than a second after the start.
    expect(boundedRate(copied, started)).toBeLessThanOrEqual(1000 * 1.01);
    expect(result.pacing!.waitedMs).toBeGreaterThan(0);
  });
});

describe("adaptive pacing", () => {
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    proxy = await startHttpFaultProxy(chromaUrl());
  });
  afterAll(() => proxy.close());

  it("slows down while the collection's queries are slow and speeds up again when they recover", async () => {
    const name = uniqueName("pace_adaptive");
    // Room for the whole chain (fault at 300, two slowdowns of a probe window each, a second held back, recovery)
    // even when a loaded machine stretches every probe interval.
    await seed(name, 5000);
    const limit = 600;
    const seen: Seen[] = [];
    let phase: "idle" | "slow" | "recovered" = "idle";
    let lowSince = Number.POSITIVE_INFINITY;
    let clearedAt = Number.POSITIVE_INFINITY;
    const onProgress = (p: Progress) => {
      const now = performance.now();
      const throttledTo = Number(/^throttled to (\d+)/.exec(p.note ?? "")?.[1] ?? Number.NaN);
      if (phase === "idle" && p.done >= 300) {
        // What users would see: every query (the job's probes among them) 300 ms slower, far above any idle latency
        // of a busy test machine; reads are untouched.
        proxy.inject({ method: "POST", path: /\/query$/, fault: { kind: "delay", ms: 300 } });
        phase = "slow";
      } else if (phase === "slow" && throttledTo <= limit / 4) {
        lowSince = Math.min(lowSince, now);
        if (now - lowSince > 1000) {
          proxy.clear();
          phase = "recovered";
          clearedAt = now;
        }
      }
    };
    const result = await backup.process(
      backup.payload.parse({ collection: name, pageSize: 20, maxRecordsPerSecond: limit, adaptive: true, latencyFactor: 2 }),
      watched(seen, onProgress, proxy.url),
    );
    expect(result.records).toBe(5000);
    expect(phase).toBe("recovered");
    expect(result.pacing).toMatchObject({ adaptive: true, maxRecordsPerSecond: limit });
    expect(result.pacing!.idleQueryMs).toBeGreaterThan(0);
    expect(result.pacing!.slowdowns).toBeGreaterThanOrEqual(2);
    expect(result.pacing!.lowestRecordsPerSecond).toBeLessThanOrEqual(limit / 4);

    // While queries were slow the job went at under a third of its limit (its last second of them)...
    const throttled = seen.filter((s) => s.at > clearedAt - 1000 && s.at < clearedAt);
    expect(throttled.every((s) => s.note?.startsWith("throttled to"))).toBe(true);
    expect(rateOf(throttled)).toBeLessThan(limit / 3);
    // ...and once they recovered it sped up again (back to full speed on a quiet machine; a busy one's own latency
    // spikes may hold it a little below).
    const rateAfter = seen.filter((s) => s.at > clearedAt).map((s) => (s.note?.startsWith("limited to") ? limit : Number(/^throttled to (\d+)/.exec(s.note ?? "")?.[1])));
    expect(Math.max(...rateAfter)).toBeGreaterThan(result.pacing!.lowestRecordsPerSecond! * 1.5);
  });
});

describe("the idle probes", () => {
  it("are spaced as asked, each answered with a latency", async () => {
    const name = uniqueName("pace_probe");
    await seed(name, 50);
    const collection = await chroma.openCollection(name);
    const probe = new LatencyProbe(chroma.queryRequest(collection, vectors(1, 8, 5)[0]!, 5, 10_000));
    try {
      await probe.measure(1);
      const started = performance.now();
      const spaced = await probe.measure(4, 150);
      // Three pauses of 150 ms between four answered queries (timers fire late, never early).
      expect(performance.now() - started).toBeGreaterThanOrEqual(450);
      expect(spaced).toHaveLength(4);
      expect(spaced.every((ms) => ms > 0 && ms < 10_000)).toBe(true);
    } finally {
      await probe.close();
    }
  });
});

describe("the job's CPU priority (nice)", () => {
  it("is lowered for a `vectorkeeper run` with --adaptive --nice, and the job completes", async () => {
    const name = uniqueName("pace_nice");
    await seed(name, 400);
    const env = testEnv({ BACKUP_URL: `file://${tempDir("nice")}`, LOG_LEVEL: "info" });
    const run = await runCli(["run", "backup", "--collection", name, "--chunk-records", "100", "--adaptive", "--nice", "7", "--json"], env);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ collection: name, records: 400 });
    // What the run's main thread reads back for itself, and how many of its threads run at that nice or lower
    // (a test run under `nice -n 19` starts the CLI at 19 already, which it keeps).
    const lowered = run.stderr
      .split("\n")
      .filter((line) => line.includes("the job's threads yield the CPU"))
      .map((line) => JSON.parse(line) as { nice: number; threads: number });
    expect(lowered).toHaveLength(1);
    expect(lowered[0]!.nice).toBe(Math.max(7, getPriority(0)));
    expect(lowered[0]!.threads).toBeGreaterThan(1);
  });

  it("is left alone in a worker (it could not raise it back), which still runs the job", async () => {
    const name = uniqueName("pace_nice_worker");
    await seed(name, 200);
    const before = getPriority(0);
    const result = await backup.process(backup.payload.parse({ collection: name, adaptive: true, nice: 12 }), jobContext());
    expect(result.records).toBe(200);
    expect(getPriority(0)).toBe(before);
  });
});

describe("bad pacing values", () => {
  it("are refused in one line naming the flags, before anything runs", async () => {
    const run = await runCli(["run", "backup", "--collection", "pace_bad", "--max-records-per-second", "0", "--latency-factor", "0.5"], testEnv());
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("--max-records-per-second");
    expect(run.stderr).toContain("--latency-factor");
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it("refuses a --nice that is no nice value in one line naming the flag", async () => {
    for (const value of ["20", "-1", "2.5"]) {
      const run = await runCli(["run", "backup", "--collection", "pace_bad", "--adaptive", "--nice", value], testEnv());
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
      expect(run.stderr).toContain("--nice");
      expect(run.stderr).toContain("0 (leave it) to 19");
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("are refused in a schedule entry, naming the field", () => {
    expect(() => parseScheduleYaml(`jobs:\n  - { kind: expire, cron: "0 * * * *", collections: ["*"], maxRecordsPerSecond: -5 }\n`, "s.yaml")).toThrow(
      /maxRecordsPerSecond/,
    );
    const schedule = parseScheduleYaml(`jobs:\n  - { kind: backup, cron: "0 3 * * *", collections: ["*"], adaptive: true, maxRecordsPerSecond: 5000 }\n`, "s.yaml");
    expect(schedule.jobs[0]).toMatchObject({ adaptive: true, maxRecordsPerSecond: 5000, latencyFactor: 1.3 });
  });
});
