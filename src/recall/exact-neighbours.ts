import type { RecordColumns } from "../storage/record-columns.js";

/** The distance spaces Chroma offers, with its definitions: squared L2, `1 - dot`, `1 - cosine similarity`. */
export const DISTANCE_SPACES = ["l2", "ip", "cosine"] as const;
export type DistanceSpace = (typeof DISTANCE_SPACES)[number];

/** A query: the id of the record it was drawn from (never its own neighbour) and that record's embedding. */
export interface Query {
  id: string;
  embedding: Float32Array;
}

/** The k nearest records of one query, nearest first. */
export interface Neighbours {
  ids: string[];
  distances: number[];
}

/**
 * Exact k-nearest-neighbour search over a stream of record pages, in memory bounded by the queries and k: each query
 * keeps a sorted list of its k best so far (k is small, so insertion into a sorted array beats a heap). Distances are
 * summed in float64 over the float32 embeddings Chroma stores.
 */
export class ExactSearch {
  private readonly best: { ids: string[]; distances: Float64Array; size: number }[];
  private readonly queryNorms: Float64Array;

  constructor(
    private readonly queries: readonly Query[],
    private readonly k: number,
    private readonly space: DistanceSpace,
  ) {
    this.best = queries.map(() => ({ ids: new Array<string>(k), distances: new Float64Array(k).fill(Number.POSITIVE_INFINITY), size: 0 }));
    this.queryNorms = Float64Array.from(queries, (q) => Math.sqrt(dot(q.embedding, 0, q.embedding)));
  }

  /** Takes one page of records into account. */
  add(page: RecordColumns): void {
    const { dimension, embeddings, ids } = page;
    if (dimension === 0) return;
    for (let r = 0; r < ids.length; r++) {
      const offset = r * dimension;
      const recordNorm = this.space === "cosine" ? Math.sqrt(dot(embeddings, offset, embeddings.subarray(offset, offset + dimension))) : 0;
      for (let q = 0; q < this.queries.length; q++) {
        const query = this.queries[q]!;
        if (query.id === ids[r]) continue;
        const distance = this.distance(query.embedding, embeddings, offset, this.queryNorms[q]!, recordNorm);
        const best = this.best[q]!;
        if (best.size === this.k && distance >= best.distances[this.k - 1]!) continue;
        insertSorted(best, ids[r]!, distance, this.k);
      }
    }
  }

  private distance(query: Float32Array, embeddings: Float32Array, offset: number, queryNorm: number, recordNorm: number): number {
    if (this.space === "l2") {
      let sum = 0;
      for (let i = 0; i < query.length; i++) {
        const d = embeddings[offset + i]! - query[i]!;
        sum += d * d;
      }
      return sum;
    }
    const product = dot(embeddings, offset, query);
    if (this.space === "ip") return 1 - product;
    const norms = queryNorm * recordNorm;
    return norms === 0 ? 1 : 1 - product / norms;
  }

  /** The neighbours found, per query in the order given. */
  result(): Neighbours[] {
    return this.best.map((b) => ({ ids: b.ids.slice(0, b.size), distances: Array.from(b.distances.subarray(0, b.size)) }));
  }
}

function dot(embeddings: Float32Array, offset: number, other: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < other.length; i++) sum += embeddings[offset + i]! * other[i]!;
  return sum;
}

function insertSorted(best: { ids: string[]; distances: Float64Array; size: number }, id: string, distance: number, k: number): void {
  let at = Math.min(best.size, k - 1);
  while (at > 0 && best.distances[at - 1]! > distance) {
    best.distances[at] = best.distances[at - 1]!;
    best.ids[at] = best.ids[at - 1]!;
    at--;
  }
  best.distances[at] = distance;
  best.ids[at] = id;
  if (best.size < k) best.size++;
}
