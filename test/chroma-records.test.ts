import type { Collection } from "chromadb";
import { beforeAll, describe, expect, it } from "vitest";
import { ChromaReadError } from "../src/storage/chroma/bulk-get.js";
import { ChromaUnavailableError } from "../src/storage/chroma/client.js";
import { readRecords } from "../src/storage/chroma/linear-read.js";
import { freePort } from "../src/storage/chroma/local-server.js";
import type { RecordColumns } from "../src/storage/chroma/record-columns.js";
import { createRichCollection } from "./helpers/backup-fixtures.js";
import { chromaStore, seedCollection, uniqueName } from "./helpers/services.js";

const chroma = chromaStore();

describe("readRecords (chromadb client)", () => {
  const name = uniqueName("pages");
  const inserted = Array.from({ length: 23 }, (_, i) => `rec-${i}`);

  beforeAll(() => seedCollection(chroma, name, 23, 4));

  it.each([
    { pageSize: 5, readAhead: 0 },
    { pageSize: 5, readAhead: 1 },
    { pageSize: 5, readAhead: 3 },
    { pageSize: 23, readAhead: 2 },
    { pageSize: 1, readAhead: 8 },
    { pageSize: 100, readAhead: 4 },
  ])("reads every record once, in insertion order, with $pageSize a page and $readAhead ahead", async (reading) => {
    const collection = await chroma.openCollection(name);
    const ids: string[] = [];
    for await (const page of readRecords(collection, reading)) {
      expect(page.ids.length).toBeLessThanOrEqual(reading.pageSize);
      expect(page.embeddings.length).toBe(page.ids.length * 4);
      ids.push(...page.ids);
    }
    expect(ids).toHaveLength(23);
    expect(ids).toEqual(inserted);
  });
});

async function all(pages: AsyncIterable<RecordColumns>): Promise<RecordColumns[]> {
  const out: RecordColumns[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

describe("ChromaStore.readPages (bulk reader over node:http)", () => {
  it("reads exactly what the chromadb client reads: unicode, absent documents and metadata, every float bit", async () => {
    const name = uniqueName("bulk");
    const collection = await createRichCollection(chroma, name);
    const reading = { pageSize: 7, readAhead: 2 };
    const [bulk, client] = await Promise.all([all(chroma.readPages(collection, reading)), all(readRecords(collection, reading))]);
    expect(bulk.map((p) => p.ids.length)).toEqual([7, 7, 7, 7, 7, 5]);
    expect(bulk).toEqual(client);
    expect(bulk.flatMap((p) => p.documents).some((d) => d !== null && /[^\x00-\x7f]/.test(d))).toBe(true);
  });

  it("names the server's refusal when the collection is gone", async () => {
    const ghost = { id: "00000000-0000-0000-0000-000000000000", name: "ghost" } as Collection;
    await expect(all(chroma.readPages(ghost, { pageSize: 5, readAhead: 1 }))).rejects.toThrow(ChromaReadError);
  });

  it("says where it looked when Chroma does not answer", async () => {
    const nobody = chromaStore(`http://127.0.0.1:${await freePort()}`);
    const collection = { id: "00000000-0000-0000-0000-000000000000", name: "somewhere" } as Collection;
    await expect(all(nobody.readPages(collection, { pageSize: 5, readAhead: 1 }))).rejects.toThrow(ChromaUnavailableError);
    await expect(all(nobody.readPages(collection, { pageSize: 5, readAhead: 1 }))).rejects.toThrow(/CHROMA_URL.*somewhere/);
  });
});
