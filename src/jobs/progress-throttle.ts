import { DEFAULTS } from "../config/defaults.js";
import type { JobContext, Progress } from "./job-context.js";

const same = (a: Progress, b: Progress) => a.done === b.done && a.total === b.total && a.unit === b.unit && a.note === b.note;
const complete = (progress: Progress) => progress.total !== undefined && progress.done >= progress.total;

/**
 * Passes a job's progress on at most once per interval. Jobs report per chunk or per page: a restore of a
 * deduplicated backup reports about 33,000 times for 100,000 records, each a Redis call under a worker (or a
 * terminal write under the CLI), while a person or the dashboard reads a few a second at most. What is held back is
 * sent when the interval ends (the latest value), and at once when it first reaches its total, starts another unit (a
 * job's next phase: the previous unit's held value is then dropped, the new one supersedes it) or changes its note
 * (pacing holding the job back, or letting go).
 */
export class ProgressThrottle {
  private shown: Progress | undefined;
  private shownAt = -Infinity;
  private pending: Progress | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Sends run one after another, so an update sent late never overwrites a later one. */
  private sending: Promise<void> = Promise.resolve();
  /** A send started by the timer that failed: it surfaces at the job's next report, as an unthrottled one would. */
  private failed: { error: unknown } | undefined;
  /** Set by `stop`: a send queued behind one in flight is not made. */
  private stopped = false;

  constructor(
    private readonly send: (progress: Progress) => Promise<void>,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  async report(progress: Progress): Promise<void> {
    this.rethrow();
    const shown = this.shown;
    if (shown && same(progress, shown)) {
      this.drop();
      return;
    }
    const due = this.now() - this.shownAt >= this.intervalMs;
    // Only reaching the total goes out at once: a count that runs past it (records inserted during a copy) is throttled.
    const reached = complete(progress) && !(shown && complete(shown));
    if (!shown || due || reached || progress.unit !== shown.unit || progress.note !== shown.note) {
      return this.deliver(progress);
    }
    this.pending = progress;
    if (!this.timer) {
      this.timer = setTimeout(() => this.deliverPending(), Math.max(0, this.shownAt + this.intervalMs - this.now()));
      // A job that ends meanwhile is flushed or stopped by its runner; the timer alone must not keep a CLI alive.
      this.timer.unref();
    }
  }

  /** Sends what is held back and waits for every send: called once the job has returned, before it counts as done. */
  async flush(): Promise<void> {
    if (this.pending) await this.deliver(this.pending);
    else await this.sending.catch(() => undefined);
    this.rethrow();
  }

  /** Forgets what is held back (the job failed or is over): nothing is sent after this. */
  stop(): void {
    this.stopped = true;
    this.drop();
  }

  private deliver(progress: Progress): Promise<void> {
    this.drop();
    this.shown = progress;
    this.shownAt = this.now();
    this.sending = this.sending.catch(() => undefined).then(() => (this.stopped ? undefined : this.send(progress)));
    return this.sending;
  }

  private deliverPending(): void {
    this.timer = undefined;
    if (!this.pending) return;
    this.deliver(this.pending).catch((error: unknown) => {
      this.failed ??= { error };
    });
  }

  private drop(): void {
    this.pending = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private rethrow(): void {
    const failed = this.failed;
    this.failed = undefined;
    if (failed) throw failed.error;
  }
}

/**
 * Runs a job with its context's progress throttled (see {@link ProgressThrottle}): where the worker and the CLI start a
 * job, so every kind, and a job run inside another (a drill's restore), reports through one throttle.
 */
export async function withThrottledProgress<T>(
  ctx: JobContext,
  run: (ctx: JobContext) => Promise<T>,
  intervalMs: number = DEFAULTS.progress.intervalMs,
): Promise<T> {
  const throttle = new ProgressThrottle((progress) => ctx.progress(progress), intervalMs);
  try {
    const result = await run({ ...ctx, progress: (progress) => throttle.report(progress) });
    // The job's work is done: a progress update that cannot be sent must not fail it (and have it retried).
    await throttle.flush().catch((error: unknown) => ctx.logger.warn({ err: error }, "could not send the job's last progress update"));
    return result;
  } finally {
    throttle.stop();
  }
}
