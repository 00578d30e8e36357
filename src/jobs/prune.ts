import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { applyPrune, planPrune } from "../storage/retention/backup-pruning.js";
import { backupLease, keepPolicy } from "./backup-fields.js";
import { defineJob } from "./job-context.js";
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
  /** Why shared chunks were not swept this time (a running backup, a damaged manifest). */
  sweepSkipped?: string;
  /** Format 4: bytes of chunks no kept backup lists inside packs kept whole for their other chunks (freed once those go). */
  unusedBytesInKeptPacks: number;
}

/** Applies a retention policy to one collection's backups (restic `forget` rules) and collects old leftovers. */
export const prune = defineJob({
  kind: "prune",
  payload: prunePayload,
  async process(payload, ctx): Promise<PruneResult> {
    // Folders without a manifest are left alone while a backup of the collection runs (it holds the lease): one of
    // them is that backup's, still being written.
    const runningBackup = await ctx.locks.holder(backupLease(payload.collection));
    const plan = await planPrune(ctx.backupStore, payload.collection, payload.keep, {
      graceMs: payload.leftoverGraceHours * 3_600_000,
      minAgeMs: ctx.locks.ttlMs,
      runningBackup,
    });
    const bytesFreed = payload.dryRun ? plan.bytes : await applyPrune(ctx.backupStore, plan);
    ctx.logger.info(
      { collection: payload.collection, dryRun: payload.dryRun, deleted: plan.remove.length, leftovers: plan.leftovers.length },
      payload.dryRun ? "prune plan (dry run)" : "pruned",
    );
    if (runningBackup) ctx.logger.info({ runningBackup, kept: plan.youngLeftovers }, "a backup is running: folders without a manifest left alone");
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
