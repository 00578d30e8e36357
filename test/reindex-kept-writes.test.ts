import { randomBytes } from "node:crypto";
import type { Collection } from "chromadb";
import { describe, expect, it } from "vitest";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import { readBlob, writeBlob } from "../src/storage/chroma/blob-collection.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { cliKilledAt, runCli } from "./helpers/cli.js";
import { startHttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

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

  it("are found by a record kept in Chroma that is read back whole or not at all (a large one in parts, each write within the request limit)", async () => {
    const name = uniqueName("reidx_blob");
    // About 1.3 MB: the record of ~90,000 records, in several parts and requests, each within the smallest limit.
    const bytes = randomBytes(1_300_000);
    const proxy = await startHttpFaultProxy(chromaUrl(), { keepBodies: /\/add$/ });
    try {
      const limited = new ChromaStore({ url: proxy.url, tenant: "default_tenant", database: "default_database", maxRequestBytes: 65_536 });
      await writeBlob(limited, name, { liveId: "x" }, bytes);
      const adds = proxy.requests.filter((r) => r.path.endsWith("/add"));
      expect(adds.length).toBeGreaterThan(20);
      for (const add of adds) expect(add.body!.length).toBeLessThanOrEqual(65_536);
    } finally {
      await proxy.close();
    }
    const read = await readBlob(chroma, name);
    expect(read.kind).toBe("ok");
    expect(read.kind === "ok" && read.metadata).toMatchObject({ liveId: "x" });
    expect(read.kind === "ok" && read.bytes.equals(bytes)).toBe(true);
    // A part changed or missing (a write broken off): damaged, not a wrong record nor none.
    await (await chroma.openCollection(name)).delete({ ids: ["part-000003"] });
    expect(await readBlob(chroma, name)).toEqual({ kind: "damaged", why: expect.stringContaining("part-000003") });
    expect(await readBlob(chroma, uniqueName("reidx_none"))).toEqual({ kind: "missing" });
    await chroma.deleteCollection(name);
  });

  it("once carried, are not carried again over newer writes through the name when the drop failed after the carry", async () => {
    const name = uniqueName("reidx_replay");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);
    // The writes are carried, then the run dies before the kept collection is dropped.
    await cliKilledAt(["run", "reindex", "--collection", name, "--drop-old"], testEnv(), "reindex:settled");
    expect(await documents(name, ["r1", "r2"])).toEqual({ r1: "updated late" });
    // Meanwhile, through the name: r1 changed again, r2 (deleted through the old id, so carried as a delete) added back.
    const live = await chroma.openCollection(name);
    await live.upsert({ ids: ["r1", "r2"], embeddings: vectors(2, DIM, 24), documents: ["newer by name", "back by name"] });

    const again = await run({ collection: name, dropOld: true });
    expect(again).toMatchObject({ action: "droppedOld", dropped: [keptAs], keptWrites: { written: 0, deleted: 0, discarded: 0 }, keptBack: [], refused: null });
    expect(await documents(name, ["r1", "r2", "late"])).toEqual({ r1: "newer by name", r2: "back by name", late: "late" });
    expect(await reindexLeftovers(name)).toEqual([]);
  });

  it("do not fail a rebuild whose retention clean-up fails after the swap: the kept collection stays, with the reason", async () => {
    const name = uniqueName("reidx_cleanfail");
    const stale = await opened(name);
    const older = await reindexed(name);
    await writeLate(stale);
    let kept: string | undefined;
    const proxy = await startHttpFaultProxy(chromaUrl());
    try {
      // Chroma fails every delete of the older kept collection.
      proxy.inject({ method: "DELETE", path: new RegExp(`/collections/${older}$`), fault: { kind: "status", status: 500, body: '{"error":"InternalError","message":"injected"}' } });
      const viaProxy = chromaStore(proxy.url);
      const result = await reindex.process(reindexPayload.parse({ collection: name, rebuild: true, skipRecall: true, keepOldHours: 0 }), jobContext({ chroma: viaProxy }));
      expect(result).toMatchObject({ action: "rebuilt", dropped: [], keptWrites: { written: 2, deleted: 1 }, refused: null });
      kept = result.keptAs!;
      expect(result.keptBack).toEqual([{ kept: older, reason: expect.stringMatching(new RegExp(`^reindex: could not carry over the writes made to ${older} or drop it \\(.*\\); it stays`)) }]);
      expect(proxy.requests.some((r) => r.method === "DELETE" && r.fault === "status")).toBe(true);
    } finally {
      await proxy.close();
    }
    // Carried into the collection they were reconciled into, which the rebuild has just kept aside in turn.
    const carried = await (await chroma.openCollection(kept!)).get({ ids: ["r1", "late", "r2"], include: ["documents"] });
    expect(Object.fromEntries(carried.ids.map((id, i) => [id, carried.documents[i]]))).toEqual({ r1: "updated late", late: "late" });
    expect((await reindexLeftovers(name)).filter((n) => n.includes("__vkreindex_old_")).sort()).toEqual([older, kept!].sort());
    // Its record went before the failed delete (which may have emptied it part way, on a server that deletes records
    // first): the next run compares it with the live collection instead, and gives up what differs only when told to.
    const next = await run({ collection: name, dropOld: true, dropChanged: true });
    expect(next.dropped.sort()).toEqual([older, kept!].sort());
    expect(next.keptWrites).toMatchObject({ written: 2, deleted: 1 });
    expect(await documents(name, ["r1", "late", "r2"])).toEqual({ r1: "updated late", late: "late" });
  });

  it("are refused in one line naming the damaged record when the record of the reconcile is damaged", async () => {
    const name = uniqueName("reidx_damaged");
    const stale = await opened(name);
    const keptAs = await reindexed(name);
    await writeLate(stale);
    const record = (await reindexLeftovers(name)).find((n) => n.includes("__vkreindex_carried_"))!;
    await (await chroma.openCollection(record)).modify({ metadata: { keptId: "x", liveId: "y", vk_parts: -1, vk_bytes: 0, vk_sha256: "no" } });

    const refused = await run({ collection: name, dropOld: true });
    expect(refused).toMatchObject({ action: "droppedOld", dropped: [], keptBack: [{ kept: keptAs }] });
    // Compared with the live collection: r1 and "late" differ; r2, deleted there, is not in it to compare.
    expect(refused.refused).toMatch(new RegExp(`^reindex: 2 records of ${keptAs} are not in ${name} as they are there, and the record of its last reconcile \\(${record}\\) is damaged \\(metadata vk_parts: .*\\) .*--drop-changed$`));
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

    // From the CLI: the result says what was dropped and carried (nothing), the refusal is one line, exit 2.
    const cli = await runCli(["run", "reindex", "--collection", name, "--drop-old", "--json"], testEnv());
    expect(cli.code).toBe(2);
    expect(JSON.parse(cli.stdout)).toMatchObject({ action: "droppedOld", dropped: [], keptBack: [{ kept: keptAs }] });
    const message = cli.stderr.split("\n").find((line) => line.startsWith("vectorkeeper: "))!.slice("vectorkeeper: ".length);
    expect(message).toMatch(new RegExp(`^reindex: 3 records of ${keptAs} were written or deleted after its last reconcile, .* is neither ${name} nor kept aside`));
    expect(message).toContain("--drop-changed");
    expect((await reindexLeftovers(name)).filter((n) => n.includes("__vkreindex_old_"))).toEqual([keptAs]);

    const forced = await run({ collection: name, dropOld: true, dropChanged: true });
    expect(forced).toMatchObject({ action: "droppedOld", dropped: [keptAs], keptWrites: { written: 0, deleted: 0, discarded: 3 } });
    expect(await reindexLeftovers(name)).toEqual([]);
  });
});
