import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Collection } from "chromadb";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import type { DistanceSpace, Neighbours, Query } from "../recall/exact-neighbours.js";
import { exactNeighbours, indexRecall, sampleQueries, spaceOf, type RecallMeasuring } from "../recall/index-recall.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { BatchedWriter } from "../storage/chroma/writer.js";
import { deleteTemporaries } from "../storage/chroma/temporaries.js";
import { failpoint } from "./failpoints.js";
import { holdLease } from "./lease.js";
import { defineJob, type JobContext } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";
import { efSearchOf } from "./recall.js";
import { recallFields } from "./recall-fields.js";

const r = DEFAULTS.recall;

export const tunePayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    ...recallFields,
    /** The recall@k to reach. */
    targetRecall: z.number().gt(0).max(1),
    /** ef_search values to try, smallest first. */
    efValues: z
      .array(z.number().int().min(1, { message: "must list ef_search values of at least 1" }).max(100_000))
      .min(1)
      .max(20)
      .default([...r.efValues]),
    /** Measure and report only; change nothing. */
    dryRun: z.boolean().default(false),
  })
  .strict();

export interface EfMeasurement {
  efSearch: number;
  recall: number;
  p50Ms: number;
  p95Ms: number;
}

export interface TuneResult {
  collection: string;
  space: DistanceSpace;
  k: number;
  queries: number;
  targetRecall: number;
  /** The collection's own index, as it answers now. */
  current: EfMeasurement | null;
  /** Each value tried, smallest first, until one met the target. */
  tried: EfMeasurement[];
  /** The smallest value tried that meets the target; null when none does (then nothing is changed). */
  chosen: number | null;
  /** Whether the collection's ef_search was set to `chosen` (not with --dry-run, nor when it already had it). */
  applied: boolean;
  dryRun: boolean;
  durationMs: number;
}

/** Scratch copies tune measures on are named `<collection>__vktune_<hex>`. */
const TUNE_SCRATCH = "__vktune_";

type IndexKind = "hnsw" | "spann";

function indexKindOf(collection: Collection): IndexKind {
  const configuration = collection.configuration as { spann?: unknown } | undefined;
  return configuration?.spann ? "spann" : "hnsw";
}

/**
 * A copy of the collection's embeddings (ids and vectors, in its insertion order) in a scratch collection created with
 * its configuration but the given ef_search. Chroma applies ef_search when it loads an index, not when `modify`
 * changes it (on a single-node server the collection's index stays loaded until a restart), so each value is measured
 * on an index built with it from the start.
 */
async function scratchCopy(chroma: ChromaStore, source: Collection, name: string, efSearch: number, ctx: JobContext): Promise<Collection> {
  const configuration = { ...(source.configuration as Record<string, unknown>) };
  const kind = indexKindOf(source);
  configuration[kind] = { ...(configuration[kind] as Record<string, unknown>), ef_search: efSearch };
  const copy = await chroma.createLike(name, { metadata: null, configuration });
  let writer: BatchedWriter | undefined;
  const limits = await chroma.writeLimits();
  try {
    for await (const page of chroma.readPages(source, { pageSize: r.pageSize, readAhead: r.readAhead, include: ["embeddings"], signal: ctx.signal })) {
      writer ??= new BatchedWriter(copy, { limits, mode: "add" }, page.dimension);
      await writer.add(page);
    }
    await writer?.finish();
  } finally {
    await writer?.abandon();
  }
  return copy;
}

const measured = (efSearch: number, figures: { recall: number; p50Ms: number; p95Ms: number }): EfMeasurement => ({
  efSearch,
  recall: figures.recall,
  p50Ms: figures.p50Ms,
  p95Ms: figures.p95Ms,
});

/**
 * Finds the smallest ef_search (of the values given) whose recall@k meets the target, measured against exact search
 * with the same queries for every value, and sets it on the collection with `modify` (unless --dry-run). When none
 * meets the target, nothing is changed. Chroma applies the new value when it next loads the collection's index: on a
 * single-node server, at its next restart.
 */
export const tune = defineJob({
  kind: "tune",
  payload: tunePayload,
  async process(payload, ctx): Promise<TuneResult> {
    const started = performance.now();
    const { chroma, logger } = ctx;
    const name = payload.collection;
    const lease = await holdLease(ctx, `tune:${name}`, `a tune of ${name}`);
    try {
      await deleteTemporaries(chroma, `${name}${TUNE_SCRATCH}`, logger, "the scratch copy of an interrupted tune");
      const source = await chroma.openCollection(name);
      const space = spaceOf(source);
      const size = await source.count();
      const measuring: RecallMeasuring = { k: payload.k, queryBatch: payload.queryBatch, pageSize: r.pageSize, readAhead: r.readAhead, signal: lease.signal };
      const queries: Query[] = size > 1 ? await sampleQueries(chroma, source, payload.queries, size) : [];
      const exact: Neighbours[] = await exactNeighbours(chroma, source, queries, space, measuring);
      const originalEf = efSearchOf(source.configuration);
      const current = queries.length > 0 && originalEf !== null ? measured(originalEf, await indexRecall(source, queries, exact, payload.k, size, space, lease.signal)) : null;

      const tried: EfMeasurement[] = [];
      let chosen: number | null = null;
      for (const efSearch of [...new Set(payload.efValues)].sort((a, b) => a - b)) {
        const scratch = `${name}${TUNE_SCRATCH}${randomBytes(4).toString("hex")}`;
        try {
          const copy = await scratchCopy(chroma, source, scratch, efSearch, { ...ctx, signal: lease.signal });
          await failpoint("tune:copied");
          tried.push(measured(efSearch, await indexRecall(copy, queries, exact, payload.k, size, space, lease.signal)));
        } finally {
          await chroma.deleteCollection(scratch).catch(() => undefined);
        }
        await ctx.progress({ done: tried.length, total: payload.efValues.length, unit: "ef_search values" });
        if (tried.at(-1)!.recall >= payload.targetRecall) {
          chosen = efSearch;
          break;
        }
      }

      let applied = false;
      if (chosen !== null && !payload.dryRun && chosen !== originalEf) {
        await source.modify({ configuration: { [indexKindOf(source)]: { ef_search: chosen } } });
        const now = efSearchOf((await chroma.openCollection(name)).configuration);
        if (now !== chosen) throw new Error(`Chroma kept ef_search ${String(now)} on ${name} after it was set to ${chosen}`);
        applied = true;
      }
      const result: TuneResult = {
        collection: name,
        space,
        k: payload.k,
        queries: queries.length,
        targetRecall: payload.targetRecall,
        current,
        tried,
        chosen,
        applied,
        dryRun: payload.dryRun,
        durationMs: Math.round(performance.now() - started),
      };
      if (chosen === null) logger.warn({ tune: result }, "no ef_search tried meets the target recall: nothing changed");
      else logger.info({ tune: result }, applied ? "ef_search set; Chroma applies it when it next loads the index" : "ef_search measured");
      return result;
    } finally {
      await lease.release();
    }
  },
});
