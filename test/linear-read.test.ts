import type { Collection } from "chromadb";
import { beforeAll, describe, expect, it } from "vitest";
import { archive } from "../src/jobs/archive.js";
import { backup } from "../src/jobs/backup.js";
import type { Progress } from "../src/jobs/job-context.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { readChunk } from "../src/storage/backup-format/backup-reader.js";
import { clientGet, countIds, idsAt, inRequestedOrder, listIds, readRecords, type ChromaGet, type LinearReading } from "../src/storage/chroma/linear-read.js";
import type { RecordColumns } from "../src/storage/chroma/record-columns.js";
import { chromaStore, jobContext, seedCollection, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();
const idsOf = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `rec-${from + i}`);

async function readAll(collection: Collection, reading: LinearReading): Promise<{ pages: RecordColumns[]; ids: string[] }> {
  const pages: RecordColumns[] = [];
  for await (const page of readRecords(collection, reading)) pages.push(page);
  return { pages, ids: pages.flatMap((p) => p.ids) };
}

describe("readRecords: ids listed in windows, records fetched by id", () => {
  const name = uniqueName("linear");
  const count = 60;
  let collection: Collection;

  beforeAll(async () => {
    await seedCollection(chroma, name, count, 3);
    collection = await chroma.openCollection(name);
  });

  it.each([
    { pageSize: 6, idWindow: 30, idOverlap: 0, readAhead: 0 }, // pages and windows divide the collection
    { pageSize: 7, idWindow: 30, idOverlap: 0, readAhead: 2 }, // pages do not divide a window
    { pageSize: 5, idWindow: 13, idOverlap: 4, readAhead: 1 }, // windows overlap and divide nothing
    { pageSize: 1, idWindow: 7, idOverlap: 6, readAhead: 3 }, // one new id per window
    { pageSize: 500, idWindow: 50_000, idOverlap: 1000, readAhead: 2 }, // the defaults: one window, one page
  ])("gives every record once, in insertion order, with its fields: $pageSize a page, windows of $idWindow overlapping $idOverlap", async (reading) => {
    const tally = { listed: 0, gone: 0 };
    const { pages, ids } = await readAll(collection, { ...reading, tally });
    expect(ids).toEqual(idsOf(0, count));
    expect(tally).toEqual({ listed: count, gone: 0 });
    for (const page of pages) {
      expect(page.ids.length).toBeLessThanOrEqual(reading.pageSize);
      expect(page.documents).toEqual(page.ids.map((id) => `document ${id.slice(4)}`));
    }
    const embeddings = pages.flatMap((p) => Array.from(p.embeddings));
    expect(embeddings).toEqual(vectors(count, 3).flat().map(Math.fround));
  });

  it("fetches fewer records a page when embeddings are wide, so a page holds at most pageValues numbers", async () => {
    const wide = uniqueName("linear_wide");
    await seedCollection(chroma, wide, 11, 100);
    const { pages, ids } = await readAll(await chroma.openCollection(wide), { pageSize: 500, readAhead: 1, pageValues: 250 });
    expect(pages.map((p) => p.ids.length)).toEqual([2, 2, 2, 2, 2, 1]);
    expect(ids).toEqual(idsOf(0, 11));
  });

  it("lists, counts and picks ids in the same order the records come in", async () => {
    const windows: string[][] = [];
    for await (const ids of listIds(collection, { idWindow: 25, idOverlap: 5 })) windows.push(ids);
    expect(windows.flat()).toEqual(idsOf(0, count));
    expect(windows.map((w) => w.length)).toEqual([25, 20, 15]);
    expect(await countIds(collection, { idWindow: 9, idOverlap: 2 })).toBe(count);
    expect(await idsAt(collection, [59, 0, 31, 60, 12], { idWindow: 10, idOverlap: 3 })).toEqual(["rec-59", "rec-0", "rec-31", "rec-12"]);
  });

  it("reads only the records matching a filter, in order", async () => {
    const filtered = uniqueName("linear_where");
    const c = await chroma.client.createCollection({ name: filtered, embeddingFunction: null });
    await c.add({ ids: idsOf(0, 40), embeddings: vectors(40, 2), metadatas: idsOf(0, 40).map((_, i) => ({ n: i })) });
    const where = { n: { $gte: 17 } };
    const { ids } = await readAll(c, { pageSize: 4, readAhead: 1, idWindow: 6, idOverlap: 1, where });
    expect(ids).toEqual(idsOf(17, 40));
    expect(await countIds(c, { where, idWindow: 5, idOverlap: 0 })).toBe(23);
  });

  it("puts Chroma's answer in the order the ids were asked for", async () => {
    const asked: string[][] = [];
    // Real Chroma, with the page's ids asked in reverse: the records must still come in the listing's order.
    const reversing: ChromaGet = (c, request) => {
      if (request.ids) asked.push(request.ids);
      return clientGet(c, request.ids ? { ...request, ids: [...request.ids].reverse() } : request);
    };
    const backwards = await readAll(collection, { pageSize: 8, readAhead: 0, get: reversing });
    expect(asked.length).toBe(8);
    expect(backwards.ids).toEqual(idsOf(0, count));
    expect(backwards.pages.flatMap((p) => p.documents)).toEqual(idsOf(0, count).map((id) => `document ${id.slice(4)}`));
  });

  it("reorders every column of an answer that comes in another order, and drops ids not asked for", () => {
    const answer = {
      ids: ["c", "x", "a", "b"],
      embeddings: [[3], [9], [1], [2]],
      documents: ["C", "X", "A", null],
      metadatas: [{ k: 3 }, null, { k: 1 }, null],
      uris: ["u3", "u9", "u1", "u2"],
    };
    expect(inRequestedOrder(["a", "b", "gone", "c"], answer)).toEqual({
      ids: ["a", "b", "c"],
      embeddings: [[1], [2], [3]],
      documents: ["A", null, "C"],
      metadatas: [{ k: 1 }, null, { k: 3 }],
      uris: ["u1", "u2", "u3"],
    });
    const inOrder = { ids: ["a", "c"], embeddings: [[1], [3]] };
    expect(inRequestedOrder(["a", "b", "c"], inOrder)).toBe(inOrder);
  });
});

