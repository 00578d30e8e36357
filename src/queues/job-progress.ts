import type { Progress } from "../jobs/job-context.js";

/**
 * A job's progress as BullMQ stores it: the units done (what the CLI's progress line shows) and, when the total is
 * known, the percentage under `progress`, the field from which bull-board draws a job's progress bar (it shows an
 * object without it only as JSON).
 */
export interface StoredProgress extends Progress {
  progress?: number;
}

export function storedProgress(progress: Progress): StoredProgress {
  const { done, total, unit, note } = progress;
  const noted = note === undefined ? {} : { note };
  if (!total) return { done, ...(total === undefined ? {} : { total }), unit, ...noted };
  return { progress: Math.min(100, Math.round((done / total) * 1000) / 10), done, total, unit, ...noted };
}

/** The units done from a progress read back from BullMQ (an event or a job), when it is one vectorkeeper wrote. */
export function progressOf(stored: unknown): Progress | undefined {
  if (typeof stored !== "object" || stored === null) return undefined;
  const { done, total, unit, note } = stored as Record<string, unknown>;
  if (typeof done !== "number" || typeof unit !== "string") return undefined;
  return { done, ...(typeof total === "number" ? { total } : {}), unit, ...(typeof note === "string" ? { note } : {}) };
}
