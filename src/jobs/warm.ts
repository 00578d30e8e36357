import { performance } from "node:perf_hooks";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { percentile } from "../stats.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";

const d = DEFAULTS.warm;

export const warmPayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    samples: z.number().int().min(1).max(1000).default(d.samples),
    nResults: z.number().int().min(1).max(1000).default(d.nResults),
    settleWindow: z.number().int().min(2).max(50).default(d.settleWindow),
    settleTolerance: z.number().positive().max(10).default(d.settleTolerance),
    budgetMs: z.number().int().min(1).max(3_600_000).default(d.budgetMs),
    maxQueries: z.number().int().min(1).max(100_000).default(d.maxQueries),
  })
  .strict();

export interface WarmResult {
  collection: string;
  /** Queries run, the cold one included. */
  queries: number;
  /** Latency of the first query (null for an empty collection). */
  coldMs: number | null;
  warmP50Ms: number | null;
  warmP95Ms: number | null;
  /** Whether latency settled before the budget or the query limit ran out. */
  settled: boolean;
  durationMs: number;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/**
 * Runs real queries so a cold index (just started or restored) is fast before users arrive. The query embeddings are
 * stored ones, sampled evenly over the whole collection (not the first K, which would touch one corner of the
 * graph), so they have its dimension and reach its whole index. It stops when the last few latencies agree, or when
 * the time budget or the query limit is spent.
 */
export const warm = defineJob({
  kind: "warm",
  payload: warmPayload,
  async process(payload, ctx): Promise<WarmResult> {
    const started = performance.now();
    const collection = await ctx.chroma.openCollection(payload.collection);
    const count = await collection.count();
    const empty: WarmResult = { collection: payload.collection, queries: 0, coldMs: null, warmP50Ms: null, warmP95Ms: null, settled: true, durationMs: 0 };
    if (count === 0) return { ...empty, durationMs: round(performance.now() - started) };

    const samples = await ctx.chroma.spreadEmbeddings(collection, payload.samples, count);
    if (samples.length === 0) return { ...empty, durationMs: round(performance.now() - started) };

    const nResults = Math.min(payload.nResults, count);
    const query = async (index: number) => {
      const t = performance.now();
      await collection.query({ queryEmbeddings: [samples[index % samples.length]!], nResults, include: ["distances"] });
      return performance.now() - t;
    };
    const deadline = performance.now() + payload.budgetMs;
    const coldMs = await query(0);
    const warmLatencies: number[] = [];
    let settled = false;
    while (warmLatencies.length + 1 < payload.maxQueries && performance.now() < deadline) {
      ctx.signal.throwIfAborted();
      warmLatencies.push(await query(warmLatencies.length + 1));
      const recent = warmLatencies.slice(-payload.settleWindow);
      if (recent.length === payload.settleWindow && Math.max(...recent) <= Math.min(...recent) * (1 + payload.settleTolerance)) {
        settled = true;
        break;
      }
      await ctx.progress({ done: warmLatencies.length + 1, unit: "queries" });
    }
    const sorted = [...warmLatencies].sort((a, b) => a - b);
    const result: WarmResult = {
      collection: payload.collection,
      queries: warmLatencies.length + 1,
      coldMs: round(coldMs),
      warmP50Ms: sorted.length ? round(percentile(sorted, 50)) : null,
      warmP95Ms: sorted.length ? round(percentile(sorted, 95)) : null,
      settled,
      durationMs: round(performance.now() - started),
    };
    ctx.logger.info({ warm: result }, "index warmed");
    return result;
  },
});
