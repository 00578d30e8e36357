import { describe, expect, it } from "vitest";
import { recordBytes, writeBatches, type WriteLimits } from "../src/storage/chroma/writer.js";
import type { RecordColumns } from "../src/storage/chroma/record-columns.js";

const MIB = 1024 * 1024;
const SERVER: WriteLimits = { records: 5461, bytes: 40 * MIB, base64Embeddings: true };

function columns(count: number, dimension: number, shape: (i: number) => { document?: string; uri?: string; tags?: string[] } = () => ({})): RecordColumns {
  const rows = Array.from({ length: count }, (_, i) => shape(i));
  return {
    ids: rows.map((_, i) => `rec-${i}`),
    dimension,
    embeddings: new Float32Array(count * dimension).fill(0.5),
    documents: rows.map((r) => r.document ?? null),
    metadatas: rows.map((r) => (r.tags ? { tags: r.tags } : null)),
    uris: rows.map((r) => r.uri ?? null),
  };
}

/** The body the chromadb client sends for a batch, as it sends it (embeddings as base64 float32). */
function bodyBytes(batch: RecordColumns): number {
  const base64 = (i: number) => Buffer.from(batch.embeddings.buffer, batch.embeddings.byteOffset + i * batch.dimension * 4, batch.dimension * 4).toString("base64");
  const body = {
    ids: batch.ids,
    embeddings: batch.ids.map((_, i) => base64(i)),
    ...(batch.documents[0] !== null ? { documents: batch.documents } : {}),
    ...(batch.metadatas[0] !== null ? { metadatas: batch.metadatas } : {}),
    ...(batch.uris[0] !== null ? { uris: batch.uris } : {}),
  };
  return Buffer.byteLength(JSON.stringify(body));
}

describe("write batches", () => {
  it.each([1536, 3072])("a full server batch of %i-dim records is cut by bytes into bodies within 40 MiB", (dimension) => {
    const all = columns(5461, dimension, (i) => ({ document: `document ${i}` }));
    const batches = [...writeBatches(all, SERVER)];
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flatMap((b) => b.ids)).toEqual(all.ids);
    for (const batch of batches) {
      const body = bodyBytes(batch);
      expect(body).toBeLessThanOrEqual(40 * MIB);
      // Never under-estimated: the estimate bounds the body from above.
      expect(batch.ids.reduce((n, _, i) => n + recordBytes(batch, i, true), 0)).toBeGreaterThanOrEqual(body - 64);
    }
    // Filled up to the cap, not cut short: all but the last batch carry over 39 MiB.
    for (const batch of batches.slice(0, -1)) expect(bodyBytes(batch)).toBeGreaterThan(39 * MIB);
  });

  it("keeps to the record limit and splits where the shape changes (document, metadata, URI)", () => {
    const all = columns(12, 4, (i) => (i < 5 ? { document: "d" } : i < 8 ? { uri: "s3://x", tags: ["a"] } : {}));
    const sizes = [...writeBatches(all, { ...SERVER, records: 3 })].map((b) => b.ids.length);
    expect(sizes).toEqual([3, 2, 3, 3, 1]);
  });

  it("refuses, naming it, a record that no request could carry", () => {
    const all = columns(2, 4, (i) => ({ document: i === 1 ? "x".repeat(70_000) : "small" }));
    expect(() => [...writeBatches(all, { ...SERVER, bytes: 65_536 })]).toThrow(/record rec-1 takes \d+ bytes .* more than the 65536/);
  });
});
