import { randomBytes } from "node:crypto";
import type { Collection } from "chromadb";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/config-error.js";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import { readBlob, writeBlob } from "../src/storage/chroma/blob-collection.js";
import { chromaStore, jobContext, uniqueName, vectors } from "./helpers/services.js";

/*
 * A client that opened the collection before a reindex keeps its id and writes into the collection kept aside, also
 * after the run has ended: those writes are carried into the live collection before the kept one is dropped (by a
 * later --drop-old or by retention) or rolled back to, or the drop is refused where that would be a guess.
 */

const chroma = chromaStore();
const DIM = 8;
const SIZE = 200;

/** A collection of SIZE records `r<i>` with documents `doc <i>`; the handle returned is the client that keeps its id. */
async function opened(name: string): Promise<Collection> {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: "l2", max_neighbors: 8 } } });
  const ids = Array.from({ length: SIZE }, (_, i) => `r${i}`);
  await collection.add({ ids, embeddings: vectors(SIZE, DIM, 7), documents: ids.map((id) => `doc ${id.slice(1)}`) });
  return collection;
}

const run = (payload: Record<string, unknown>) => reindex.process(reindexPayload.parse(payload), jobContext({ chroma }));

/** A reindex of `name` run to its end: returns the name the replaced collection is kept under. */
async function reindexed(name: string): Promise<string> {
  const result = await run({ collection: name, maxNeighbors: 12, skipRecall: true });
  expect(result).toMatchObject({ action: "rebuilt", records: SIZE, keptAs: expect.any(String) });
  return result.keptAs!;
}

/** Documents of `ids` under the name, by id (those missing left out). */
async function documents(name: string, ids: string[]): Promise<Record<string, string | null>> {
  const got = await (await chroma.openCollection(name)).get({ ids, include: ["documents"] });
  return Object.fromEntries(got.ids.map((id, i) => [id, got.documents[i] ?? null]));
}

const reindexLeftovers = async (name: string) => (await chroma.listCollectionNames()).filter((n) => n.startsWith(`${name}__vkreindex_`));

/** Writes through the stale handle after the run: an update, a new record and a delete. */
async function writeLate(stale: Collection): Promise<void> {
  await stale.upsert({ ids: ["r1", "late"], embeddings: vectors(2, DIM, 21), documents: ["updated late", "late"] });
  await stale.delete({ ids: ["r2"] });
}

describe("reindex: writes through the replaced collection's id after the run", () => {
  it("are carried into the live collection by a later --drop-old, deletes too, keeping what was written through the name", async () => {
    const name = uniqueName("reidx_late");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);
    const live = await chroma.openCollection(name);
    await live.upsert({ ids: ["r3", "by-name"], embeddings: vectors(2, DIM, 22), documents: ["updated by name", "by name"] });
    await live.delete({ ids: ["r4"] });

    const dropped = await run({ collection: name, dropOld: true });
    expect(dropped).toMatchObject({ action: "droppedOld", dropped: [keptAs], keptWrites: { written: 2, deleted: 1, discarded: 0 }, keptBack: [] });
    expect(await documents(name, ["r1", "late", "r2", "r3", "by-name", "r4", "r5"])).toEqual({
      r1: "updated late",
      late: "late",
      r3: "updated by name",
      "by-name": "by name",
      r5: "doc 5",
    });
    expect(dropped.records).toBe(SIZE);
    // The kept collection and the record of its reconcile are gone; writes through its id now fail.
    expect(await reindexLeftovers(name)).toEqual([]);
    await expect(stale.upsert({ ids: ["too-late"], embeddings: vectors(1, DIM, 23) })).rejects.toThrow();
  });

  it("are carried over before retention drops the kept collection, on a later run of another kind", async () => {
    const name = uniqueName("reidx_retain");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);

    const later = await run({ collection: name, efSearch: 50, keepOldHours: 0 });
    expect(later).toMatchObject({ action: "modified", dropped: [keptAs], keptWrites: { written: 2, deleted: 1, discarded: 0 }, keptBack: [] });
    expect(await documents(name, ["r1", "late", "r2"])).toEqual({ r1: "updated late", late: "late" });
    expect(await reindexLeftovers(name)).toEqual([]);
  });

  it("are carried into the live collection before a rollback brings the kept one up to date with it", async () => {
    const name = uniqueName("reidx_back");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);

    const back = await run({ collection: name, rollback: true });
    expect(back).toMatchObject({ action: "rolledBack", keptWrites: { written: 2, deleted: 1, discarded: 0 } });
    expect((await chroma.openCollection(name)).id).toBe(stale.id);
    expect(await documents(name, ["r1", "late", "r2"])).toEqual({ r1: "updated late", late: "late" });
    // The collection put back needs no record any more; the one kept in its place has its own.
    expect((await reindexLeftovers(name)).filter((n) => n.includes(keptAs.split("__vkreindex_old_")[1]!))).toEqual([]);
  });

  it("are found by a record kept in Chroma that is read back whole or not at all (a large one in parts)", async () => {
    const name = uniqueName("reidx_blob");
    // About 1.3 MB: the record of ~90,000 records, in several parts and requests.
    const bytes = randomBytes(1_300_000);
    await writeBlob(chroma, name, { liveId: "x" }, bytes);
    const read = await readBlob(chroma, name);
    expect(read?.metadata).toMatchObject({ liveId: "x" });
    expect(read?.bytes.equals(bytes)).toBe(true);
    // A part changed or missing (a write broken off): no record rather than a wrong one.
    await (await chroma.openCollection(name)).delete({ ids: ["part-000003"] });
    expect(await readBlob(chroma, name)).toBeUndefined();
    expect(await readBlob(chroma, uniqueName("reidx_none"))).toBeUndefined();
    await chroma.deleteCollection(name);
  });

  it("keep the kept collection, refused in one line, when the collection they were reconciled into has been replaced", async () => {
    const name = uniqueName("reidx_gone");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);
    // The collection under the name replaced since (as by a restore --replace): carrying the writes there is a guess.
    await chroma.deleteCollection(name);
    const replaced = await chroma.client.createCollection({ name, embeddingFunction: null });
    await replaced.add({ ids: ["x"], embeddings: vectors(1, DIM, 30) });

    const attempt = run({ collection: name, dropOld: true });
    const refused = await attempt.then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(ConfigError);
    const message = (refused as Error).message;
    expect(message).not.toContain("\n");
    expect(message).toMatch(new RegExp(`^reindex: 3 records of ${keptAs} were written or deleted after its last reconcile, .* is neither ${name} nor kept aside`));
    expect(message).toContain("--drop-changed");
    expect((await reindexLeftovers(name)).filter((n) => n.includes("__vkreindex_old_"))).toEqual([keptAs]);

    const forced = await run({ collection: name, dropOld: true, dropChanged: true });
    expect(forced).toMatchObject({ action: "droppedOld", dropped: [keptAs], keptWrites: { written: 0, deleted: 0, discarded: 3 } });
    expect(await reindexLeftovers(name)).toEqual([]);
  });
});
