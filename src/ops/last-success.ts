import type { Redis } from "ioredis";
import { collectionsWithBackups, newestBackup } from "../storage/backup-format/backup-catalog.js";
import type { ObjectStore } from "../storage/objects/object-store.js";

/** Keeps the later of the stored and the given time, so a late report of an older run never moves it back. */
const RECORD_MAX = `
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
`;

export interface LastSuccess {
  kind: string;
  collection: string;
  /** Unix time in seconds. */
  at: number;
}

/**
 * When each job kind last succeeded on each collection, in one Redis hash (`<prefix>:last-success`, field
 * `<kind>:<collection>`) that every worker, the CLI's `run` and the start-up catalog scan write to. Every worker
 * exports it at scrape time, so a restart or a second worker changes no staleness alert.
 */
export class LastSuccessStore {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:last-success`;
  }

  async record(kind: string, collection: string, at: Date = new Date()): Promise<void> {
    await this.redis.eval(RECORD_MAX, 1, this.key, `${kind}:${collection}`, String(at.getTime() / 1000));
  }

  async all(): Promise<LastSuccess[]> {
    const fields = await this.redis.hgetall(this.key);
    return Object.entries(fields).flatMap(([field, value]) => {
      const colon = field.indexOf(":");
      const at = Number(value);
      if (colon <= 0 || !Number.isFinite(at)) return [];
      return [{ kind: field.slice(0, colon), collection: field.slice(colon + 1), at }];
    });
  }

  /** Drops every kind's entry of collections that no longer exist. */
  async forget(collections: ReadonlySet<string>): Promise<void> {
    const stale = (await this.all()).filter((entry) => collections.has(entry.collection));
    if (stale.length > 0) await this.redis.hdel(this.key, ...stale.map((e) => `${e.kind}:${e.collection}`));
  }

  /**
   * Seeds the hash from the backup catalog, the truth for backups and archives to the object store: backups made
   * before this Redis existed, or by a `run backup` that had no Redis, still count. One manifest read per collection
   * and purpose.
   */
  async seedFromCatalog(store: ObjectStore): Promise<number> {
    let seeded = 0;
    for (const collection of await collectionsWithBackups(store)) {
      for (const purpose of ["backup", "archive"] as const) {
        const newest = await newestBackup(store, collection, purpose);
        if (!newest) continue;
        await this.record(purpose, collection, new Date(newest.finishedAt));
        seeded++;
      }
    }
    return seeded;
  }
}
