import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { applyPrune, planPrune } from "../storage/backup-pruning.js";
import { keepPolicy } from "./backup-fields.js";
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
  /** Interrupted backups still inside the grace period, left alone. */
  leftoversKept: string[];
  bytesFreed: number;
}

/** Applies a retention policy to one collection's backups (restic `forget` rules) and collects old leftovers. */
export const prune = defineJob({
  kind: "prune",
  payload: prunePayload,
  async process(payload, ctx): Promise<PruneResult> {
    const plan = await planPrune(ctx.backupStore, payload.collection, payload.keep, payload.leftoverGraceHours * 3_600_000);
    const wouldFree =
      plan.remove.reduce((n, e) => n + e.manifest.chunks.reduce((m, c) => m + c.bytes, 0), 0) +
      plan.leftovers.reduce((n, f) => n + f.bytes, 0);
    const bytesFreed = payload.dryRun ? wouldFree : await applyPrune(ctx.backupStore, plan);
    ctx.logger.info(
      { collection: payload.collection, dryRun: payload.dryRun, deleted: plan.remove.length, leftovers: plan.leftovers.length },
      payload.dryRun ? "prune plan (dry run)" : "pruned",
    );
    return {
      collection: payload.collection,
      dryRun: payload.dryRun,
      kept: plan.keep,
      deleted: plan.remove.map((e) => e.backupId),
      leftoversDeleted: plan.leftovers.map((f) => f.backupId),
      leftoversKept: plan.youngLeftovers,
      bytesFreed,
    };
  },
});
