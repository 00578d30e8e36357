import { describe, expect, it } from "vitest";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import type { Progress } from "../src/jobs/job-context.js";
import { currentIndex } from "../src/storage/index-settings.js";
import { RECORD_FIELDS } from "../src/storage/linear-read.js";
import { chromaStore, jobContext, uniqueName, vectors } from "./helpers/services.js";

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

/** Every record of a collection as one comparable line, sorted by id. */
export async function contents(name: string): Promise<string[]> {
  const collection = await chroma.openCollection(name);
  const lines: string[] = [];
  for await (const page of chroma.readPages(collection, { pageSize: 500, readAhead: 1, include: RECORD_FIELDS })) {
    page.ids.forEach((id, i) => {
      const metadata = page.metadatas[i];
      const sorted = metadata ? Object.keys(metadata).sort().map((key) => [key, metadata[key]]) : null;
      lines.push(JSON.stringify([id, page.documents[i], sorted, Array.from(page.embeddings.subarray(i * page.dimension, (i + 1) * page.dimension))]));
    });
  }
  return lines.sort();
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
    const before = await contents(name);
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
    expect(await contents(name)).toEqual(before);
    expect(await leftovers(name, "new")).toEqual([]);
    expect(await leftovers(name, "swap")).toEqual([]);
    expect(await leftovers(name, "old")).toEqual([result.keptAs]);
    expect((await chroma.openCollection(result.keptAs!)).id).toBe(oldId);

    // Written after the reindex, through the name: a rollback keeps it.
    await swapped.upsert({ ids: ["r5", "late"], embeddings: vectors(2, DIM, 9), documents: ["changed", "late"], metadatas: [{ n: -5 }, { n: -1 }] });
    await swapped.delete({ ids: ["r7"] });
    const written = await contents(name);
    const back = await run({ collection: name, rollback: true });
    expect(back).toMatchObject({ action: "rolledBack", records: 1200 });
    expect(back.after).toMatchObject({ space: "l2", maxNeighbors: 8, efConstruction: 40 });
    expect((await chroma.openCollection(name)).id).toBe(oldId);
    expect(await contents(name)).toEqual(written);
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
    const result = await run({ collection: name, maxNeighbors: 12, skipRecall: true, dropOld: true }, async (p) => {
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
});
