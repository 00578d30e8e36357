import type { Collection, Metadata } from "chromadb";
import type { RecordColumns } from "./record-columns.js";

/** A Chroma `get` answer, from the client or from the bulk reader. */
export interface GetColumnsInput {
  ids: string[];
  embeddings?: readonly unknown[] | null | undefined;
  documents?: (string | null)[] | null | undefined;
  metadatas?: (Metadata | null)[] | null | undefined;
  uris?: (string | null)[] | null | undefined;
}

/** A Chroma `get` answer as columns, embeddings packed as float32; refuses rows of the wrong length. */
export function columnsFromGet(result: GetColumnsInput): RecordColumns {
  const count = result.ids.length;
  const rows = result.embeddings ?? [];
  const first = rows.find((row) => row !== null);
  const dimension = Array.isArray(first) ? first.length : 0;
  const embeddings = new Float32Array(count * dimension);
  if (rows.length > 0 && rows.length !== count) throw new Error(`Chroma returned ${rows.length} embeddings for ${count} ids`);
  rows.forEach((row, index) => {
    if (row === null) return;
    if (!Array.isArray(row) || row.length !== dimension) {
      throw new Error(`Chroma returned an embedding that is not ${dimension} numbers (record ${result.ids[index]})`);
    }
    embeddings.set(row as number[], index * dimension);
  });
  return {
    ids: result.ids,
    dimension,
    embeddings,
    documents: result.documents ?? new Array<null>(count).fill(null),
    metadatas: result.metadatas ?? new Array<null>(count).fill(null),
    uris: result.uris ?? new Array<null>(count).fill(null),
  };
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

/** Whether two stored records are the same: document, URI and metadata alike, embeddings equal as float32 within a few ULPs. */
export function sameRecord(a: RecordColumns, i: number, b: RecordColumns, j: number): boolean {
  if (a.ids[i] !== b.ids[j] || a.documents[i] !== b.documents[j] || a.uris[i] !== b.uris[j] || a.dimension !== b.dimension) return false;
  if (canonical(a.metadatas[i] ?? null) !== canonical(b.metadatas[j] ?? null)) return false;
  const x = a.embeddings.subarray(i * a.dimension, (i + 1) * a.dimension);
  const y = b.embeddings.subarray(j * b.dimension, (j + 1) * b.dimension);
  return x.every((value, k) => ulpsApart(value, y[k]!) <= EMBEDDING_ULPS);
}

const canonical = (metadata: Metadata | null) =>
  metadata === null ? "null" : JSON.stringify(Object.keys(metadata).sort().map((key) => [key, metadata[key]]));
