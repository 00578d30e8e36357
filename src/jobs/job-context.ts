import type { z } from "zod";
import type { Logger } from "../logging.js";
import type { JobKind } from "../queues/kinds.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import type { ObjectStore } from "../storage/objects/object-store.js";
import type { Pacer } from "../storage/chroma/pacing.js";

/** Progress as the dashboard and the CLI show it: units of work done out of a total, when the total is known. */
export interface Progress {
  done: number;
  total?: number;
  /** What the units are ("records", "queries"). */
  unit: string;
  /** How the job is held back, while it is (pacing: "throttled to 850 records/s: …"). */
  note?: string | undefined;
}

/**
 * What a processor gets besides its payload. Processors know nothing of BullMQ, so the CLI can run any of them
 * inline with a context of its own.
 */
export interface JobContext {
  logger: Logger;
  /** Report progress; the worker forwards it to BullMQ, the CLI draws a progress line. */
  progress(progress: Progress): Promise<void>;
  /** Aborted on shutdown or cancellation: long jobs stop at the next safe point. */
  signal: AbortSignal;
  chroma: ChromaStore;
  /** Where backups live (BACKUP_URL). */
  backupStore: ObjectStore;
  /** Mutual exclusion across workers (e.g. one backup of a collection at a time). */
  locks: Locks;
  /** Who runs the job, for lease holders and logs: `job 42`, or `cli 1234@host` for an inline run. */
  runner: string;
  /**
   * Asks for another job after this one (a warm after a restore): workers put it on its queue, an inline run runs it
   * next. Kinds this build does not serve are ignored.
   */
  followUp(kind: JobKind, payload: Record<string, unknown>): Promise<void>;
  /**
   * The process exists for this run (`vectorkeeper run`, a bench variant), not a long-lived worker: a job may lower
   * its CPU priority (pacing's `nice`) without needing it back.
   */
  ownProcess?: boolean | undefined;
  /** The pace of a job that runs this one inline (a drill's restore), which this one keeps to. */
  pace?: Pacer | undefined;
}

export interface Lease {
  acquired: boolean;
  /** Who holds it (this runner when acquired). */
  heldBy: string;
  /**
   * Set when the lease was taken over rather than found free: from an earlier attempt of the same job (`own`), or
   * from a CLI run on this host whose process is gone (`dead`).
   */
  tookOver?: { from: string; reason: "own" | "dead" };
  /**
   * Throws when the lease is no longer this run's: a retry of the same job took it over, judging this run dead.
   * Called before a step that must not happen twice (a manifest, a swap).
   */
  confirm(): Promise<void>;
  /**
   * Aborted (its reason says why) when a renewal finds the lease no longer this run's: it lapsed while Redis was out
   * of reach, or a retry took it over. The run should stop at once; the other run may be doing the same work.
   */
  lost: AbortSignal;
  release(): Promise<void>;
}

export interface Locks {
  /**
   * Takes the named lease if free, or if its holder is this same runner (a retry of the job) or a dead local
   * process; it is renewed while held and lapses one lease lifetime after its holder dies.
   */
  tryAcquire(name: string, holder: string): Promise<Lease>;
  /** How long a lease outlives its holder's last renewal. */
  readonly ttlMs: number;
  /** Who holds the named lease now, if a live holder does (what prune must not touch). */
  holder(name: string): Promise<string | undefined>;
}

/** A job kind: its payload schema and its processor. One per file in src/jobs/. */
export interface JobDefinition<Schema extends PayloadSchema = PayloadSchema, Result = unknown> {
  kind: JobKind;
  /** Validates payloads at the boundary (queue, CLI, schedule entries). */
  payload: Schema;
  process(payload: z.output<Schema>, ctx: JobContext): Promise<Result>;
}

/** Keeps the payload type of a job file tied to its schema without writing it twice. */
export function defineJob<Schema extends PayloadSchema, Result>(
  definition: JobDefinition<Schema, Result>,
): JobDefinition<Schema, Result> {
  return definition;
}

/**
 * Every payload is a strict object naming the collection it acts on, so that schedule entries can be derived from it
 * (an entry is the payload minus `collection`, plus `kind`, `cron` and `collections`).
 */
export type PayloadSchema = z.ZodObject<{ collection: z.ZodType<string> }>;
