import type { BackoffStrategy, JobsOptions, MinimalJob } from "bullmq";
import type { Redis } from "ioredis";
import { DEFAULTS } from "../config/defaults.js";
import { isServedKind, jobOptionsOf, type ServedKind } from "./catalogue.js";

/** The backoff type of scheduled jobs: the kind's usual retries, plus retries while Chroma is unreachable. */
export const SLOT_BACKOFF = "vk-slot";

/** Job options a scheduled job carries; `vkUsefulUntil` is kept by BullMQ with the job's other options. */
export type SlotJobOptions = JobsOptions & { vkUsefulUntil: number };

/**
 * Options that keep a scheduled job retrying through a Chroma outage until `usefulUntil` (Unix ms). Kinds that never
 * retry (probe, warm: the next tick does the job again) keep their one attempt.
 */
export function slotJobOptions(kind: ServedKind, usefulUntil: number, now: number): SlotJobOptions | undefined {
  const usual = jobOptionsOf(kind).attempts ?? 1;
  if (usual <= 1) return undefined;
  // Enough attempts to reach the deadline at the shortest delay; the strategy ends it at the deadline.
  const outageAttempts = Math.ceil(Math.max(0, usefulUntil - now) / DEFAULTS.jobs.backoffMs);
  return {
    attempts: Math.min(usual + outageAttempts, 100_000),
    backoff: { type: SLOT_BACKOFF, delay: DEFAULTS.jobs.backoffMs },
    vkUsefulUntil: usefulUntil,
  };
}

/**
 * Errors that mean Chroma did not answer at all, as opposed to answering "no": only the storage layer's
 * ChromaUnavailableError (looked for along the cause chain, since a runner may wrap it to keep one line). Connection
 * errors of other systems (S3's ECONNRESET, a Redis timeout) are not a Chroma outage and get the usual retries.
 */
export function isChromaOutage(error: unknown): boolean {
  for (let at = error, depth = 0; at instanceof Error && depth < 8; at = at.cause, depth++) {
    if (at.name === "ChromaUnavailableError") return true;
  }
  return false;
}

/**
 * Counts a scheduled job's failures that were not a Chroma outage and returns the count including this one, so its
 * usual retries are spent on those alone (`attemptsMade` also counts the outage retries).
 */
export type UsualFailureCounter = (job: MinimalJob, keepMs: number) => Promise<number>;

/** The count in Redis beside the job, kept a while after its slot stopped being useful. */
export function redisUsualFailures(redis: Redis): UsualFailureCounter {
  return async (job, keepMs) => {
    const key = `${job.queueQualifiedName}:${job.id}:vk-usual-failures`;
    const replies = await redis.multi().incr(key).pexpire(key, Math.max(1, Math.round(keepMs))).exec();
    const [error, count] = replies?.[0] ?? [new Error("no reply"), 0];
    if (error) throw error;
    return Number(count);
  };
}

/**
 * The worker's strategy for {@link SLOT_BACKOFF}: while Chroma is unreachable and the slot is still useful, retry with
 * a delay doubling from the usual backoff up to `maxDelayMs` (an outage past that deadline stops the job); any other
 * failure gets the kind's usual attempts and backoff, counted apart from the outage retries; then stop (-1), which
 * fails the job for good.
 */
export function slotBackoffStrategy(maxDelayMs: number, usualFailures: UsualFailureCounter): BackoffStrategy {
  return async (attemptsMade, _type, error, job) => {
    const base = DEFAULTS.jobs.backoffMs;
    const usefulUntil = Number((job?.opts as Record<string, unknown> | undefined)?.vkUsefulUntil ?? 0);
    if (isChromaOutage(error)) {
      // Past its deadline the slot is no longer worth waiting for: the job fails for good, and is alerted.
      if (Date.now() >= usefulUntil) return -1;
      return Math.min(base * 2 ** Math.min(attemptsMade - 1, 30), maxDelayMs, Math.max(1, usefulUntil - Date.now()));
    }
    const kind = job?.queueName ?? "";
    const usual = (isServedKind(kind) ? jobOptionsOf(kind).attempts : undefined) ?? DEFAULTS.jobs.attempts;
    const made = job ? await usualFailures(job, Math.max(0, usefulUntil - Date.now()) + DEFAULTS.scheduler.slotUsefulMinMs) : attemptsMade;
    return made < usual ? base * 2 ** (made - 1) : -1;
  };
}
