import cron, { type ScheduledTask } from "node-cron";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import type { Alerter } from "./src/alerts/alerter.js";
import { checkBackupStaleness } from "./src/alerts/backup-staleness.js";
import { DEFAULTS, type SchedulerOptions } from "./src/config/defaults.js";
import type { Logger } from "./src/logging.js";
import { startOpsServer, type OpsServer } from "./src/ops/ops-server.js";
import { chromaAnswers } from "./src/ops/readiness.js";
import { SchedulerMetrics } from "./src/ops/scheduler-metrics.js";
import type { QueueSet } from "./src/queues/queue-set.js";
import { slotJobOptions } from "./src/queues/slot-retry.js";
import { NamedCollections } from "./src/scheduling/named-collections.js";
import type { Schedule, ScheduleEntry } from "./src/scheduling/schedule-file.js";
import { emptyOutcome, SlotEnqueuer, type SlotOutcome } from "./src/scheduling/slot-enqueuer.js";
import { nextSlots, slotAtOrBefore } from "./src/scheduling/slots.js";
import type { ChromaStore } from "./src/storage/chroma/client.js";
import type { ObjectStore } from "./src/storage/objects/object-store.js";

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
  /** Alerts on the server-level Chroma check (after `afterFailures` failed probe ticks in a row, and on recovery). */
  chromaAlerts?: { alerter: Alerter; afterFailures: number };
  /** Serve /livez, /readyz and /metrics here (the `scheduler` daemon); `start` registers on the worker's registry instead. */
  http?: { port: number; host: string };
  /** Register the scheduler's series here (the worker's registry under `start`); its own registry otherwise. */
  registry?: Registry;
}

export interface SchedulerHandle {
  /** What the start-up catch-up enqueued, per entry index. */
  catchUp: SlotOutcome[];
  metrics: SchedulerMetrics;
  ops?: OpsServer;
  stop(): Promise<void>;
}

/**
 * Ticks every schedule entry with node-cron in the schedule's timezone. Each tick becomes one job per matching
 * collection. A catch-up pass, at start and then every `catchUpIntervalMs`, enqueues each entry's latest slot inside
 * the catch-up window that this scheduler has not fully enqueued yet (systemd's Persistent=true, run continuously):
 * a slot missed while no scheduler ran, a tick that failed because Redis did not answer, or a slot enqueued from
 * memory while Chroma was down (looked at again once it answers, so new glob matches get their job).
 */
