import type { Collection, Metadata, Where } from "chromadb";
import type { RecordColumns } from "./record-columns.js";
import { embeddingAt, sliceColumns } from "./record-columns.js";

/** A Chroma `get` result as columns, embeddings packed as float32. */
export function columnsFromGet(result: {
  ids: string[];
  embeddings: (number[] | null)[] | null;
  documents: (string | null)[] | null;
  metadatas: (Metadata | null)[] | null;
}): RecordColumns {
  const count = result.ids.length;
  const rows = result.embeddings ?? [];
  const dimension = rows[0]?.length ?? 0;
  const embeddings = new Float32Array(count * dimension);
  rows.forEach((row, index) => {
    if (row) embeddings.set(row, index * dimension);
  });
  return {
    ids: result.ids,
    dimension,
    embeddings,
    documents: result.documents ?? new Array<null>(count).fill(null),
    metadatas: result.metadatas ?? new Array<null>(count).fill(null),
  };
}

/**
 * Pages through a whole collection with limit/offset (Chroma returns records in insertion order), fetching the next
 * page while the caller works on the current one. Memory: two pages.
 */
export async function* readPages(
  collection: Collection,
  pageSize: number,
  signal?: AbortSignal,
  where?: Where,
): AsyncGenerator<RecordColumns> {
  const fetchPage = (offset: number) =>
    collection
      .get({ limit: pageSize, offset, include: ["embeddings", "documents", "metadatas"], ...(where ? { where } : {}) })
      .then(columnsFromGet);
  let next: Promise<RecordColumns> | undefined = fetchPage(0);
  for (let offset = 0; next; offset += pageSize) {
    signal?.throwIfAborted();
    const page: RecordColumns = await next;
    next = page.ids.length === pageSize ? fetchPage(offset + pageSize) : undefined;
    // Failure of the prefetch surfaces when it is awaited, not as an unhandled rejection meanwhile.
    next?.catch(() => undefined);
    if (page.ids.length > 0) yield page;
  }
}

/**
 * Splits records into runs that share a shape (with or without document, with or without metadata), keeping their
 * order: the chromadb client refuses a batch in which only some records have a document (or metadata).
 */
export function* uniformRuns(columns: RecordColumns): Generator<RecordColumns> {
  const shape = (i: number) => `${columns.documents[i] === null ? 0 : 1}${columns.metadatas[i] === null ? 0 : 1}`;
  let start = 0;
  for (let i = 1; i <= columns.ids.length; i++) {
    if (i === columns.ids.length || shape(i) !== shape(start)) {
      yield sliceColumns(columns, start, i);
      start = i;
    }
  }
}

/** Writes records in batches of at most `maxBatch`, each of one shape; `upsert` makes a re-run idempotent. */
export async function writeRecords(
  collection: Collection,
  columns: RecordColumns,
  options: { maxBatch: number; mode: "add" | "upsert" },
): Promise<void> {
  for (let start = 0; start < columns.ids.length; start += options.maxBatch) {
    const batch = sliceColumns(columns, start, Math.min(start + options.maxBatch, columns.ids.length));
    for (const run of uniformRuns(batch)) {
      const records = {
        ids: run.ids,
        embeddings: run.ids.map((_, i) => embeddingAt(run, i)),
        ...(run.documents[0] !== null ? { documents: run.documents as string[] } : {}),
        ...(run.metadatas[0] !== null ? { metadatas: run.metadatas as Metadata[] } : {}),
      };
      await (options.mode === "add" ? collection.add(records) : collection.upsert(records));
    }
  }
}

/**
 * Float32 values this many units in the last place apart count as equal. In a cosine collection Chroma normalizes
 * every vector it stores, so writing back a vector it returned re-normalizes it and may move the last bit.
 */
export const EMBEDDING_ULPS = 4;

const bits = new Int32Array(2);
const floats = new Float32Array(bits.buffer);
function ulpsApart(x: number, y: number): number {
  floats[0] = x;
  floats[1] = y;
  const [a, b] = [bits[0]!, bits[1]!];
  if (a === b) return 0;
  if (a < 0 !== b < 0) return Math.abs(x) < 1e-30 && Math.abs(y) < 1e-30 ? 0 : Number.POSITIVE_INFINITY;
  return Math.abs(a - b);
}

/** Whether two stored records are the same: document and metadata alike, embeddings equal as float32 within a few ULPs. */
export function sameRecord(a: RecordColumns, i: number, b: RecordColumns, j: number): boolean {
  if (a.ids[i] !== b.ids[j] || a.documents[i] !== b.documents[j] || a.dimension !== b.dimension) return false;
  if (canonical(a.metadatas[i] ?? null) !== canonical(b.metadatas[j] ?? null)) return false;
  const x = a.embeddings.subarray(i * a.dimension, (i + 1) * a.dimension);
  const y = b.embeddings.subarray(j * b.dimension, (j + 1) * b.dimension);
  return x.every((value, k) => ulpsApart(value, y[k]!) <= EMBEDDING_ULPS);
}

const canonical = (metadata: Metadata | null) =>
  metadata === null ? "null" : JSON.stringify(Object.keys(metadata).sort().map((key) => [key, metadata[key]]));
