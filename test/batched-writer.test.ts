import type { Collection, Metadata } from "chromadb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChromaStore } from "../src/storage/chroma/client.js";
import { concatColumns, sliceColumns, type RecordColumns } from "../src/storage/chroma/record-columns.js";
import { BatchedWriter, BODY_OVERHEAD, recordBytes, type WriteLimits } from "../src/storage/chroma/writer.js";
import { contents } from "./helpers/collection-contents.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, uniqueName } from "./helpers/services.js";

// Restoring a deduplicated backup feeds BatchedWriter thousands of chunks of a few records each; these tests feed it
// the same way against a real Chroma, and look at every write request it sent through a proxy.
const DIMENSION = 8;
const ADDS = 1500;
const RECORD_LIMIT = 100;
const direct = chromaStore();
let proxy: HttpFaultProxy;
let viaProxy: ChromaStore;

beforeAll(async () => {
  proxy = await startHttpFaultProxy(chromaUrl(), { keepBodies: /\/collections\/[^/]+\/add$/ });
  viaProxy = chromaStore(proxy.url);
});
afterAll(() => proxy.close());

/** Deterministic, so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Row {
  document: string | null;
  metadata: Metadata | null;
}

function columnsOf(rows: Row[], prefix: string, seed: number): RecordColumns {
  const next = random(seed);
  return {
    // Of one length, so records alike in content are alike in size.
    ids: rows.map((_, i) => `${prefix}-${String(i).padStart(5, "0")}`),
    dimension: DIMENSION,
    embeddings: Float32Array.from({ length: rows.length * DIMENSION }, () => next() - 0.5),
    documents: rows.map((r) => r.document),
    metadatas: rows.map((r) => r.metadata),
    uris: rows.map(() => null),
  };
}

/**
 * Adds of 1 to 10 records in runs of one shape (document or not, metadata or not), with documents short (so batches
 * fill up by records) or, in other runs, long (so they fill up by bytes), with multi-byte characters throughout.
 */
function smallAdds(): { all: RecordColumns; adds: [number, number][] } {
  const next = random(42);
  const letters = [..."aü東🚀 bc"];
  const text = (length: number) => Array.from({ length }, (_, i) => letters[(i * 5 + length) % letters.length]).join("");
  const rows: Row[] = [];
  const adds: [number, number][] = [];
  let shape = 3;
  let long = false;
  for (let a = 0; a < ADDS; a++) {
    if (next() < 0.04) shape = Math.floor(next() * 4);
    // Long runs are short and rare: each of their requests carries few records, and every request takes a while.
    if (next() < (long ? 0.2 : 0.03)) long = !long;
    const count = 1 + Math.floor(next() * 10);
    adds.push([rows.length, rows.length + count]);
    for (let r = 0; r < count; r++) {
      const i = rows.length;
      const length = long ? 200 + Math.floor(next() * 1300) : 5 + Math.floor(next() * 35);
      rows.push({
        document: shape & 1 ? text(length) : null,
        metadata: shape & 2 ? { n: i, half: i + 0.5, even: i % 2 === 0, tag: text(3 + (i % 9)) } : null,
      });
    }
  }
  return { all: columnsOf(rows, "rec", 7), adds };
}

const shapeOf = (columns: RecordColumns, i: number) => (columns.documents[i] === null ? 0 : 1) | (columns.metadatas[i] === null ? 0 : 2);

/** Each record as contents() shows it read back from Chroma. */
function expectedLines(columns: RecordColumns): string[] {
  return columns.ids
    .map((id, i) => {
      const metadata = columns.metadatas[i];
      const sorted = metadata ? Object.keys(metadata).sort().map((key) => [key, metadata[key]]) : null;
      const embedding = Array.from(columns.embeddings.subarray(i * DIMENSION, (i + 1) * DIMENSION));
      return JSON.stringify([id, columns.documents[i], sorted, embedding]);
    })
    .sort();
}

interface SentWrite {
  ids: string[];
  bytes: number;
}

/** The write requests sent to a collection through the proxy since `from`, in order: their ids and body bytes. */
function writesTo(collection: Collection, from: number): SentWrite[] {
  return proxy.requests.slice(from).flatMap((request) => {
    if (!request.path.includes(`/collections/${collection.id}/add`)) return [];
    const body = request.body!;
    // The declared length is what the server measures against its cap, and must be what was sent.
    expect(request.bytes).toBe(body.length);
    return [{ ids: (JSON.parse(body.toString("utf8")) as { ids: string[] }).ids, bytes: body.length }];
  });
}

async function freshCollection(label: string): Promise<{ name: string; collection: Collection }> {
  const name = uniqueName(label);
  return { name, collection: await viaProxy.client.createCollection({ name, embeddingFunction: null }) };
}

