import { startScheduler, type SchedulerHandle } from "../../scheduler.js";
import { startWorker } from "../../worker.js";
import type { Redis } from "ioredis";
import { createAlerter } from "../alerts/create-alerter.js";
import { DEFAULTS } from "../config/defaults.js";
import type { Config } from "../config/env.js";
import type { Logger } from "../logging.js";
import { redisErrorLog, reportConnectionErrors } from "../queues/connection-errors.js";
import { DASHBOARD_PATH } from "../ops/ops-server.js";
import { redactUrl } from "../redact.js";
import { loadSchedule } from "../scheduling/schedule-file.js";
import { startLocalChroma, type LocalChroma } from "../storage/chroma/local-server.js";
import { keptDashboardPassword } from "./dashboard-password.js";
import { printResult, type OutputOptions } from "./output.js";
import { backupStoreOf, chromaStoreOf, connectQueues, runtimeFor } from "./runtime.js";
import { exitOnSignal, logStrayErrors } from "./signals.js";

/** The scheduler's alerting: backup staleness, and the server-level Chroma check of every probe tick. */
function schedulerAlertsOf(config: Config, redis: Redis, logger: Logger) {
  const alerter = createAlerter(config, redis, logger);
  return {
    staleness: {
      backupStore: backupStoreOf(config),
      alerter,
      maxAgeMs: config.alerts.backupMaxAgeHours * 3_600_000,
      intervalMs: config.alerts.stalenessIntervalMs,
    },
    chromaAlerts: { alerter, afterFailures: config.alerts.probeAfterFailures },
  };
}

/** `worker`: the workers of every job kind and the ops server, until a signal stops them. */
export async function runWorker(options: OutputOptions): Promise<void> {
  const { config, logger } = runtimeFor("daemon");
  logStrayErrors(logger);
  const worker = await startWorker({ config, logger, chroma: await chromaStoreOf(config) });
  exitOnSignal(logger, async () => ((await worker.close()) ? 1 : 0));
  printResult({ role: "worker", ops: worker.ops.url }, options, (r) => `vectorkeeper worker running; ops server at ${r.ops}`);
}

/** `scheduler`: enqueues the schedule's jobs at their cron times, until a signal stops it. */
export async function runScheduler(options: OutputOptions): Promise<void> {
  const { config, logger } = runtimeFor("daemon");
  logStrayErrors(logger);
  const schedule = loadSchedule(config.schedule.file, config.schedule.explicit);
  const { redis, queues } = await connectQueues(config, logger);
  reportConnectionErrors(redisErrorLog(logger), redis, "producer", queues);
  const scheduler = await startScheduler({
    schedule,
    options: config.scheduler,
    redis,
    queues,
    chroma: await chromaStoreOf(config),
    logger,
    ...schedulerAlertsOf(config, redis, logger),
    http: config.http,
  });
  exitOnSignal(logger, async () => {
    await scheduler.stop();
    await queues.close();
    redis.disconnect();
    return 0;
  });
  printResult({ role: "scheduler", schedule: schedule.source, entries: schedule.jobs.length, ops: scheduler.ops?.url }, options, (r) =>
    `vectorkeeper scheduler running ${r.entries} entries from ${r.schedule}; ops server at ${r.ops}`,
  );
}

/** `start`: worker, scheduler and dashboard in one process, with a local Chroma when CHROMA_URL is unset. */
export async function runAll(options: OutputOptions): Promise<void> {
  const { config, logger } = runtimeFor("daemon");
  logStrayErrors(logger);
  const schedule = loadSchedule(config.schedule.file, config.schedule.explicit);
  // Fail on a missing Redis before starting anything else, with the hint of how to get one.
  const probe = await connectQueues(config, logger);
  await probe.queues.close();
  probe.redis.disconnect();

  let local: LocalChroma | undefined;
  if (!config.chroma.url) {
    local = await startLocalChroma({ path: DEFAULTS.localChromaPath, port: config.localChromaPort });
    logger.info({ url: local.url, path: local.path }, "CHROMA_URL is unset: started a local Chroma");
  }
  let keptPassword: string | undefined;
  if (!config.dashboard) {
    keptPassword = keptDashboardPassword(DEFAULTS.dashboardPasswordFile).password;
    config.dashboard = { user: "admin", password: keptPassword };
  }
  const chroma = await chromaStoreOf(config, local?.url);
  let scheduler: SchedulerHandle | undefined;
  const stopLocal = async () => local?.stop();
  try {
    const worker = await startWorker({ config, logger, chroma });
    const { redis, queues } = await connectQueues(config, logger);
    reportConnectionErrors(redisErrorLog(logger), redis, "scheduler", queues);
    scheduler = await startScheduler({
      schedule,
      options: config.scheduler,
      redis,
      queues,
      chroma,
      logger,
      ...schedulerAlertsOf(config, redis, logger),
      // One process, one ops server: the scheduler's series join the worker's /metrics.
      registry: worker.metrics.registry,
    });
    const running = scheduler;
    exitOnSignal(logger, async () => {
      await running.stop();
      await queues.close();
      redis.disconnect();
      const forced = await worker.close();
      await stopLocal();
      return forced ? 1 : 0;
    });
    const summary = {
      role: "start",
      dashboard: `${worker.ops.url}${DASHBOARD_PATH}`,
      dashboardUser: config.dashboard.user,
      ...(keptPassword ? { dashboardPassword: keptPassword, dashboardPasswordFile: DEFAULTS.dashboardPasswordFile } : {}),
      metrics: `${worker.ops.url}/metrics`,
      chroma: chroma.where,
      backups: redactUrl(config.backupUrl),
      schedule: schedule.source,
    };
    printResult(summary, options, (s) =>
      [
        "vectorkeeper is running (Ctrl-C to stop)",
        `  metrics    ${s.metrics}`,
        `  chroma     ${s.chroma}${local ? ` (local, data in ${local.path})` : ""}`,
        `  backups    ${s.backups}`,
        `  schedule   ${s.schedule}`,
        // Last, where it is seen: the dashboard login.
        `  dashboard  ${s.dashboard}  user ${s.dashboardUser}`,
        ...(keptPassword
          ? [`  password   ${keptPassword}  (kept in ${DEFAULTS.dashboardPasswordFile}; set DASHBOARD_USER/DASHBOARD_PASSWORD to choose)`]
          : []),
      ].join("\n"),
    );
  } catch (error) {
    await scheduler?.stop();
    await stopLocal();
    throw error;
  }
}
