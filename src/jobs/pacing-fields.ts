import type { Collection } from "chromadb";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { Pacer, type Pace } from "../storage/chroma/pacing.js";
import type { JobContext } from "./job-context.js";

const d = DEFAULTS.pacing;

/** Payload fields of the maintenance jobs that spare the collection's queries (backup, archive, expire, drill, reindex). */
export const pacingFields = {
  /** Records a second at most, in each pass of the job; none when absent. */
  maxRecordsPerSecond: z.number().positive({ message: "must be a number of records a second above 0" }).max(10_000_000).optional(),
  /** Slow down while the collection's query latency (measured by the job's own probe query) rises. */
  adaptive: z.boolean().default(d.adaptive),
  /** Adaptive: slow down while the probe query takes more than this multiple of its idle latency. */
  latencyFactor: z.number().min(1.01, { message: "must be above 1 (a multiple of the idle latency), e.g. 1.3" }).max(100).default(d.latencyFactor),
};

/** A pacer for a job on `collection` (probed when adaptive); the caller closes it when the job ends. */
export function startPacing(pace: Pace, collection: Collection | undefined, ctx: JobContext): Promise<Pacer> {
  const target = collection ? { chroma: ctx.chroma, collection } : undefined;
  return Pacer.start({ maxRecordsPerSecond: pace.maxRecordsPerSecond, adaptive: pace.adaptive, latencyFactor: pace.latencyFactor }, target, ctx.logger);
}
