import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CollectionSync, type SyncPassOptions, type SyncPassOutcome, type SyncTuning } from "../src/storage/chroma/collection-sync.js";
import { contents } from "./helpers/collection-contents.js";
import { chromaStore, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();
const DIM = 4;

async function seeded(name: string, ids: readonly string[]) {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
  const embeddings = vectors(ids.length, DIM, 5);
  for (let start = 0; start < ids.length; start += 2000) {
    await collection.add({
      ids: ids.slice(start, start + 2000),
      embeddings: embeddings.slice(start, start + 2000),
      documents: ids.slice(start, start + 2000).map((id) => `doc ${id}`),
      metadatas: ids.slice(start, start + 2000).map((_, i) => ({ n: start + i })),
    });
  }
  return collection;
}

async function syncOf(label: string, ids: readonly string[], records: number, tuning: SyncTuning) {
  const source = await seeded(uniqueName(`${label}-src`), ids);
  const target = await chroma.client.createCollection({ name: uniqueName(`${label}-dst`), embeddingFunction: null });
  const limits = await chroma.writeLimits(records);
  return { source, target, sync: new CollectionSync(chroma, source, target, limits, tuning) };
}

const passOptions = (mode: "add" | "upsert", onRecords?: SyncPassOptions["onRecords"]): SyncPassOptions => ({
  mode,
  pageSize: 500,
  readAhead: 1,
  signal: new AbortController().signal,
  onRecords,
});

/** Catch-up passes until one finds nothing (as the reindex runs them), at most `max`. */
async function catchUp(sync: CollectionSync, max = 5): Promise<SyncPassOutcome[]> {
  const passes: SyncPassOutcome[] = [];
  while (passes.length < max) {
    passes.push(await sync.pass(passOptions("upsert")));
    if (passes.at(-1)!.written === 0 && passes.at(-1)!.deleted === 0) break;
  }
  return passes;
}

const idsOf = async (name: string) => (await contents(chroma, name)).map((line) => (JSON.parse(line) as [string])[0]);

describe("CollectionSync (a reindex's copy and catch-up)", () => {
  // Many more deletes than the listing's overlap and than one delete batch: the old sync deleted each batch from the
  // target while it was still listing it, so ids slid past the listing unread and their records stayed in the target.
  it.each([
    { label: "one listing", unseenBatch: undefined },
    { label: "listing again after each 350 gone", unseenBatch: 350 },
  ])("carries over thousands of scattered deletes made during the copy ($label)", async ({ unseenBatch }) => {
    const n = 6000;
    const ids = Array.from({ length: n }, (_, i) => `r${i}`);
    const { source, target, sync } = await syncOf("sync-deletes", ids, 150, { idWindow: 500, idOverlap: 25, unseenBatch });
    const deleted = ids.filter((_, i) => i % 3 === 1);
    let done = false;
    const copy = await sync.pass(
      passOptions("add", async (read) => {
        if (done || read < n / 2) return;
        done = true;
        for (let start = 0; start < deleted.length; start += 1000) await source.delete({ ids: deleted.slice(start, start + 1000) });
      }),
    );
    expect(done).toBe(true);
    expect(copy.deleted).toBe(0);

    const passes = await catchUp(sync);
    expect(passes.at(-1)).toEqual({ read: n - deleted.length, written: 0, deleted: 0 });
    // Every deleted record the copy had carried (those before the middle of the source) deleted again, once.
    const copiedThenDeleted = passes.reduce((sum, pass) => sum + pass.deleted, 0);
    expect(copiedThenDeleted).toBeGreaterThan(750);
    expect(copiedThenDeleted).toBeLessThanOrEqual(deleted.length);

    expect(await target.count()).toBe(n - deleted.length);
    expect(await idsOf(target.name)).toEqual(ids.filter((_, i) => i % 3 !== 1).sort());
    expect(await contents(chroma, target.name)).toEqual(await contents(chroma, source.name));
    expect(sync.size).toBe(n - deleted.length);
  });

  // 64-bit collisions of a keyed SHA-1 cannot be found in test time (about 2³² hashes, and the key changes each run),
  // so the table is given a hash under which `twin-x` and `x` share a key.
  it("settles and carries deletes when ids share a hash key", async () => {
    const twinHash: SyncTuning["idHash"] = (id) => {
      const digest = createHash("sha1").update(id.replace(/^twin-/, "")).digest();
      return [digest.readUInt32BE(0), digest.readUInt32BE(4)];
    };
    const base = Array.from({ length: 200 }, (_, i) => `r${i}`);
    const ids = [...base, ...base.slice(0, 20).map((id) => `twin-${id}`)];
    const { source, target, sync } = await syncOf("sync-collide", ids, 100, { idHash: twinHash });

    expect(await sync.pass(passOptions("add"))).toEqual({ read: 220, written: 220, deleted: 0 });
    // The old table took each twin for a change of the other in every pass and never settled.
    expect(await sync.pass(passOptions("upsert"))).toEqual({ read: 220, written: 0, deleted: 0 });

    // Deleting one of a pair (either one) reaches the target; the other stays.
    await source.delete({ ids: ["r3", "twin-r5"] });
    await source.upsert({ ids: ["twin-r7"], embeddings: vectors(1, DIM, 77), documents: ["changed"] });
    expect(await catchUp(sync)).toEqual([
      { read: 218, written: 1, deleted: 2 },
      { read: 218, written: 0, deleted: 0 },
    ]);
    expect(await contents(chroma, target.name)).toEqual(await contents(chroma, source.name));
    expect(await idsOf(target.name)).toContain("twin-r3");
    expect(await idsOf(target.name)).toContain("r5");
    expect(sync.size).toBe(218);
  });

  it("is not used again after a pass that failed", async () => {
    const { sync } = await syncOf("sync-failed", ["a", "b", "c"], 100, {});
    const aborted = new AbortController();
    aborted.abort();
    await expect(sync.pass({ ...passOptions("add"), signal: aborted.signal })).rejects.toThrow();
    await expect(sync.pass(passOptions("upsert"))).rejects.toThrow(/whose pass failed is not reused/);
  });
});