export async function startScheduler(deps: SchedulerDeps): Promise<SchedulerHandle> {
  const { schedule, options, logger, chroma } = deps;
  const now = deps.now ?? (() => new Date());
  // node-cron reports missed ticks and task failures through its own logger; route them into ours.
  cron.setLogger({
    info: (message) => logger.debug({ source: "node-cron" }, message),
    warn: (message) => logger.warn({ source: "node-cron" }, message),
    error: (message, err) => logger.error({ source: "node-cron", err }, String(message)),
    debug: (message) => logger.debug({ source: "node-cron" }, String(message)),
  });
  const metrics = new SchedulerMetrics(deps.registry);
  const enqueuer = new SlotEnqueuer({ ...deps, claimTtlMs: options.slotClaimTtlMs, listTimeoutMs: options.listTimeoutMs, globMemoryMs: options.globMemoryMs });
  const named = new NamedCollections(deps.redis, deps.queues.prefix);
  const namedNames = NamedCollections.of(schedule.jobs);

  /** Per entry: the newest slot fully enqueued (Chroma listed), so passes leave it alone. */
  const done = schedule.jobs.map(() => 0);
  const refreshNextSlots = () =>
    schedule.jobs.forEach((entry, index) => metrics.nextSlotOf(index, entry.kind, nextSlots(entry.cron, schedule.timezone, now(), 1)[0]!));

  /** Chroma checks observed for alerting, one after the other in slot order (a webhook may take seconds); `stop` waits. */
  let observing: Promise<void> = Promise.resolve();
  /** Alerting on the server-level check, once per slot; a slow webhook or a Redis error must not hold the slot's jobs. */
  const observeChroma = async (slot: Date, check: Awaited<ReturnType<typeof chromaAnswers>>, alerts: { alerter: Alerter; afterFailures: number }) => {
    if (!(await enqueuer.claim(`chroma-check.${slot.getTime()}`))) return;
    await alerts.alerter.observe({
      check: "chroma",
      subject: chroma.where,
      ok: check.ok,
      threshold: alerts.afterFailures,
      summary: check.ok ? `heartbeat in ${check.ms} ms` : (check.error ?? "no answer"),
      details: check.ok ? { ms: check.ms } : { reason: check.error },
    });
  };

  /** The server-level check of a probe slot: exported every time, observed for alerting in the background. */
  const checkChroma = async (slot: Date): Promise<boolean> => {
    const check = await chromaAnswers(chroma, DEFAULTS.checks.timeoutMs);
    metrics.chroma(check.ok);
    const alerts = deps.chromaAlerts;
    if (alerts) {
      observing = observing
        .then(() => observeChroma(slot, check, alerts))
        .catch((error: unknown) =>
          logger.error({ slot: slot.toISOString(), err: error instanceof Error ? error.message : String(error) }, "alerting on the Chroma check failed"),
        );
    }
    return check.ok;
  };

  const runSlot = async (index: number, slot: Date, reason: "tick" | "catch-up"): Promise<SlotOutcome> => {
    const entry: ScheduleEntry = schedule.jobs[index]!;
    try {
      const chromaUp = entry.kind === "probe" ? await checkChroma(slot) : true;
      // Useful until the entry's next slot, and at least `slotUsefulMinMs`: a nightly backup retries all night.
      const next = nextSlots(entry.cron, schedule.timezone, slot, 1)[0]!;
      const usefulUntil = Math.max(next.getTime(), slot.getTime() + options.slotUsefulMinMs);
      const jobOptions = slotJobOptions(entry.kind, usefulUntil, now().getTime());
      const outcome = await enqueuer.enqueueSlot(entry, slot, reason, {
        chromaKnownDown: !chromaUp,
        ...(jobOptions ? { jobOptions } : {}),
      });
      metrics.slotEnqueued(entry.kind, outcome.enqueued.length);
      if (!outcome.chromaDown) done[index] = Math.max(done[index]!, slot.getTime());
      return outcome;
    } catch (error) {
      // A failed slot must not end the scheduler: the next catch-up pass tries it again while it is in the window.
      metrics.slotFailed(entry.kind);
      logger.error(
        { kind: entry.kind, slot: slot.toISOString(), reason, err: error instanceof Error ? error.message : String(error) },
        "could not enqueue schedule slot; retrying within the catch-up window",
      );
      return emptyOutcome();
    } finally {
      refreshNextSlots();
    }
  };

  let passing: Promise<SlotOutcome[]> | undefined;
  const catchUpPass = (): Promise<SlotOutcome[]> =>
    (passing ??= (async () => {
      const outcomes: SlotOutcome[] = [];
      for (const [index, entry] of schedule.jobs.entries()) {
        const at = now();
        const slot = slotAtOrBefore(entry.cron, schedule.timezone, at);
        const due = slot.getTime() > done[index]! && at.getTime() - slot.getTime() <= options.catchUpWindowMs;
        outcomes.push(due ? await runSlot(index, slot, "catch-up") : emptyOutcome());
      }
      return outcomes;
    })().finally(() => (passing = undefined)));

  // Up before the first pass, which may wait out a Chroma that does not answer.
  const ops = deps.http
    ? await startOpsServer({ http: deps.http, dashboard: undefined, redis: deps.redis, metrics, logger })
    : undefined;
  // Workers keep the series of collections named here even while they are missing; the set lapses with no scheduler.
  // When Redis fails here the slots still get their turn, and the next publish comes before the set lapses.
  const publishNamed = () =>
    named.publish(namedNames, Math.max(options.catchUpIntervalMs * 4, options.namedMinTtlMs)).catch((error: unknown) =>
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, "could not publish the scheduled collection names"),
    );
  await publishNamed();
  const catchUp = options.catchUpWindowMs > 0 ? await catchUpPass() : schedule.jobs.map(emptyOutcome);
  refreshNextSlots();
  const passTimer = setInterval(() => {
    void publishNamed();
    if (options.catchUpWindowMs > 0) void catchUpPass();
  }, options.catchUpIntervalMs);
  passTimer.unref();

  const tasks: ScheduledTask[] = schedule.jobs.map((entry, index) =>
    cron.schedule(
      entry.cron,
      async (context) => {
        await runSlot(index, slotAtOrBefore(entry.cron, schedule.timezone, context.date), "tick");
      },
      { timezone: schedule.timezone, name: `vk-${index}-${entry.kind}` },
    ),
  );

  let stalenessTimer: NodeJS.Timeout | undefined;
  const staleness = deps.staleness;
  if (staleness && schedule.jobs.some((entry) => entry.kind === "backup")) {
    const since = now();
    const check = () =>
      checkBackupStaleness({ ...staleness, entries: schedule.jobs, chroma, since }, now()).catch((error: unknown) =>
        logger.warn({ reason: error instanceof Error ? error.message : String(error) }, "backup staleness check failed"),
      );
    stalenessTimer = setInterval(check, staleness.intervalMs);
    stalenessTimer.unref();
  }

  logger.info({ source: schedule.source, timezone: schedule.timezone, entries: schedule.jobs.length, ops: ops?.url }, "scheduler started");

  return {
    catchUp,
    metrics,
    ...(ops ? { ops } : {}),
    async stop() {
      clearInterval(stalenessTimer);
      clearInterval(passTimer);
      await Promise.all(tasks.map((task) => task.destroy()));
      await passing;
      await observing;
      await ops?.close();
      logger.info("scheduler stopped");
    },
  };
}
