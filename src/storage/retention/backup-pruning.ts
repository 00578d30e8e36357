import { backupFolders, completeBackups, type BackupFolder, type CatalogEntry } from "../backup-format/backup-catalog.js";
import { planSweep, type ChunkSweep } from "../backup-format/content-store.js";
import { MANIFEST, backupFolder } from "../backup-format/layout.js";
import type { ObjectStore } from "../objects/object-store.js";
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
  /**
   * Shared chunks (format 3) and packs (format 4) that no backup kept lists, older than the grace period; undefined while a backup or
   * archive of the collection runs, or when a damaged manifest hides which chunks it needs (then nothing shared is swept).
   */
  sweep: ChunkSweep | undefined;
  /** Why shared chunks were not swept, when they were not. */
  sweepSkipped?: string;
  /** What applying the plan frees: removed backups' own objects, leftovers and swept chunks. */
  bytes: number;
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
  /**
   * The backup or archive of the collection running now ("a backup of x (job 7)"), whose lease the prune could not
   * take: then no folder without a manifest is touched and nothing shared is swept.
   */
  runningWriter?: string | undefined;
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
  const catalog = await completeBackups(store, collection);
  const backups = catalog.backups.filter((entry) => entry.manifest.purpose === "backup");
  const decision = selectRetained(
    backups.map((entry) => ({ id: entry.backupId, time: new Date(entry.manifest.startedAt), entry })),
    policy,
  );
  const incomplete = (await backupFolders(store, collection)).filter((folder) => !folder.hasManifest);
  const minAge = Math.max(rules.graceMs, rules.minAgeMs);
  const collectable = (f: BackupFolder) => rules.runningWriter === undefined && now.getTime() - f.lastModified.getTime() > minAge;
  const before = new Date(now.getTime() - minAge);
  const unfinished = rules.runningWriter === undefined ? { keys: await store.collectUnfinished(`${collection}/`, before, true), before } : undefined;
  const remove = decision.remove.map((b) => b.entry);
  const leftovers = incomplete.filter(collectable);
  // Mark: every manifest that stays (kept backups and all archives); sweep: shared chunks none of them lists.
  const removed = new Set(remove.map((e) => e.backupId));
  const kept = catalog.backups.filter((e) => !removed.has(e.backupId)).map((e) => e.manifest);
  const sweepSkipped =
    rules.runningWriter !== undefined
      ? `${rules.runningWriter} is running`
      : catalog.damaged.length > 0
        ? `damaged manifest of backup ${catalog.damaged[0]!.backupId} hides which chunks it needs`
        : undefined;
  const sweep = sweepSkipped === undefined ? await planSweep(store, collection, kept, before) : undefined;
  const bytes =
    remove.reduce((n, e) => n + ownObjectBytes(e), 0) + leftovers.reduce((n, f) => n + f.bytes, 0) + (sweep?.bytes ?? 0);
  return {
    unfinished,
    collection,
    keep: decision.keep.map(({ backup, reasons }) => ({ backupId: backup.id, reasons })),
    remove,
    leftovers,
    youngLeftovers: incomplete.filter((f) => !collectable(f)).map((f) => f.backupId),
    sweep,
    ...(sweepSkipped ? { sweepSkipped } : {}),
    bytes,
  };
}

/**
 * What removing a backup's folder frees: what the catalog counts it taking (chunks and manifest, as `backups list` and
 * the backup's result report), less (formats 3 and 4) the shared chunks, which only the sweep frees.
 */
function ownObjectBytes(entry: CatalogEntry): number {
  if (entry.manifest.formatVersion < 3) return entry.bytes;
  return entry.bytes - entry.manifest.chunks.reduce((n, c) => n + c.bytes, 0);
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
    bytes += ownObjectBytes(entry);
  }
  for (const leftover of plan.leftovers) {
    await store.delete(leftover.keys);
    bytes += leftover.bytes;
  }
  // After the manifests: a chunk goes only once nothing that stays lists it.
  if (plan.sweep && plan.sweep.keys.length > 0) {
    for (let i = 0; i < plan.sweep.keys.length; i += 1000) await store.delete(plan.sweep.keys.slice(i, i + 1000));
    bytes += plan.sweep.bytes;
  }
  if (plan.unfinished && plan.unfinished.keys.length > 0) await store.collectUnfinished(`${plan.collection}/`, plan.unfinished.before);
  return bytes;
}
