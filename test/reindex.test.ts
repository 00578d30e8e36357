import { setTimeout } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/config-error.js";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import type { Progress } from "../src/jobs/job-context.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { CollectionNotFoundError } from "../src/storage/chroma/client.js";
import { currentIndex } from "../src/storage/chroma/index-settings.js";
import { runCli } from "./helpers/cli.js";
import { contents } from "./helpers/collection-contents.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();
const DIM = 8;

/** An l2 collection with documents, metadata (one legacy-free key set) and collection metadata. */
async function seed(name: string, count: number): Promise<void> {
  const collection = await chroma.client.createCollection({
    name,
    embeddingFunction: null,
    metadata: { owner: "search-team" },
    configuration: { hnsw: { space: "l2", max_neighbors: 8, ef_construction: 40 } },
  });
  const embeddings = vectors(count, DIM, 3);
  for (let start = 0; start < count; start += 500) {
    const slice = embeddings.slice(start, start + 500);
    await collection.add({
      ids: slice.map((_, i) => `r${start + i}`),
      embeddings: slice,
      documents: slice.map((_, i) => `doc ${start + i}`),
      metadatas: slice.map((_, i) => ({ n: start + i, tag: (start + i) % 3 === 0 ? "a" : "b" })),
    });
  }
}

const settings = async (name: string) => currentIndex(await chroma.describeCollection(name)).values;
const leftovers = async (name: string, kind: "new" | "swap" | "old") =>
  (await chroma.listCollectionNames()).filter((n) => n.startsWith(`${name}__vkreindex_${kind}_`));

const run = (payload: Record<string, unknown>, progress?: (p: Progress) => Promise<void>) =>
  reindex.process(reindexPayload.parse(payload), jobContext({ chroma, ...(progress ? { progress } : {}) }));

