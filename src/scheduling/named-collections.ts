import type { Redis } from "ioredis";
import { isGlob } from "./collection-globs.js";
import type { ScheduleEntry } from "./schedule-file.js";

/**
 * The collections schedules name literally, shared through Redis. A literal name that does not exist is a failure to
 * report (its probe fails, its backup fails), not a collection to forget: workers keep its series and alert state.
 * Each scheduler refreshes the set on every catch-up pass; it lapses when no scheduler runs.
 */
export class NamedCollections {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:scheduler:named`;
  }

  static of(entries: readonly ScheduleEntry[]): string[] {
    return [...new Set(entries.flatMap((entry) => entry.collections.filter((pattern) => !isGlob(pattern))))];
  }

  async publish(names: readonly string[], ttlMs: number): Promise<void> {
    if (names.length === 0) return;
    await this.redis.multi().sadd(this.key, ...names).pexpire(this.key, ttlMs).exec();
  }

  async read(): Promise<Set<string>> {
    return new Set(await this.redis.smembers(this.key));
  }
}
