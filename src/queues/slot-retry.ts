import type { BackoffStrategy, JobsOptions } from "bullmq";
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

/** Errors that mean Chroma did not answer at all, as opposed to answering "no". */
export function isChromaOutage(error: Error | undefined): boolean {
  if (!error) return false;
  return (
    error.name === "ChromaUnavailableError" ||
    /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|socket hang up|fetch failed|Failed to connect to chromadb/i.test(error.message)
  );
}

/**
 * The worker's strategy for {@link SLOT_BACKOFF}: while Chroma is unreachable and the slot is still useful, retry with
 * a delay doubling from the usual backoff up to `maxDelayMs`; otherwise the kind's usual attempts and backoff; then
 * stop (-1), which fails the job for good.
 */
export function slotBackoffStrategy(maxDelayMs: number): BackoffStrategy {
  return (attemptsMade, _type, error, job) => {
    const base = DEFAULTS.jobs.backoffMs;
    const usefulUntil = Number((job?.opts as Record<string, unknown> | undefined)?.vkUsefulUntil ?? 0);
    if (isChromaOutage(error) && Date.now() < usefulUntil) {
      return Math.min(base * 2 ** Math.min(attemptsMade - 1, 30), maxDelayMs, Math.max(1, usefulUntil - Date.now()));
    }
    const kind = job?.queueName ?? "";
    const usual = (isServedKind(kind) ? jobOptionsOf(kind).attempts : undefined) ?? DEFAULTS.jobs.attempts;
    return attemptsMade < usual ? base * 2 ** (attemptsMade - 1) : -1;
  };
}
