/**
 * Which backups a retention policy keeps, with the rules of `restic forget`: `last` keeps the N newest; `daily`,
 * `weekly` and `monthly` keep the newest backup of each of the N most recent days, ISO weeks and months that have
 * one (in UTC). A backup is kept if any rule keeps it, and the newest backup is always kept.
 */
export interface KeepPolicy {
  last?: number | undefined;
  daily?: number | undefined;
  weekly?: number | undefined;
  monthly?: number | undefined;
}

export interface Dated {
  id: string;
  time: Date;
}

export interface RetentionDecision<T extends Dated> {
  keep: { backup: T; reasons: string[] }[];
  remove: T[];
}

const day = (d: Date) => d.toISOString().slice(0, 10);
const month = (d: Date) => d.toISOString().slice(0, 7);

/** ISO 8601 week, e.g. 2026-W48: weeks start on Monday and belong to the year of their Thursday. */
export function isoWeek(d: Date): string {
  const date = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((date.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

export function selectRetained<T extends Dated>(backups: readonly T[], policy: KeepPolicy): RetentionDecision<T> {
  const newestFirst = [...backups].sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
  const reasons = new Map<string, string[]>();
  const keepFor = (backup: T, reason: string) => reasons.set(backup.id, [...(reasons.get(backup.id) ?? []), reason]);

  newestFirst.slice(0, policy.last ?? 0).forEach((b) => keepFor(b, "last"));
  const buckets: [keyof KeepPolicy, (d: Date) => string][] = [
    ["daily", day],
    ["weekly", isoWeek],
    ["monthly", month],
  ];
  for (const [rule, bucketOf] of buckets) {
    const limit = policy[rule] ?? 0;
    const seen = new Set<string>();
    for (const backup of newestFirst) {
      if (seen.size >= limit) break;
      const bucket = bucketOf(backup.time);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      keepFor(backup, `${rule} ${bucket}`);
    }
  }
  const newest = newestFirst[0];
  if (newest && !reasons.has(newest.id)) keepFor(newest, "newest");

  return {
    keep: newestFirst.filter((b) => reasons.has(b.id)).map((backup) => ({ backup, reasons: reasons.get(backup.id)! })),
    remove: newestFirst.filter((b) => !reasons.has(b.id)),
  };
}
