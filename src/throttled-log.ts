import { DEFAULTS } from "./config/defaults.js";
import type { Logger } from "./logging.js";

/**
 * Errors of a connection that keeps failing the same way. During an outage every reconnect attempt of every
 * connection and queue fails alike, many times a second; one line per distinct error per interval keeps the log
 * readable (and the disk whole), the number of repeats in between rides on the next line, and the first success
 * after failures is logged once. Errors not seen for two intervals are forgotten (with any repeats not yet logged), and
 * at most `maxDistinct` are remembered: messages can carry job ids, and a daemon runs for months.
 */
export class ThrottledErrorLog {
  private readonly seen = new Map<string, { loggedAt: number; repeats: number }>();
  private failing = false;
  private sweptAt = 0;

  constructor(
    private readonly logger: Logger,
    /** What failed, as the log line names it: "redis". */
    private readonly what: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    private readonly level: "error" | "warn" = "error",
    private readonly maxDistinct: number = DEFAULTS.logs.repeatMaxDistinct,
  ) {}

  error(error: unknown, fields: Record<string, unknown> = {}): void {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const at = this.now();
    const entry = this.seen.get(reason);
    this.failing = true;
    if (entry && at - entry.loggedAt < this.intervalMs) {
      entry.repeats += 1;
      return;
    }
    // Re-inserted, so the map stays ordered by when each error was last logged (the oldest first).
    this.seen.delete(reason);
    this.seen.set(reason, { loggedAt: at, repeats: 0 });
    this.forgetOld(at);
    this.logger[this.level](
      { ...fields, reason, ...(code ? { code } : {}), repeatsSinceLastLine: entry?.repeats ?? 0, quietForMs: this.intervalMs },
      `${this.what} ${this.level === "warn" ? "warning" : "error"}`,
    );
  }

  private forgetOld(at: number): void {
    if (at - this.sweptAt >= this.intervalMs) {
      this.sweptAt = at;
      for (const [reason, entry] of this.seen) {
        if (at - entry.loggedAt < 2 * this.intervalMs) break;
        this.seen.delete(reason);
      }
    }
    for (const reason of this.seen.keys()) {
      if (this.seen.size <= this.maxDistinct) break;
      this.seen.delete(reason);
    }
  }

  /** The connection works again: one line if it had failed, nothing otherwise. */
  recovered(): void {
    if (!this.failing) return;
    const repeats = [...this.seen.values()].reduce((n, e) => n + e.repeats, 0);
    this.failing = false;
    this.seen.clear();
    this.logger.info({ repeatsSinceLastLine: repeats }, `${this.what} connection restored`);
  }
}
