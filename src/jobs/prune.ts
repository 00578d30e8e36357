import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { applyPrune, planPrune } from "../storage/retention/backup-pruning.js";
import { keepPolicy } from "./backup-fields.js";
import { defineJob } from "./job-context.js";
import { holdWriterLeases } from "./lease.js";
import { collectionName } from "./payload-fields.js";

export const prunePayload = z
  .object({
    collection: collectionName,
    keep: keepPolicy,
    dryRun: z.boolean().default(false),
    /** Leftovers of interrupted backups are deleted only once untouched this long. */
    leftoverGraceHours: z.number().min(0).default(DEFAULTS.backup.leftoverGraceHours),
  })
  .strict();

export interface PruneResult {
  collection: string;
  dryRun: boolean;
  kept: { backupId: string; reasons: string[] }[];
  deleted: string[];
  leftoversDeleted: string[];
  /** Writes a crash or failure never finished (`.partial` files, incomplete multipart uploads), collected. */
  unfinishedCollected: string[];
  /** Interrupted backups still inside the grace period, or possibly still being written, left alone. */
  leftoversKept: string[];
  bytesFreed: number;
  /** Shared chunks (format 3) and packs (format 4) no kept backup needs, older than the grace period: deleted, or with --dry-run would be. */
  chunksSwept: number;
  /** Unreferenced shared chunks and packs inside the grace period, left alone. */
  chunksYoung: number;
  /** Why shared chunks were not swept this time (a running backup or archive, a damaged manifest). */
  sweepSkipped?: string;
  /** Format 4: bytes of chunks no kept backup lists inside packs kept whole for their other chunks (freed once those go). */
  unusedBytesInKeptPacks: number;
}

/** Applies a retention policy to one collection's backups (restic `forget` rules) and collects old leftovers. */
export const prune = defineJob({
  kind: "prune",
  payload: prunePayload,
  async process(payload, ctx): Promise<PruneResult> {
    // Held from the plan to the end of the sweep: while a backup or archive of the collection runs, it may reuse any
    // pack, and one of the folders without a manifest is its own, so neither packs nor such folders are touched.
    const writers = await holdWriterLeases(ctx, payload.collection, { look: payload.dryRun });
    let plan;
    let bytesFreed;
    try {
      plan = await planPrune(ctx.backupStore, payload.collection, payload.keep, {
        graceMs: payload.leftoverGraceHours * 3_600_000,
        minAgeMs: ctx.locks.ttlMs,
        runningWriter: writers.busy,
      });
      if (!payload.dryRun) await writers.confirm();
      bytesFreed = payload.dryRun ? plan.bytes : await applyPrune(ctx.backupStore, plan);
    } finally {
      await writers.release();
    }
    ctx.logger.info(
      { collection: payload.collection, dryRun: payload.dryRun, deleted: plan.remove.length, leftovers: plan.leftovers.length },
      payload.dryRun ? "prune plan (dry run)" : "pruned",
    );
    if (writers.busy) ctx.logger.warn({ running: writers.busy, kept: plan.youngLeftovers }, `${writers.busy} is running: packs and shared chunks not swept, folders without a manifest left alone`);
    return {
      collection: payload.collection,
      dryRun: payload.dryRun,
      kept: plan.keep,
      deleted: plan.remove.map((e) => e.backupId),
      leftoversDeleted: plan.leftovers.map((f) => f.backupId),
      leftoversKept: plan.youngLeftovers,
      unfinishedCollected: plan.unfinished?.keys ?? [],
      bytesFreed,
      chunksSwept: plan.sweep?.keys.length ?? 0,
      chunksYoung: plan.sweep?.young ?? 0,
      unusedBytesInKeptPacks: plan.sweep?.unusedInKeptPacks ?? 0,
      ...(plan.sweepSkipped ? { sweepSkipped: plan.sweepSkipped } : {}),
    };
  },
});
