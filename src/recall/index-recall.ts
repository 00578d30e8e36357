import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Collection } from "chromadb";
import { percentile } from "../stats.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { distanceBetween, ExactSearch, type DistanceSpace, type Neighbours, type Query } from "./exact-neighbours.js";

/** How one recall measurement reads and asks. */
export interface RecallMeasuring {
  /** Neighbours compared per query (recall@k). */
  k: number;
  /** Queries streamed against the collection in one pass (memory: their embeddings and k neighbours each). */
  queryBatch: number;
  /** Records per page of the linear read. */
  pageSize: number;
  /** Pages requested ahead of the one being searched. */
  readAhead: number;
  signal?: AbortSignal | undefined;
  /** Records searched so far, for progress. */
  onRecords?: ((records: number) => Promise<void>) | undefined;
}

/** What the index answered for a query, measured against the exact neighbours. */
export interface QueryRecall {
  id: string;
  recall: number;
  latencyMs: number;
}

export interface RecallFigures {
  /** Mean recall@k over the queries (0..1). */
  recall: number;
  p50Ms: number;
  p95Ms: number;
  perQuery: QueryRecall[];
}

/** The distance space of a collection as Chroma reports it (HNSW or SPANN configuration, else legacy metadata). */
export function spaceOf(collection: Collection): DistanceSpace {
  const configuration = collection.configuration as { hnsw?: { space?: unknown } | null; spann?: { space?: unknown } | null } | undefined;
  const space = configuration?.hnsw?.space ?? configuration?.spann?.space ?? collection.metadata?.["hnsw:space"] ?? "l2";
  if (space === "l2" || space === "ip" || space === "cosine") return space;
  throw new Error(`collection ${collection.name} uses distance space "${String(space)}", which vectorkeeper cannot compute`);
}

/**
 * Up to `count` records drawn at random positions of the collection's id listing, with their stored embeddings: the
 * queries a recall measurement asks. Records without an embedding are left out.
 */
export async function sampleQueries(chroma: ChromaStore, collection: Collection, count: number, size: number): Promise<Query[]> {
  const n = Math.min(count, size);
  const positions = new Set<number>();
  while (positions.size < n) positions.add(randomInt(size));
  const ids = await chroma.idsAt(collection, [...positions]);
  if (ids.length === 0) return [];
  const page = await collection.get({ ids, include: ["embeddings"] });
  return page.ids.flatMap((id, i) => {
    const embedding = page.embeddings[i];
    return Array.isArray(embedding) ? [{ id, embedding: Float32Array.from(embedding) }] : [];
  });
}

/**
 * The exact k nearest neighbours of every query among the collection's stored embeddings (each query's own record
 * excluded), by reading the collection once per batch of queries.
 */
export async function exactNeighbours(
  chroma: ChromaStore,
  collection: Collection,
  queries: readonly Query[],
  space: DistanceSpace,
  measuring: RecallMeasuring,
): Promise<Neighbours[]> {
  const found: Neighbours[] = [];
  // Counted over all passes, so progress only moves forward.
  let records = 0;
  for (let start = 0; start < queries.length; start += measuring.queryBatch) {
    const search = new ExactSearch(queries.slice(start, start + measuring.queryBatch), measuring.k, space);
    const pages = chroma.readPages(collection, {
      pageSize: measuring.pageSize,
      readAhead: measuring.readAhead,
      include: ["embeddings"],
      signal: measuring.signal,
    });
    for await (const page of pages) {
      search.add(page);
      records += page.ids.length;
      await measuring.onRecords?.(records);
    }
    found.push(...search.result());
  }
  return found;
}

/**
 * Asks the index for each query's neighbours (one query at a time, so latencies are those a user sees) and compares
 * them with the exact ones. A returned record that is not among them still counts as found when it lies exactly as
 * far as the k-th (a tie that exact search broke the other way): its stored embedding is fetched afterwards, outside
 * the timed query, and its distance computed as exact search computes it.
 */
export async function indexRecall(
  collection: Collection,
  queries: readonly Query[],
  exact: readonly Neighbours[],
  k: number,
  size: number,
  space: DistanceSpace,
  signal?: AbortSignal,
): Promise<RecallFigures> {
  const perQuery: QueryRecall[] = [];
  for (const [i, query] of queries.entries()) {
    signal?.throwIfAborted();
    const truth = exact[i]!;
    if (truth.ids.length === 0) continue;
    const started = performance.now();
    const answer = await collection.query({ queryEmbeddings: [Array.from(query.embedding)], nResults: Math.min(k + 1, size), include: ["distances"] });
    const latencyMs = performance.now() - started;
    const returned = (answer.ids[0] ?? []).filter((id) => id !== query.id).slice(0, truth.ids.length);
    const expected = new Set(truth.ids);
    let hits = returned.filter((id) => expected.has(id)).length;
    const others = returned.filter((id) => !expected.has(id));
    if (others.length > 0) {
      const kth = truth.distances[truth.distances.length - 1]!;
      const page = await collection.get({ ids: others, include: ["embeddings"] });
      for (const embedding of page.embeddings) {
        if (Array.isArray(embedding) && distanceBetween(space, query.embedding, Float32Array.from(embedding)) <= kth) hits++;
      }
    }
    perQuery.push({ id: query.id, recall: hits / truth.ids.length, latencyMs: Math.round(latencyMs * 1000) / 1000 });
  }
  const latencies = perQuery.map((q) => q.latencyMs).sort((a, b) => a - b);
  const recall = perQuery.length ? perQuery.reduce((sum, q) => sum + q.recall, 0) / perQuery.length : 1;
  return {
    recall: Math.round(recall * 10_000) / 10_000,
    p50Ms: latencies.length ? percentile(latencies, 50) : 0,
    p95Ms: latencies.length ? percentile(latencies, 95) : 0,
    perQuery,
  };
}
