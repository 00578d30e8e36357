import type { Collection, Metadata } from "chromadb";
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
export async function* readPages(collection: Collection, pageSize: number, signal?: AbortSignal): AsyncGenerator<RecordColumns> {
  const fetchPage = (offset: number) =>
    collection
      .get({ limit: pageSize, offset, include: ["embeddings", "documents", "metadatas"] })
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