describe("BatchedWriter over thousands of small adds", () => {
  it("writes every record once, in requests within the record and byte limits, each as full as the limits allow", async () => {
    const { all, adds } = smallAdds();
    const server = await viaProxy.writeLimits();
    const sizes = all.ids.map((_, i) => recordBytes(all, i, server.base64Embeddings));
    const shortSizes = sizes.filter((_, i) => (all.documents[i]?.length ?? 0) < 100);
    const meanShort = shortSizes.reduce((a, b) => a + b, 0) / shortSizes.length;
    // Room for about 1.6 times a full batch of short records: runs of short ones fill up by records, long ones by bytes.
    const limits: WriteLimits = { ...server, records: RECORD_LIMIT, bytes: BODY_OVERHEAD + Math.round(RECORD_LIMIT * meanShort * 1.6) };
    const budget = limits.bytes - BODY_OVERHEAD;

    const { name, collection } = await freshCollection("writer_small_adds");
    const from = proxy.requests.length;
    const writer = new BatchedWriter(collection, { limits, mode: "add" }, DIMENSION);
    for (const [start, end] of adds) await writer.add(sliceColumns(all, start, end));
    await writer.finish();
    expect(writer.written).toBe(all.ids.length);

    const writes = writesTo(collection, from);
    // Exactly once, in the order added: no record dropped or repeated at a cut.
    expect(writes.flatMap((w) => w.ids)).toEqual(all.ids);
    const index = new Map(all.ids.map((id, i) => [id, i]));
    let fullByRecords = 0;
    let fullByBytes = 0;
    let byShape = 0;
    writes.forEach((write, k) => {
      const rows = write.ids.map((id) => index.get(id)!);
      const estimate = rows.reduce((n, i) => n + sizes[i]!, 0);
      expect(write.ids.length).toBeLessThanOrEqual(limits.records);
      expect(write.bytes).toBeLessThanOrEqual(limits.bytes);
      expect(estimate).toBeLessThanOrEqual(budget);
      expect(new Set(rows.map((i) => shapeOf(all, i))).size).toBe(1);
      const following = writes[k + 1];
      if (!following) return;
      // Cut only where it had to: the next record would not have fitted, by count, bytes or shape.
      const next = index.get(following.ids[0]!)!;
      const full = write.ids.length === limits.records;
      const noRoom = estimate + sizes[next]! > budget;
      const otherShape = shapeOf(all, next) !== shapeOf(all, rows[0]!);
      expect({ write: k, cutFor: full || noRoom || otherShape }).toEqual({ write: k, cutFor: true });
      if (full) fullByRecords++;
      else if (noRoom) fullByBytes++;
      else byShape++;
    });
    // Every kind of cut was exercised, many times over.
    expect(fullByRecords).toBeGreaterThan(20);
    expect(fullByBytes).toBeGreaterThan(20);
    expect(byShape).toBeGreaterThan(5);

    // What Chroma holds is what was added: ids, embeddings (float32, bit for bit), documents and metadata.
    expect(await contents(direct, name)).toEqual(expectedLines(all));
  });

  it("cuts at the byte limit exactly: a batch that fits to the byte goes whole, one byte less holds a record fewer", async () => {
    const server = await viaProxy.writeLimits();
    const all = columnsOf(Array.from({ length: 23 }, () => ({ document: "d".repeat(300), metadata: null })), "fit", 3);
    const size = recordBytes(all, 0, server.base64Embeddings);
    expect(all.ids.every((_, i) => recordBytes(all, i, server.base64Embeddings) === size)).toBe(true);
    const requestSizes = async (bytes: number) => {
      const { collection } = await freshCollection("writer_exact_fit");
      const from = proxy.requests.length;
      const writer = new BatchedWriter(collection, { limits: { ...server, records: 1000, bytes }, mode: "add" }, DIMENSION);
      for (let start = 0; start < all.ids.length; start += 3) await writer.add(sliceColumns(all, start, Math.min(start + 3, all.ids.length)));
      await writer.finish();
      const writes = writesTo(collection, from);
      for (const write of writes) expect(write.bytes).toBeLessThanOrEqual(bytes);
      return writes.map((w) => w.ids.length);
    };
    expect(await requestSizes(BODY_OVERHEAD + 5 * size)).toEqual([5, 5, 5, 5, 3]);
    expect(await requestSizes(BODY_OVERHEAD + 5 * size - 1)).toEqual([4, 4, 4, 4, 4, 3]);
  });

  it("refuses a record too large for any request, naming it, before sending any record of its add", async () => {
    const server = await viaProxy.writeLimits();
    const limits: WriteLimits = { ...server, records: RECORD_LIMIT, bytes: 8192 };
    const budget = limits.bytes - BODY_OVERHEAD;
    /** A document that makes a record of `prefix` take `size` bytes. */
    const documentFor = (prefix: string, size: number) =>
      "x".repeat(size - recordBytes(columnsOf([{ document: "", metadata: null }], prefix, 1), 0, server.base64Embeddings));
    const small = columnsOf(Array.from({ length: 7 }, () => ({ document: "small", metadata: null })), "ok", 9);
    // alone-00000 fills a request by itself; big-00001 is one byte over what any request may carry.
    const fitsAlone = columnsOf([{ document: documentFor("alone", budget), metadata: null }], "alone", 5);
    const tooLarge = columnsOf(
      [{ document: "small", metadata: null }, { document: documentFor("big", budget + 1), metadata: null }, { document: "small", metadata: null }],
      "big",
      5,
    );
    expect(recordBytes(fitsAlone, 0, server.base64Embeddings)).toBe(budget);
    expect(recordBytes(tooLarge, 1, server.base64Embeddings)).toBe(budget + 1);

    const { name, collection } = await freshCollection("writer_oversize");
    const from = proxy.requests.length;
    const writer = new BatchedWriter(collection, { limits, mode: "add" }, DIMENSION);
    await writer.add(small);
    await writer.add(fitsAlone);
    await expect(writer.add(tooLarge)).rejects.toThrow(
      new RegExp(`^record big-00001 takes ${budget + 1} bytes in a write request, more than the ${limits.bytes} a request may carry \\(VK_CHROMA_MAX_REQUEST_BYTES\\)$`),
    );
    // The writer carries on with what it had: none of the refused add (not even big-00000, before the large one) is sent.
    await writer.finish();
    const writes = writesTo(collection, from);
    expect(writes.map((w) => w.ids)).toEqual([small.ids, fitsAlone.ids]);
    expect(writes[1]!.bytes).toBeLessThanOrEqual(limits.bytes);
    expect(await contents(direct, name)).toEqual(expectedLines(concatColumns([small, fitsAlone], DIMENSION)));
  });
});
