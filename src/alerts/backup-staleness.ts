import type { ScheduleEntry } from "../scheduling/schedule-file.js";
import { resolveCollections } from "../scheduling/collection-globs.js";
import { newestBackup } from "../storage/backup-format/backup-catalog.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import type { ObjectStore } from "../storage/objects/object-store.js";
import type { Alerter } from "./alerter.js";

export interface StalenessDeps {
  entries: readonly ScheduleEntry[];
  chroma: ChromaStore;
  backupStore: ObjectStore;
  alerter: Alerter;
  maxAgeMs: number;
  /** When the checking process started: a collection never backed up is stale only once this is maxAge ago. */
  since: Date;
}

export interface StalenessReport {
  collection: string;
  lastBackupAt: string | null;
  stale: boolean;
}

/**
 * Every collection a backup entry covers must have a complete backup younger than the limit (26 h for a nightly
 * schedule by default); otherwise the `backup-stale` check fails for it, which alerts at once (threshold 1).
 */
export async function checkBackupStaleness(deps: StalenessDeps, now: Date = new Date()): Promise<StalenessReport[]> {
  const backupEntries = deps.entries.filter((entry) => entry.kind === "backup");
  if (backupEntries.length === 0) return [];
  const existing = await deps.chroma.listCollectionNames();
  const covered = new Set(backupEntries.flatMap((entry) => resolveCollections(entry.collections, existing).collections));
  const reports: StalenessReport[] = [];
  for (const collection of covered) {
    const newest = await newestBackup(deps.backupStore, collection, "backup");
    const last = newest ? new Date(newest.finishedAt) : undefined;
    const reference = last ?? deps.since;
    const stale = now.getTime() - reference.getTime() > deps.maxAgeMs;
    reports.push({ collection, lastBackupAt: last?.toISOString() ?? null, stale });
    const hours = Math.round(deps.maxAgeMs / 3_600_000);
    await deps.alerter.observe(
      {
        check: "backup-stale",
        subject: collection,
        ok: !stale,
        threshold: 1,
        summary: last ? `last complete backup ${last.toISOString()} (limit ${hours} h)` : `no complete backup (limit ${hours} h)`,
        details: { lastBackupAt: last?.toISOString() ?? null, maxAgeHours: hours },
      },
      now,
    );
  }
  return reports;
}
