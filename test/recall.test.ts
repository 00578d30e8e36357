import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/config-error.js";
import { recall, recallPayload } from "../src/jobs/recall.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { runCli } from "./helpers/cli.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

const store = chromaStore();
const COUNT = 2000;
const DIMENSION = 32;
const K = 10;
const seeded = vectors(COUNT, DIMENSION, 42).map((v) => v.map(Math.fround));
const idOf = (i: number) => `r${i}`;
const spaces = ["l2", "ip", "cosine"] as const;
const names = Object.fromEntries(spaces.map((space) => [space, uniqueName(`recall_${space}`)])) as Record<(typeof spaces)[number], string>;

/** The test's own exact search: every seeded vector, sorted by the distance Chroma defines for the space. */
function bruteForce(space: (typeof spaces)[number], query: number): Set<string> {
  const q = seeded[query]!;
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const distance = (v: number[]) => {
    if (space === "l2") return v.reduce((s, x, i) => s + (x - q[i]!) ** 2, 0);
    const dot = v.reduce((s, x, i) => s + x * q[i]!, 0);
    return space === "ip" ? 1 - dot : 1 - dot / (norm(v) * norm(q));
  };
  const ranked = seeded.map((v, i) => ({ i, d: distance(v) })).filter(({ i }) => i !== query);
  ranked.sort((a, b) => a.d - b.d);
  return new Set(ranked.slice(0, K).map(({ i }) => idOf(i)));
}

beforeAll(async () => {
  for (const space of spaces) {
    // A sparse graph searched narrowly, so the index misses neighbours and recall is a real measurement, not 1.
    const collection = await store.client.createCollection({
      name: names[space],
      embeddingFunction: null,
      configuration: { hnsw: { space, max_neighbors: 4, ef_construction: 8, ef_search: 10 } },
    });
    for (let start = 0; start < COUNT; start += 500) {
      const ids = seeded.slice(start, start + 500).map((_, i) => idOf(start + i));
      await collection.add({ ids, embeddings: seeded.slice(start, start + 500) });
    }
  }
});

describe("recall job", () => {
  for (const space of spaces) {
    it(`agrees with an independent exact search on every sampled query (${space})`, async () => {
      const result = await recall.process(recallPayload.parse({ collection: names[space], queries: 40, queryBatch: 15 }), jobContext({ chroma: store }));
      expect(result).toMatchObject({ collection: names[space], space, k: K, queries: 40 });
      const collection = await store.openCollection(names[space]);
      let sum = 0;
      for (const measured of result.perQuery) {
        const query = Number(measured.id.slice(1));
        const truth = bruteForce(space, query);
        const answer = await collection.query({ queryEmbeddings: [seeded[query]!], nResults: K + 1 });
        const found = answer.ids[0]!.filter((id) => id !== measured.id).slice(0, K);
        const expected = found.filter((id) => truth.has(id)).length / K;
        expect(measured.recall, `query ${measured.id}`).toBeCloseTo(expected, 10);
        sum += expected;
      }
      expect(result.recall).toBeCloseTo(sum / result.perQuery.length, 3);
      // The index is built to miss: a measurement that always said 1 would prove nothing.
      expect(result.recall).toBeLessThan(1);
      expect(result.recall).toBeGreaterThan(0);
      expect(result.p95Ms).toBeGreaterThanOrEqual(result.p50Ms);
    });
  }

  it("runs from the CLI and refuses bad input in one line naming the flag", async () => {
    const env = testEnv();
    const ran = await runCli(["run", "recall", "--collection", names.l2, "--queries", "5", "--json"], env);
    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject({ collection: names.l2, space: "l2", queries: 5, k: 10 });

    const badK = await runCli(["run", "recall", "--collection", names.l2, "--k", "0"], env);
    expect(badK.code).not.toBe(0);
    expect(badK.stderr.trim().split("\n")).toHaveLength(1);
    expect(badK.stderr).toContain("--k");

    const foreign = await runCli(["run", "recall", "--collection", names.l2, "--ef-values", "10"], env);
    expect(foreign.code).not.toBe(0);
    expect(foreign.stderr.trim().split("\n")).toHaveLength(1);
    expect(foreign.stderr).toContain("--ef-values");
  });

  it("is scheduled like any kind, with tune and drill; their options are checked by entry", () => {
    const schedule = parseScheduleYaml(
      `jobs:
  - { kind: recall, cron: "0 2 * * *", collections: ["products_*"], queries: 200 }
  - { kind: tune, cron: "0 4 * * 0", collections: ["products_v1"], targetRecall: 0.95, efValues: [20, 40, 80], dryRun: true }
  - { kind: drill, cron: "0 5 * * 0", collections: ["*"], sampleRecords: 50 }
`,
      "test",
    );
    expect(schedule.jobs).toMatchObject([
      { kind: "recall", queries: 200, k: 10 },
      { kind: "tune", targetRecall: 0.95, efValues: [20, 40, 80], dryRun: true },
      { kind: "drill", sampleRecords: 50 },
    ]);
    const bad = () => parseScheduleYaml(`jobs: [{ kind: tune, cron: "0 4 * * 0", collections: ["x1y"], efValues: [0] }]`, "test");
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow("jobs[0].targetRecall");
    expect(bad).toThrow("jobs[0].efValues[0]: must list ef_search values of at least 1 (got 0)");
  });
});
