import { beforeAll, describe, expect, it } from "vitest";
import { efSearchOf } from "../src/jobs/recall.js";
import { tune, tunePayload } from "../src/jobs/tune.js";
import { cliKilledAt, runCli } from "./helpers/cli.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

const store = chromaStore();
const COUNT = 2000;

/** A sparse graph (few neighbours, little construction effort): narrow searches miss, wide ones find nearly all. */
async function sparseCollection(name: string): Promise<void> {
  const collection = await store.client.createCollection({
    name,
    embeddingFunction: null,
    configuration: { hnsw: { space: "l2", max_neighbors: 4, ef_construction: 8, ef_search: 10 } },
  });
  const embeddings = vectors(COUNT, 32, 5);
  for (let start = 0; start < COUNT; start += 1000) {
    await collection.add({ ids: embeddings.slice(start, start + 1000).map((_, i) => `t${start + i}`), embeddings: embeddings.slice(start, start + 1000) });
  }
}

const efNow = async (name: string) => efSearchOf((await store.openCollection(name)).configuration);
const scratches = async (name: string) => (await store.listCollectionNames()).filter((n) => n.startsWith(`${name}__vktune_`));
const ctx = () => jobContext({ chroma: store });

describe("tune job", () => {
  const name = uniqueName("tune");
  beforeAll(() => sparseCollection(name));

  it("applies the smallest ef_search of those tried that meets the target, and the configuration shows it", async () => {
    const result = await tune.process(tunePayload.parse({ collection: name, targetRecall: 0.8, efValues: [500, 10, 11], queries: 50 }), ctx());
    // Tried smallest first; every value before the chosen one missed the target, the chosen one met it.
    expect(result.tried.map((t) => t.efSearch)).toEqual([10, 11, 500]);
    expect(result.tried[0]!.recall).toBeLessThan(0.8);
    expect(result.tried[1]!.recall).toBeLessThan(0.8);
    expect(result.tried[2]!.recall).toBeGreaterThanOrEqual(0.8);
    expect(result).toMatchObject({ chosen: 500, applied: true, dryRun: false, queries: 50, space: "l2" });
    expect(result.current).toMatchObject({ efSearch: 10 });
    expect(result.tried[2]!.p95Ms).toBeGreaterThanOrEqual(result.tried[2]!.p50Ms);
    expect(await efNow(name)).toBe(500);
    expect(await scratches(name)).toEqual([]);
  });

  it("changes nothing when no value meets the target, or with --dry-run", async () => {
    const before = await efNow(name);
    const none = await tune.process(tunePayload.parse({ collection: name, targetRecall: 1, efValues: [10], queries: 50 }), ctx());
    expect(none).toMatchObject({ chosen: null, applied: false });
    expect(none.tried).toHaveLength(1);
    expect(await efNow(name)).toBe(before);

    const dry = await tune.process(tunePayload.parse({ collection: name, targetRecall: 0.8, efValues: [600], queries: 20, dryRun: true }), ctx());
    expect(dry).toMatchObject({ chosen: 600, applied: false, dryRun: true });
    expect(await efNow(name)).toBe(before);
    expect(await scratches(name)).toEqual([]);
  });

  it("runs from the CLI; bad values are one line naming the flag, nothing changed", async () => {
    const env = testEnv();
    const before = await efNow(name);
    const ran = await runCli(["run", "tune", "--collection", name, "--target-recall", "0.5", "--ef-values", "700", "--queries", "10", "--dry-run", "--json"], env);
    expect(ran.stderr).toBe("");
    expect(JSON.parse(ran.stdout)).toMatchObject({ collection: name, chosen: 700, applied: false });
    for (const [flags, named] of [
      [["--target-recall", "0.95", "--ef-values", "10,0"], "--ef-values"],
      [["--target-recall", "1.5"], "--target-recall"],
      [["--target-recall", "0.9", "--ef-values", "10,x"], "--ef-values"],
      [[], "--target-recall"],
    ] as const) {
      const bad = await runCli(["run", "tune", "--collection", name, ...flags], env);
      expect(bad.code, flags.join(" ")).toBe(2);
      expect(bad.stderr.trim().split("\n")).toHaveLength(1);
      expect(bad.stderr).toContain(named);
    }
    expect(await efNow(name)).toBe(before);
    expect(await scratches(name)).toEqual([]);
  });

  it("leaves no scratch copy after the next run when killed mid-tune", async () => {
    const env = testEnv();
    await cliKilledAt(["run", "tune", "--collection", name, "--target-recall", "0.5", "--ef-values", "800", "--queries", "5"], env, "tune:copied");
    expect(await scratches(name)).toHaveLength(1);
    const before = await efNow(name);

    const rerun = await runCli(["run", "tune", "--collection", name, "--target-recall", "0.5", "--ef-values", "800", "--queries", "5", "--dry-run", "--json"], env);
    // Its only log line: the killed tune's lease, taken over.
    expect(rerun.stderr.trim().split("\n").filter((line) => line && !line.includes("took over the lease of a crashed run"))).toEqual([]);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ chosen: 800, applied: false });
    expect(await scratches(name)).toEqual([]);
    expect(await efNow(name)).toBe(before);
  });
});
