import { beforeAll, describe, expect, it } from "vitest";
import { readPages } from "../src/storage/chroma-records.js";
import { chromaStore, seedCollection, uniqueName } from "./helpers/services.js";

const chroma = chromaStore();

describe("readPages", () => {
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
    for await (const page of readPages(collection, reading)) {
      expect(page.ids.length).toBeLessThanOrEqual(reading.pageSize);
      expect(page.embeddings.length).toBe(page.ids.length * 4);
      ids.push(...page.ids);
    }
    expect(ids).toHaveLength(23);
    expect(ids).toEqual(inserted);
  });
});