describe("records deleted while a collection is read", () => {
  it("counts records deleted between their listing and their fetch, and gives every other record once, in order", async () => {
    const name = uniqueName("linear_gone");
    await seedCollection(chroma, name, 30, 3);
    const collection = await chroma.openCollection(name);
    const tally = { listed: 0, gone: 0 };
    const ids: string[] = [];
    // No read ahead: once the first page is here, the later ones are listed but not yet fetched.
    for await (const page of readRecords(collection, { pageSize: 4, readAhead: 0, tally })) {
      if (ids.length === 0) await collection.delete({ ids: ["rec-5", "rec-6", "rec-21"] });
      ids.push(...page.ids);
    }
    expect(ids).toEqual(idsOf(0, 30).filter((id) => !["rec-5", "rec-6", "rec-21"].includes(id)));
    expect(tally).toEqual({ listed: 30, gone: 3 });
  });

  it("misses nothing of a later window when records in front of it are deleted between two listings", async () => {
    const name = uniqueName("linear_shift");
    await seedCollection(chroma, name, 40, 3);
    const collection = await chroma.openCollection(name);
    // Real Chroma; the only addition is a writer deleting 3 records of the first window right after it was listed,
    // before the second window is listed (with offsets alone, rec-10..rec-12 would then slip out of the listing).
    let deleted = false;
    const withWriter: ChromaGet = async (c, request) => {
      const answer = await clientGet(c, request);
      if (request.include.length === 0 && !deleted) {
        deleted = true;
        await c.delete({ ids: ["rec-2", "rec-3", "rec-4"] });
      }
      return answer;
    };
    const tally = { listed: 0, gone: 0 };
    const { ids } = await readAll(collection, { pageSize: 3, readAhead: 1, idWindow: 10, idOverlap: 3, get: withWriter, tally });
    expect(ids).toEqual(idsOf(0, 40).filter((id) => !["rec-2", "rec-3", "rec-4"].includes(id)));
    expect(tally).toEqual({ listed: 40, gone: 3 });
  });

  it("a backup reports them in its result and manifest, and says the collection changed", async () => {
    const name = uniqueName("linear_backup");
    await seedCollection(chroma, name, 25, 3);
    const collection = await chroma.openCollection(name);
    const ctx = jobContext({
      // Called after each page is written: after the first, delete records listed but not yet fetched.
      progress: async (p: Progress) => {
        if (p.done === 5) await collection.delete({ ids: ["rec-9", "rec-17"] });
      },
    });
    const result = await backup.process(backup.payload.parse({ collection: name, pageSize: 5, readAhead: 0 }), ctx);
    expect(result).toMatchObject({ records: 23, deletedWhileReading: 2, consistent: false });
    expect(result.warnings[0]).toMatch(/2 deleted between listing and reading/);
    const manifest = await readManifest(ctx.backupStore, name, result.backupId);
    expect(manifest).toMatchObject({ records: 23, deletedWhileReading: 2, countBefore: 25, countAfter: 23, consistent: false });
    const stored = (await Promise.all(manifest.chunks.map((chunk) => readChunk(ctx.backupStore, manifest, chunk)))).flatMap((c) => c.ids);
    expect(stored).toEqual(idsOf(0, 25).filter((id) => id !== "rec-9" && id !== "rec-17"));
  });

  it("an archive to the object store reports the count beside what it archived", async () => {
    const name = uniqueName("linear_archive");
    const c = await chroma.client.createCollection({ name, embeddingFunction: null });
    await c.add({ ids: idsOf(0, 12), embeddings: vectors(12, 2), metadatas: idsOf(0, 12).map(() => ({ _created_at: 1000 })) });
    const ctx = jobContext();
    const result = await archive.process(archive.payload.parse({ collection: name, olderThanDays: 1, to: "object-store", batchSize: 5 }), ctx);
    expect(result).toMatchObject({ archived: 12, deletedWhileReading: 0 });
    expect(await c.count()).toBe(0);
  });
});
