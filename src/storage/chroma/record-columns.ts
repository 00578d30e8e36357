import type { Metadata } from "chromadb";

/**
 * Records as Chroma returns them, column by column, with embeddings packed into one Float32Array (what Chroma keeps:
 * float32, so packing loses nothing and takes a fifth of the memory of number[][]).
 * `null` in documents/metadatas means the record has none, which is not the same as an empty string or object.
 */
export interface RecordColumns {
  ids: string[];
  dimension: number;
  /** ids.length × dimension floats, record after record. */
  embeddings: Float32Array;
  documents: (string | null)[];
  metadatas: (Metadata | null)[];
  /** The record's URI (multimodal collections keep a pointer to the original), or null. */
  uris: (string | null)[];
}

export function emptyColumns(dimension: number): RecordColumns {
  return { ids: [], dimension, embeddings: new Float32Array(0), documents: [], metadatas: [], uris: [] };
}

/** The embedding of record `index` as the plain numbers the Chroma client sends. */
export function embeddingAt(columns: RecordColumns, index: number): number[] {
  return Array.from(columns.embeddings.subarray(index * columns.dimension, (index + 1) * columns.dimension));
}

/** Rows `start` to `end` (exclusive) as their own columns; embeddings are a view, not a copy. */
export function sliceColumns(columns: RecordColumns, start: number, end: number): RecordColumns {
  return {
    ids: columns.ids.slice(start, end),
    dimension: columns.dimension,
    embeddings: columns.embeddings.subarray(start * columns.dimension, end * columns.dimension),
    documents: columns.documents.slice(start, end),
    metadatas: columns.metadatas.slice(start, end),
    uris: columns.uris.slice(start, end),
  };
}

/** Appends several column sets into one (one copy of the embeddings). */
export function concatColumns(parts: readonly RecordColumns[], dimension: number): RecordColumns {
  const total = parts.reduce((n, p) => n + p.ids.length, 0);
  const embeddings = new Float32Array(total * dimension);
  let offset = 0;
  for (const part of parts) {
    embeddings.set(part.embeddings, offset);
    offset += part.embeddings.length;
  }
  return {
    ids: parts.flatMap((p) => p.ids),
    dimension,
    embeddings,
    documents: parts.flatMap((p) => p.documents),
    metadatas: parts.flatMap((p) => p.metadatas),
    uris: parts.flatMap((p) => p.uris),
  };
}
