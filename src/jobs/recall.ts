import { performance } from "node:perf_hooks";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { exactNeighbours, indexRecall, sampleQueries, spaceOf, type QueryRecall } from "../recall/index-recall.js";
import type { DistanceSpace } from "../recall/exact-neighbours.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";
import { recallFields } from "./recall-fields.js";

export const recallPayload = z.object({ collection: collectionName, alertAfterFailures, ...recallFields }).strict();

export interface RecallResult {
  collection: string;
  space: DistanceSpace;
  k: number;
  /** Queries measured (fewer than asked when the collection is smaller). */
  queries: number;
  /** Mean recall@k of the index against exact search (0..1); 1 for an empty collection. */
  recall: number;
  /** Latency of the index's answers. */
  p50Ms: number;
  p95Ms: number;
  /** The ef_search the index answered with, as configured (HNSW or SPANN). */
  efSearch: number | null;
  /** How long exact search took (reading the collection once per batch of queries). */
  exactMs: number;
  durationMs: number;
  perQuery: QueryRecall[];
}

/** The ef_search of a collection's configuration (HNSW, else SPANN), if it reports one. */
export function efSearchOf(configuration: unknown): number | null {
  const c = configuration as { hnsw?: { ef_search?: unknown } | null; spann?: { ef_search?: unknown } | null } | undefined;
  const ef = c?.hnsw?.ef_search ?? c?.spann?.ef_search;
  return typeof ef === "number" ? ef : null;
}

/**
 * Measures what the index gives: recall@k of Chroma's answers against exact nearest neighbours that vectorkeeper
 * computes over the stored embeddings, for queries drawn from the collection (a query's own record is never its
 * neighbour), in the collection's distance space, with the latency of the index's answers.
 */
export const recall = defineJob({
  kind: "recall",
  payload: recallPayload,
  async process(payload, ctx): Promise<RecallResult> {
    const started = performance.now();
    const collection = await ctx.chroma.openCollection(payload.collection);
    const space = spaceOf(collection);
    const size = await collection.count();
    const queries = size > 1 ? await sampleQueries(ctx.chroma, collection, payload.queries, size) : [];
    const exactStarted = performance.now();
    const r = DEFAULTS.recall;
    const exact = await exactNeighbours(ctx.chroma, collection, queries, space, {
      k: payload.k,
      queryBatch: payload.queryBatch,
      pageSize: r.pageSize,
      readAhead: r.readAhead,
      signal: ctx.signal,
      onRecords: (done) => ctx.progress({ done, total: size * Math.ceil(queries.length / payload.queryBatch), unit: "records" }),
    });
    const exactMs = performance.now() - exactStarted;
    const figures = await indexRecall(collection, queries, exact, payload.k, size, space, ctx.signal);
    const result: RecallResult = {
      collection: payload.collection,
      space,
      k: payload.k,
      queries: figures.perQuery.length,
      recall: figures.recall,
      p50Ms: figures.p50Ms,
      p95Ms: figures.p95Ms,
      efSearch: efSearchOf(collection.configuration),
      exactMs: Math.round(exactMs),
      durationMs: Math.round(performance.now() - started),
      perQuery: figures.perQuery,
    };
    ctx.logger.info({ recall: { ...result, perQuery: undefined } }, "recall measured");
    return result;
  },
});
