import { UnrecoverableError, type Job, type JobsOptions } from "bullmq";
import type { z } from "zod";
import { ConfigError, describeIssues } from "../config/config-error.js";
import { jobOf, type JobOf, type ServedKind } from "./catalogue.js";
import type { QueueSet } from "./queue-set.js";

export type PayloadOf<K extends ServedKind> = z.output<JobOf<K>["payload"]>;

export interface EnqueueOptions {
  /** A deterministic id makes the add idempotent: adding an id that already exists returns the existing job. */
  jobId?: string;
  /** While a job with this deduplication id waits or runs, adding another is a no-op (BullMQ deduplication). */
  deduplicationId?: string;
  /** Options that differ from the kind's defaults (a scheduled job's retries through an outage). */
  jobOptions?: JobsOptions;
}

/** Parses a payload against its kind's schema; `Error` type chosen by the caller's boundary. */
export function parsePayload<K extends ServedKind>(
  kind: K,
  payload: unknown,
  ErrorType: new (message: string) => Error = ConfigError,
): PayloadOf<K> {
  const parsed = jobOf(kind).payload.safeParse(payload);
  if (!parsed.success) {
    throw new ErrorType(
      `invalid ${kind} payload: ${describeIssues(parsed.error.issues, payload, (path) => path.join(".") || "payload")}`,
    );
  }
  return parsed.data as PayloadOf<K>;
}

/**
 * Validates a payload from outside (a schedule entry, CLI flags) against its kind's schema, then adds it to the
 * kind's queue.
 */
export async function enqueueUnchecked(
  queues: QueueSet,
  kind: ServedKind,
  payload: unknown,
  options: EnqueueOptions = {},
): Promise<Job> {
  const data = parsePayload(kind, payload);
  return queues.get(kind).add(`${kind}:${data.collection}`, data, {
    ...options.jobOptions,
    ...(options.jobId ? { jobId: options.jobId } : {}),
    ...(options.deduplicationId ? { deduplication: { id: options.deduplicationId } } : {}),
  });
}

/** Typed enqueue for code that builds payloads itself. */
export function enqueue<K extends ServedKind>(
  queues: QueueSet,
  kind: K,
  payload: z.input<JobOf<K>["payload"]>,
  options: EnqueueOptions = {},
): Promise<Job> {
  return enqueueUnchecked(queues, kind, payload, options);
}

/** A worker-side payload failure: retrying cannot fix bad input. */
export function parseJobData<K extends ServedKind>(kind: K, data: unknown): PayloadOf<K> {
  return parsePayload(kind, data, UnrecoverableError);
}
