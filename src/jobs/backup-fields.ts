import { z } from "zod";
import { BACKUP_ID } from "../storage/backup-format/layout.js";

/** Retention of a schedule entry or a prune: at least one rule, each a whole number of backups to keep. */
export const keepPolicy = z
  .object({
    last: z.number().int().min(0).optional(),
    daily: z.number().int().min(0).optional(),
    weekly: z.number().int().min(0).optional(),
    monthly: z.number().int().min(0).optional(),
  })
  .strict()
  .refine((keep) => Object.values(keep).some((n) => n !== undefined && n > 0), {
    message: "keeps nothing: set at least one of last, daily, weekly, monthly above 0",
  });

/** The lease one backup of a collection holds while it runs; prune takes it too, to sweep (docs/format.md §7). */
export const backupLease = (collection: string) => `backup:${collection}`;

/** The lease one archive of a collection into the object store holds while it runs; prune takes it too, to sweep. */
export const archiveLease = (collection: string) => `archive:${collection}`;

export const backupIdField = z.string().regex(BACKUP_ID, {
  message: "is not a backup id (they look like 20261123T030000123Z-3f9a1c)",
});
