import { backupFolders, completeBackups, type BackupFolder, type CatalogEntry } from "./backup-format/backup-catalog.js";
import { MANIFEST, backupFolder } from "./backup-format/layout.js";
import type { ObjectStore } from "./object-store.js";
import { selectRetained, type KeepPolicy } from "./retention.js";

export interface PrunePlan {
  collection: string;
  keep: { backupId: string; reasons: string[] }[];
  remove: CatalogEntry[];
  /** Folders of interrupted backups (no manifest) untouched for longer than the grace period. */
  leftovers: BackupFolder[];
  /** Interrupted-backup folders kept: inside the grace period, or maybe a backup still running. */
  youngLeftovers: string[];
  /** Writes never finished (`.partial` files, incomplete multipart uploads) old enough to collect, and their cutoff. */
  unfinished: { keys: string[]; before: Date } | undefined;
}

/** When a folder without a manifest may be collected. */
export interface LeftoverRules {
  /** Untouched at least this long (the prune's grace period). */
  graceMs: number;
  /**
   * Untouched at least this long whatever the grace: one lease lifetime, so a backup whose lease prune cannot see
   * (another Redis, or none) is safe while it still writes.
   */
  minAgeMs: number;
  /** The holder of the collection's backup lease, if a backup runs now: then no folder without a manifest is touched. */
  runningBackup?: string | undefined;
}

/** What a retention policy removes from one collection's backups, and which leftovers are old enough to collect. */
export async function planPrune(
  store: ObjectStore,
  collection: string,
  policy: KeepPolicy,
  rules: LeftoverRules,
  now: Date = new Date(),
): Promise<PrunePlan> {
  // Archives hold records that exist nowhere else: retention never touches them.
  const backups = (await completeBackups(store, collection)).backups.filter((entry) => entry.manifest.purpose === "backup");
  const decision = selectRetained(
    backups.map((entry) => ({ id: entry.backupId, time: new Date(entry.manifest.startedAt), entry })),
    policy,
  );
  const incomplete = (await backupFolders(store, collection)).filter((folder) => !folder.hasManifest);
  const minAge = Math.max(rules.graceMs, rules.minAgeMs);
  const collectable = (f: BackupFolder) => rules.runningBackup === undefined && now.getTime() - f.lastModified.getTime() > minAge;
  const before = new Date(now.getTime() - minAge);
  const unfinished = rules.runningBackup === undefined ? { keys: await store.collectUnfinished(`${collection}/`, before, true), before } : undefined;
  return {
    unfinished,
    collection,
    keep: decision.keep.map(({ backup, reasons }) => ({ backupId: backup.id, reasons })),
    remove: decision.remove.map((b) => b.entry),
    leftovers: incomplete.filter(collectable),
    youngLeftovers: incomplete.filter((f) => !collectable(f)).map((f) => f.backupId),
  };
}

/**
 * Deletes what a plan removes. A backup's manifest goes first, so an interruption leaves a leftover (collected by a
 * later prune), never a listed backup with missing chunks.
 */
export async function applyPrune(store: ObjectStore, plan: PrunePlan): Promise<number> {
  let bytes = 0;
  for (const entry of plan.remove) {
    const folder = backupFolder(entry.collection, entry.backupId);
    await store.delete([folder + MANIFEST]);
    await store.delete(entry.keys.filter((key) => key !== folder + MANIFEST));
    bytes += entry.manifest.chunks.reduce((n, c) => n + c.bytes, 0);
  }
  for (const leftover of plan.leftovers) {
    await store.delete(leftover.keys);
    bytes += leftover.bytes;
  }
  if (plan.unfinished && plan.unfinished.keys.length > 0) await store.collectUnfinished(`${plan.collection}/`, plan.unfinished.before);
  return bytes;
}
