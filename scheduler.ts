import cron, { type ScheduledTask } from "node-cron";
import type { Redis } from "ioredis";
import type { Alerter } from "./src/alerts/alerter.js";
import { checkBackupStaleness } from "./src/alerts/backup-staleness.js";
import type { SchedulerOptions } from "./src/config/defaults.js";
import type { Logger } from "./src/logging.js";
import type { QueueSet } from "./src/queues/queue-set.js";
import type { Schedule, ScheduleEntry } from "./src/scheduling/schedule-file.js";
import { SlotEnqueuer, type SlotOutcome } from "./src/scheduling/slot-enqueuer.js";
import { slotAtOrBefore } from "./src/scheduling/slots.js";
import type { ChromaStore } from "./src/storage/chroma.js";
import type { ObjectStore } from "./src/storage/object-store.js";

export interface SchedulerDeps {
  schedule: Schedule;
  options: SchedulerOptions;
  redis: Redis;
  queues: QueueSet;
  chroma: ChromaStore;
  logger: Logger;
  /** The clock; injected by tests of catch-up. */
  now?: () => Date;
  /** Checks that every collection with a backup schedule has a recent backup, alerting when not. */
  staleness?: { backupStore: ObjectStore; alerter: Alerter; maxAgeMs: number; intervalMs: number };
}

export interface SchedulerHandle {
  /** What the start-up catch-up enqueued, per entry index. */
  catchUp: SlotOutcome[];
  stop(): Promise<void>;
}

/**
 * Ticks every schedule entry with node-cron in the schedule's timezone. Each tick (and, once at start, the latest slot
 * missed within the catch-up window, like systemd's Persistent=true) becomes one job per matching collection.
 */
export async function startScheduler(deps: SchedulerDeps): Promise<SchedulerHandle> {
  const { schedule, options, logger } = deps;
  const now = deps.now ?? (() => new Date());
  // node-cron reports missed ticks and task failures through its own logger; route them into ours.
  cron.setLogger({
    info: (message) => logger.debug({ source: "node-cron" }, message),
    warn: (message) => logger.warn({ source: "node-cron" }, message),
    error: (message, err) => logger.error({ source: "node-cron", err }, String(message)),
    debug: (message) => logger.debug({ source: "node-cron" }, String(message)),
  });
  const enqueuer = new SlotEnqueuer({ ...deps, claimTtlMs: options.slotClaimTtlMs });

  const runSlot = async (entry: ScheduleEntry, slot: Date, reason: "tick" | "catch-up"): Promise<SlotOutcome> => {
    try {
      return await enqueuer.enqueueSlot(entry, slot, reason);
    } catch (error) {
      // A failed tick must not end the scheduler: the next tick tries again.
      logger.error({ err: error, kind: entry.kind, slot: slot.toISOString(), reason }, "could not enqueue schedule slot");
      return { enqueued: [], alreadyClaimed: [], missing: [] };
    }
  };

  const catchUp: SlotOutcome[] = [];
  if (options.catchUpWindowMs > 0) {
    const at = now();
    for (const entry of schedule.jobs) {
      const slot = slotAtOrBefore(entry.cron, schedule.timezone, at);
      const inWindow = at.getTime() - slot.getTime() <= options.catchUpWindowMs;
      catchUp.push(inWindow ? await runSlot(entry, slot, "catch-up") : { enqueued: [], alreadyClaimed: [], missing: [] });
    }
  }

  const tasks: ScheduledTask[] = schedule.jobs.map((entry, index) =>
    cron.schedule(
      entry.cron,
      async (context) => {
        await runSlot(entry, slotAtOrBefore(entry.cron, schedule.timezone, context.date), "tick");
      },
      { timezone: schedule.timezone, name: `vk-${index}-${entry.kind}` },
    ),
  );
  logger.info({ source: schedule.source, timezone: schedule.timezone, entries: schedule.jobs.length }, "scheduler started");

  let stalenessTimer: NodeJS.Timeout | undefined;
  const staleness = deps.staleness;
  if (staleness && schedule.jobs.some((entry) => entry.kind === "backup")) {
    const since = now();
    const check = () =>
      checkBackupStaleness({ ...staleness, entries: schedule.jobs, chroma: deps.chroma, since }, now()).catch((error: unknown) =>
        logger.warn({ reason: error instanceof Error ? error.message : String(error) }, "backup staleness check failed"),
      );
    stalenessTimer = setInterval(check, staleness.intervalMs);
    stalenessTimer.unref();
  }

  return {
    catchUp,
    async stop() {
      clearInterval(stalenessTimer);
      await Promise.all(tasks.map((task) => task.destroy()));
      logger.info("scheduler stopped");
    },
  };
}
