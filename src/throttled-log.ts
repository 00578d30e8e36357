import type { Logger } from "./logging.js";

/**
 * Errors of a connection that keeps failing the same way. During an outage every reconnect attempt of every
 * connection and queue fails alike, many times a second; one line per distinct error per interval keeps the log
 * readable (and the disk whole), the number of repeats in between rides on the next line, and the first success
 * after failures is logged once.
 */
export class ThrottledErrorLog {
  private readonly seen = new Map<string, { loggedAt: number; repeats: number }>();
  private failing = false;

  constructor(
    private readonly logger: Logger,
    /** What failed, as the log line names it: "redis". */
    private readonly what: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    private readonly level: "error" | "warn" = "error",
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
    this.seen.set(reason, { loggedAt: at, repeats: 0 });
    this.logger[this.level](
      { ...fields, reason, ...(code ? { code } : {}), repeatsSinceLastLine: entry?.repeats ?? 0, quietForMs: this.intervalMs },
      `${this.what} ${this.level === "warn" ? "warning" : "error"}`,
    );
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
