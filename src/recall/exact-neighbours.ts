import type { RecordColumns } from "../storage/chroma/record-columns.js";

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

/** Queries searched together over each record: each record value is loaded once for this many sums. */
const BLOCK = 4;

function sumOfSquares(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return sum;
}

/** The distance of `space` from a raw sum (squared L2, or the dot product) and the two norms (cosine only). */
function fromSum(space: DistanceSpace, sum: number, queryNorm: number, recordNorm: number): number {
  if (space === "l2") return sum;
  if (space === "ip") return 1 - sum;
  const norms = queryNorm * recordNorm;
  return norms === 0 ? 1 : 1 - sum / norms;
}

/**
 * The distance between a query and one record, computed exactly as `ExactSearch` computes it (same operations in the
 * same order, in float64), so a tie with the k-th neighbour is judged without rounding noise.
 */
export function distanceBetween(space: DistanceSpace, query: Float32Array, record: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < query.length; i++) {
    const x = record[i]!;
    if (space === "l2") {
      const d = x - query[i]!;
      sum += d * d;
    } else {
      sum += x * query[i]!;
    }
  }
  return fromSum(space, sum, Math.sqrt(sumOfSquares(query)), space === "cosine" ? Math.sqrt(sumOfSquares(record)) : 0);
}

/**
 * Exact k-nearest-neighbour search over a stream of record pages, in memory bounded by the queries and k: each query
 * keeps a sorted list of its k best so far (k is small, so insertion into a sorted array beats a heap). Sums run in
 * float64 over the float32 embeddings Chroma stores, a block of queries at a time per record, which on V8 runs about
 * twice as fast as one query at a time.
 */
export class ExactSearch {
  private readonly ids: string[][];
  private readonly distances: Float64Array;
  private readonly sizes: Int32Array;
  private readonly packed: Float64Array;
  private readonly queryNorms: Float64Array;
  private readonly dimension: number;
  private record = new Float64Array(0);
  private readonly sums = new Float64Array(BLOCK);

  constructor(
    private readonly queries: readonly Query[],
    private readonly k: number,
    private readonly space: DistanceSpace,
  ) {
    this.dimension = queries[0]?.embedding.length ?? 0;
    this.packed = new Float64Array(queries.length * this.dimension);
    queries.forEach((q, i) => this.packed.set(q.embedding, i * this.dimension));
    this.queryNorms = Float64Array.from(queries, (q) => Math.sqrt(sumOfSquares(q.embedding)));
    this.ids = queries.map(() => new Array<string>(k));
    this.distances = new Float64Array(queries.length * k).fill(Number.POSITIVE_INFINITY);
    this.sizes = new Int32Array(queries.length);
  }

  /** Takes one page of records into account. */
  add(page: RecordColumns): void {
    const { dimension, embeddings, ids } = page;
    if (dimension === 0 || this.queries.length === 0) return;
    if (dimension !== this.dimension) throw new Error(`records of ${dimension} dimensions among queries of ${this.dimension}`);
    if (this.record.length !== dimension) this.record = new Float64Array(dimension);
    const record = this.record;
    for (let r = 0; r < ids.length; r++) {
      record.set(embeddings.subarray(r * dimension, (r + 1) * dimension));
      const recordNorm = this.space === "cosine" ? Math.sqrt(sumOfSquares(record)) : 0;
      for (let q = 0; q < this.queries.length; q += BLOCK) {
        const n = Math.min(BLOCK, this.queries.length - q);
        if (n === BLOCK) this.blockSums(record, q);
        else for (let j = 0; j < n; j++) this.sums[j] = this.oneSum(record, q + j);
        for (let j = 0; j < n; j++) this.offer(q + j, ids[r]!, fromSum(this.space, this.sums[j]!, this.queryNorms[q + j]!, recordNorm));
      }
    }
  }

  private blockSums(record: Float64Array, q: number): void {
    const p = this.packed;
    const dim = this.dimension;
    const a = q * dim;
    const b = a + dim;
    const c = b + dim;
    const d = c + dim;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    if (this.space === "l2") {
      for (let i = 0; i < dim; i++) {
        const x = record[i]!;
        const d0 = x - p[a + i]!;
        const d1 = x - p[b + i]!;
        const d2 = x - p[c + i]!;
        const d3 = x - p[d + i]!;
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
      }
    } else {
      for (let i = 0; i < dim; i++) {
        const x = record[i]!;
        s0 += x * p[a + i]!;
        s1 += x * p[b + i]!;
        s2 += x * p[c + i]!;
        s3 += x * p[d + i]!;
      }
    }
    this.sums[0] = s0;
    this.sums[1] = s1;
    this.sums[2] = s2;
    this.sums[3] = s3;
  }

  private oneSum(record: Float64Array, q: number): number {
    const p = this.packed;
    const start = q * this.dimension;
    let sum = 0;
    for (let i = 0; i < this.dimension; i++) {
      const x = record[i]!;
      if (this.space === "l2") {
        const d = x - p[start + i]!;
        sum += d * d;
      } else {
        sum += x * p[start + i]!;
      }
    }
    return sum;
  }

  private offer(q: number, id: string, distance: number): void {
    const k = this.k;
    const base = q * k;
    const size = this.sizes[q]!;
    if (size === k && distance >= this.distances[base + k - 1]!) return;
    if (id === this.queries[q]!.id) return;
    const ids = this.ids[q]!;
    let at = Math.min(size, k - 1);
    while (at > 0 && this.distances[base + at - 1]! > distance) {
      this.distances[base + at] = this.distances[base + at - 1]!;
      ids[at] = ids[at - 1]!;
      at--;
    }
    this.distances[base + at] = distance;
    ids[at] = id;
    if (size < k) this.sizes[q] = size + 1;
  }

  /** The neighbours found, per query in the order given. */
  result(): Neighbours[] {
    return this.queries.map((_, q) => {
      const size = this.sizes[q]!;
      return { ids: this.ids[q]!.slice(0, size), distances: Array.from(this.distances.subarray(q * this.k, q * this.k + size)) };
    });
  }
}
