import type { DefaultJobOptions } from "bullmq";
import { DEFAULTS, type JobDefaults } from "../config/defaults.js";
import type { JobDefinition } from "../jobs/job-context.js";
import { archive } from "../jobs/archive.js";
import { backup } from "../jobs/backup.js";
import { drill } from "../jobs/drill.js";
import { expire } from "../jobs/expire.js";
import { lint } from "../jobs/lint.js";
import { probe } from "../jobs/probe.js";
import { prune } from "../jobs/prune.js";
import { recall } from "../jobs/recall.js";
import { reindex } from "../jobs/reindex.js";
import { restore } from "../jobs/restore.js";
import { tune } from "../jobs/tune.js";
import { verify } from "../jobs/verify.js";
import { warm } from "../jobs/warm.js";
import type { ServedKind } from "./served-kinds.js";

export { isServedKind, queueName, SERVED_KINDS, unknownKindMessage, type ServedKind } from "./served-kinds.js";

interface CatalogueEntry {
  job: JobDefinition;
  /** What differs from {@link DEFAULTS.jobs} for this kind. */
  overrides?: Partial<JobDefaults>;
}

/**
 * The job kinds this build serves. A kind of design.md §3 appears here (and by name in served-kinds.ts) once its file
 * in src/jobs/ exists; until then the CLI and the schedule file reject it by name.
 */
const CATALOGUE = {
  backup: { job: backup },
  // A failed restore leaves nothing under the target's name; retrying it blindly could compete with the operator.
  restore: { job: restore, overrides: { attempts: 1 } },
  verify: { job: verify },
  prune: { job: prune },
  expire: { job: expire },
  archive: { job: archive },
  // A report; running it again on failure tells nothing new.
  lint: { job: lint, overrides: { attempts: 1 } },
  // Warming is an optimisation: one try, and the next schedule tick or restore warms again.
  warm: { job: warm, overrides: { attempts: 1 } },
  // The next probe is at most a tick away: a retry would only report stale health.
  probe: { job: probe, overrides: { attempts: 1, keepCompleted: 500, keepCompletedSeconds: 3600 } },
  // A measurement: a retry measures again, which the next schedule tick does anyway.
  recall: { job: recall, overrides: { attempts: 1 } },
  // A retry would copy and measure everything again; the failure says what to fix.
  tune: { job: tune, overrides: { attempts: 1 } },
  // A failed drill is the news (its alert fires); retrying at once would hide a flaky restore.
  drill: { job: drill, overrides: { attempts: 1 } },
  // A retry first puts back what a crashed run left (a collection moved aside mid-swap) and builds again.
  reindex: { job: reindex },
} satisfies Record<ServedKind, CatalogueEntry>;

export type JobOf<K extends ServedKind> = (typeof CATALOGUE)[K]["job"];

export function jobOf<K extends ServedKind>(kind: K): JobOf<K> {
  return CATALOGUE[kind].job;
}

/** A kind's definition widened to the common shape, for code that handles any kind (the payload is parsed first). */
export function definitionOf(kind: ServedKind): JobDefinition {
  return CATALOGUE[kind].job;
}

/** BullMQ default job options of a kind: attempts with exponential backoff, and bounded retention. */
export function jobOptionsOf(kind: ServedKind): DefaultJobOptions {
  const entry: CatalogueEntry = CATALOGUE[kind];
  const o: JobDefaults = { ...DEFAULTS.jobs, ...entry.overrides };
  return {
    attempts: o.attempts,
    backoff: { type: "exponential", delay: o.backoffMs },
    removeOnComplete: { count: o.keepCompleted, age: o.keepCompletedSeconds },
    removeOnFail: { count: o.keepFailed, age: o.keepFailedSeconds },
    // A failed job shows its one-line reason (on the dashboard, in `status`), not a stack trace under it.
    stackTraceLimit: 0,
  };
}
