import type { Collection } from "chromadb";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { Pacer, type Pace } from "../storage/chroma/pacing.js";
import { lowerCpuPriority, threadIds } from "./cpu-priority.js";
import type { JobContext } from "./job-context.js";

const d = DEFAULTS.pacing;
const NICE = { message: "must be a whole nice value from 0 (leave it) to 19, e.g. 10" };

/** Payload fields of the maintenance jobs that spare the collection's queries (backup, archive, expire, drill, reindex). */
export const pacingFields = {
  /** Records a second at most, in each pass of the job; none when absent. */
  maxRecordsPerSecond: z.number().positive({ message: "must be a number of records a second above 0" }).max(10_000_000).optional(),
  /** Slow down while the collection's query latency (measured by the job's own probe query) rises. */
  adaptive: z.boolean().default(d.adaptive),
  /** Adaptive: slow down while the probe query takes more than this multiple of its idle latency. */
  latencyFactor: z.number().min(1.01, { message: "must be above 1 (a multiple of the idle latency), e.g. 1.3" }).max(100).default(d.latencyFactor),
  /** Adaptive: the nice value (1-19) the job's own threads run at in a process of its own; 0 leaves it. */
  nice: z.number().int(NICE).min(0, NICE).max(19, NICE).default(d.nice),
};

/** Whether a job is held back at all (and so reads in the small pages that spare queries; see `pagedReading`). */
export const isPaced = (pace: { adaptive: boolean; maxRecordsPerSecond?: number | undefined }) => pace.adaptive || pace.maxRecordsPerSecond !== undefined;

/**
 * The page size and read-ahead of a job's whole-collection read: the payload's where it sets them, else the paced
 * ones (DEFAULTS.pacing) for a paced job and the job's own for one at full speed.
 */
export function pagedReading(
  payload: { adaptive: boolean; maxRecordsPerSecond?: number | undefined; pageSize?: number | undefined; readAhead?: number | undefined },
  fullSpeed: { pageSize: number; readAhead: number },
): { pageSize: number; readAhead: number } {
  const defaults = isPaced(payload) ? d : fullSpeed;
  return { pageSize: payload.pageSize ?? defaults.pageSize, readAhead: payload.readAhead ?? defaults.readAhead };
}

/** A pacer for a job on `collection` (probed when adaptive); the caller closes it when the job ends. */
export async function startPacing(pace: Pace & { nice?: number }, collection: Collection | undefined, ctx: JobContext): Promise<Pacer> {
  const target = collection ? { chroma: ctx.chroma, collection } : undefined;
  const nice = pace.adaptive ? (pace.nice ?? d.nice) : 0;
  // The threads there are before the probe's: the probe keeps its priority, so it measures the server's latency, not
  // the wait of a thread this job lowered.
  const ours = nice > 0 && ctx.ownProcess ? threadIds() : undefined;
  const pacer = await Pacer.start({ maxRecordsPerSecond: pace.maxRecordsPerSecond, adaptive: pace.adaptive, latencyFactor: pace.latencyFactor }, target, ctx.logger);
  if (ours) lowerCpuPriority(nice, ours, ctx.logger);
  else if (nice > 0) ctx.logger.info({ nice }, "adaptive pacing: a worker keeps its CPU priority (it could not raise it back); nice applies to `vectorkeeper run`");
  return pacer;
}