describe("reindex job", () => {
  it("rebuilds with new fixed settings, keeps every record, metadata and in-place settings, reports recall, and rolls back", async () => {
    const name = uniqueName("reidx");
    await seed(name, 1200);
    const before = await contents(chroma, name);
    const oldId = (await chroma.openCollection(name)).id;

    const result = await run({ collection: name, space: "ip", maxNeighbors: 24, efConstruction: 120, efSearch: 60, queries: 20 });
    expect(result).toMatchObject({ action: "rebuilt", records: 1200, copied: 1200, k: 10 });
    expect(result.before).toMatchObject({ space: "l2", maxNeighbors: 8, efConstruction: 40 });
    expect(result.after).toMatchObject({ space: "ip", maxNeighbors: 24, efConstruction: 120, efSearch: 60 });
    expect(result.passes.at(-1)).toEqual({ written: 0, deleted: 0 });
    expect(result.recallBefore!.recall).toBeGreaterThan(0);
    expect(result.recallAfter!.recall).toBeGreaterThan(0);
    expect(result.recallAfter!.p95Ms).toBeGreaterThanOrEqual(result.recallAfter!.p50Ms);
    expect(result.warm).toMatchObject({ settled: expect.any(Boolean) });
    expect(result.reconciled).toMatchObject({ written: 0, deleted: 0 });

    const swapped = await chroma.openCollection(name);
    expect(swapped.id).not.toBe(oldId);
    expect(swapped.metadata).toMatchObject({ owner: "search-team" });
    expect(await contents(chroma, name)).toEqual(before);
    expect(await leftovers(name, "new")).toEqual([]);
    expect(await leftovers(name, "swap")).toEqual([]);
    expect(await leftovers(name, "old")).toEqual([result.keptAs]);
    expect((await chroma.openCollection(result.keptAs!)).id).toBe(oldId);

    // Written after the reindex, through the name: a rollback keeps it.
    await swapped.upsert({ ids: ["r5", "late"], embeddings: vectors(2, DIM, 9), documents: ["changed", "late"], metadatas: [{ n: -5 }, { n: -1 }] });
    await swapped.delete({ ids: ["r7"] });
    const written = await contents(chroma, name);
    const back = await run({ collection: name, rollback: true });
    expect(back).toMatchObject({ action: "rolledBack", records: 1200 });
    expect(back.after).toMatchObject({ space: "l2", maxNeighbors: 8, efConstruction: 40 });
    expect((await chroma.openCollection(name)).id).toBe(oldId);
    expect(await contents(chroma, name)).toEqual(written);
    // The rebuilt collection is kept aside in turn; --drop-old deletes what is kept.
    expect(await leftovers(name, "old")).toEqual([back.keptAs]);
    const dropped = await run({ collection: name, dropOld: true });
    expect(dropped).toMatchObject({ action: "droppedOld", dropped: [back.keptAs], records: 1200 });
    expect(await leftovers(name, "old")).toEqual([]);
  });

  it("changes ef_search in place with modify: same collection, no copy", async () => {
    const name = uniqueName("reidx_ef");
    await seed(name, 50);
    const id = (await chroma.openCollection(name)).id;
    const result = await run({ collection: name, efSearch: 33, resizeFactor: 1.5, syncThreshold: 800 });
    expect(result).toMatchObject({ action: "modified", copied: 0, keptAs: null, records: 50 });
    expect(result.after).toMatchObject({ efSearch: 33, resizeFactor: 1.5, syncThreshold: 800, maxNeighbors: 8 });
    expect((await chroma.openCollection(name)).id).toBe(id);
    expect(await settings(name)).toMatchObject({ efSearch: 33 });
    expect(await run({ collection: name, efSearch: 33 })).toMatchObject({ action: "unchanged" });
  });

  it("carries writes made through the replaced collection after the swap into the new one", async () => {
    const name = uniqueName("reidx_stale");
    await seed(name, 300);
    const stale = await chroma.openCollection(name);
    let wrote = false;
    const result = await run({ collection: name, maxNeighbors: 12, skipRecall: true, dropOld: true, batchSize: 128 }, async (p) => {
      // The first report after the swap: a client that opened the collection before it writes there now.
      if (p.unit === "reconcile passes" && !wrote) {
        wrote = true;
        await stale.upsert({ ids: ["r1", "after-swap"], embeddings: vectors(2, DIM, 11), documents: ["updated", "new"], metadatas: [{ n: 1 }, { n: 2 }] });
        await stale.delete({ ids: ["r2"] });
      }
    });
    expect(wrote).toBe(true);
    expect(result.reconciled).toMatchObject({ written: 2, deleted: 1 });
    expect(result).toMatchObject({ keptAs: null, records: 300 });
    const now = await chroma.openCollection(name);
    const got = await now.get({ ids: ["r1", "after-swap", "r2"], include: ["documents"] });
    expect(Object.fromEntries(got.ids.map((id, i) => [id, got.documents[i]]))).toEqual({ r1: "updated", "after-swap": "new" });
    expect(await leftovers(name, "old")).toEqual([]);
  });

  it("loses nothing while a writer runs throughout (re-opening the collection by name, as applications should)", async () => {
    const name = uniqueName("reidx_writer");
    await seed(name, 1000);
    const expected = new Map(Array.from({ length: 1000 }, (_, i) => [`r${i}`, `doc ${i}`]));
    // Each existing record is updated or deleted at most once, in an order spread over the collection.
    const pool = Array.from({ length: 1000 }, (_, i) => `r${(i * 379) % 1000}`);
    let stop = false;
    let rounds = 0;
    // Between the swap's two renames (two requests apart) the name resolves to nothing: the writer retries, as the
    // README tells applications to.
    let notFound = 0;
    const open = async () => {
      for (;;) {
        try {
          return await chroma.openCollection(name);
        } catch (error) {
          if (!(error instanceof CollectionNotFoundError) || ++notFound > 50) throw error;
          await setTimeout(20);
        }
      }
    };
    const writer = (async () => {
      while (!stop && rounds * 2 + 2 <= pool.length) {
        const fresh = [`w${rounds}a`, `w${rounds}b`];
        await (await open()).add({ ids: fresh, embeddings: vectors(2, DIM, 100 + rounds), documents: fresh.map((id) => `new ${id}`) });
        fresh.forEach((id) => expected.set(id, `new ${id}`));
        const [updated, deleted] = [pool[rounds * 2]!, pool[rounds * 2 + 1]!];
        await (await open()).upsert({ ids: [updated], embeddings: vectors(1, DIM, 500 + rounds), documents: [`updated ${updated}`] });
        expected.set(updated, `updated ${updated}`);
        await (await open()).delete({ ids: [deleted] });
        expected.delete(deleted);
        rounds++;
        await setTimeout(10);
      }
    })();
    const result = await run({ collection: name, maxNeighbors: 16, queries: 10 });
    stop = true;
    await writer;
    expect(rounds).toBeGreaterThan(5);
    expect(result).toMatchObject({ action: "rebuilt", after: { maxNeighbors: 16 } });
    const all = await (await chroma.openCollection(name)).get({ include: ["documents"] });
    expect(new Map(all.ids.map((id, i) => [id, all.documents[i]]))).toEqual(expected);
  });

  it("refuses bad settings in one line naming the parameter, creating and changing nothing", async () => {
    const name = uniqueName("reidx_bad");
    await seed(name, 20);
    const before = await settings(name);
    for (const [payload, named] of [
      [{ space: "euclid" }, "space"],
      [{ maxNeighbors: 1 }, "maxNeighbors"],
      [{ efSearch: 0 }, "efSearch"],
      [{ resizeFactor: 1 }, "resizeFactor"],
      [{ m: 16 }, "m"],
    ] as const) {
      const parsed = reindexPayload.safeParse({ collection: name, ...payload });
      expect(parsed.success, JSON.stringify(payload)).toBe(false);
      expect(parsed.error!.issues.map((issue) => issue.path.join(".") || ("keys" in issue ? issue.keys.join() : ""))).toContain(named);
    }
    for (const [payload, message] of [
      [{ hnswBatchSize: 5000 }, "--hnsw-batch-size: Chroma requires batch_size (5000) at most sync_threshold (1000)"],
      [{}, "name a setting to change"],
      [{ rollback: true }, "no collection kept aside by a reindex to roll back to"],
      [{ rollback: true, space: "ip" }, "--rollback puts back the replaced collection as it was"],
    ] as const) {
      const attempt = run({ collection: name, ...payload });
      await expect(attempt).rejects.toThrow(ConfigError);
      await expect(attempt).rejects.toThrow(message);
    }
    const env = testEnv();
    for (const [flags, named] of [
      [["--space", "euclid"], "--space"],
      [["--sync-threshold", "10", "--hnsw-batch-size", "100"], "--hnsw-batch-size"],
    ] as const) {
      const cli = await runCli(["run", "reindex", "--collection", name, ...flags], env);
      expect(cli.code, cli.stderr).toBe(2);
      expect(cli.stderr.trim().split("\n")).toHaveLength(1);
      expect(cli.stderr).toContain(named);
    }
    expect((await chroma.listCollectionNames()).filter((n) => n.startsWith(name) && n !== name)).toEqual([]);
    expect(await settings(name)).toEqual(before);
  }, 120_000);

  it("is scheduled like any kind; its settings are checked by entry", () => {
    const schedule = parseScheduleYaml(`jobs: [{ kind: reindex, cron: "0 3 * * 6", collections: ["products_v1"], maxNeighbors: 32, efConstruction: 200, dropOld: true }]`, "test");
    expect(schedule.jobs).toMatchObject([{ kind: "reindex", maxNeighbors: 32, efConstruction: 200, dropOld: true, keepOldHours: 72 }]);
    const bad = () => parseScheduleYaml(`jobs: [{ kind: reindex, cron: "0 3 * * 6", collections: ["x1y"], space: "hamming" }]`, "test");
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow("jobs[0].space");
  });
});
