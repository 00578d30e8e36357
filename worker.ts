import { Worker, type Job } from "bullmq";
import { DEFAULTS } from "./src/config/defaults.js";
import type { Config } from "./src/config/env.js";
import type { Logger } from "./src/logging.js";
import { redactUrl } from "./src/redact.js";
import { ThrottledErrorLog } from "./src/throttled-log.js";
import type { Observation } from "./src/alerts/alerter.js";
import { createAlerter } from "./src/alerts/create-alerter.js";
import { AlertState } from "./src/alerts/alert-state.js";
import { completedObservations, failedObservations } from "./src/alerts/job-checks.js";
import { GoneCollections } from "./src/ops/forget-gone.js";
import { LastSuccessStore } from "./src/ops/last-success.js";
import { Metrics } from "./src/ops/metrics.js";
import { startOpsServer, type OpsServer } from "./src/ops/ops-server.js";
import { queueName, SERVED_KINDS, type ServedKind } from "./src/queues/catalogue.js";
import { createRedisConnection, maxmemoryPolicy, waitForRedis } from "./src/queues/connection.js";
import { redisErrorLog, reportConnectionErrors } from "./src/queues/connection-errors.js";
import { bullProcessor } from "./src/queues/processor.js";
import { enqueue } from "./src/queues/enqueue.js";
import { QueueSet } from "./src/queues/queue-set.js";
import { RedisLocks } from "./src/queues/locks.js";
import { redisUsualFailures, slotBackoffStrategy } from "./src/queues/slot-retry.js";
import { isVectorkeeperTemporary } from "./src/scheduling/collection-globs.js";
import { NamedCollections } from "./src/scheduling/named-collections.js";
import type { ChromaStore } from "./src/storage/chroma/client.js";
import type { ObjectStore } from "./src/storage/objects/object-store.js";
import { openObjectStore } from "./src/storage/objects/open-object-store.js";

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  chroma: ChromaStore;
  /** Where backups live; the one BACKUP_URL names by default. */
  backupStore?: ObjectStore;
  /** Kinds to serve; all served kinds by default. */
  kinds?: ServedKind[];
}

export interface WorkerHandle {
  ops: OpsServer;
  queues: QueueSet;
  metrics: Metrics;
  /** Settles once last successes are seeded from the backup catalog and gone collections forgotten. */
  seeded: Promise<void>;
  /**
   * Stops taking jobs, lets active ones finish within `shutdownTimeoutMs`, then closes everything.
   * Resolves true when it had to give up on running jobs (they are retried elsewhere once their lock expires).
   */
  close(): Promise<boolean>;
}

/** A failure is final when BullMQ moved the job to failed (finishedOn set), which a backoff strategy can decide early. */
const isFinalFailure = (job: Job, error: Error) =>
  error.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1) || Boolean(job.finishedOn);

/** Workers for every served kind, plus the ops HTTP server. */
export async function startWorker(deps: WorkerDeps): Promise<WorkerHandle> {
  const { config, logger, chroma } = deps;
  const backupStore = deps.backupStore ?? openObjectStore({ url: config.backupUrl, s3: config.s3, keyFile: config.backupKeyFile });
  const producer = createRedisConnection(config.redisUrl, "producer");
  producer.on("error", (err) => logger.debug({ err: err.message }, "redis (producer) connection error"));
  try {
    await waitForRedis(producer, config.redisUrl);
  } catch (error) {
    producer.disconnect();
    throw error;
  }

  const policy = await maxmemoryPolicy(producer).catch(() => undefined);
  if (policy !== "noeviction") {
    logger.warn(
      { maxmemoryPolicy: policy ?? "unknown" },
      "REDIS MISCONFIGURED: maxmemory-policy is not noeviction, so Redis may silently evict queued jobs under memory pressure. " +
        "Set `maxmemory-policy noeviction` in redis.conf (or CONFIG SET maxmemory-policy noeviction).",
    );
  }

  const queues = new QueueSet(producer, config.queuePrefix);
  const lastSuccess = new LastSuccessStore(producer, config.queuePrefix);
  const metrics = new Metrics(queues, lastSuccess);
  const shutdown = new AbortController();
  const workerConnection = createRedisConnection(config.redisUrl, "worker");
  // While Redis is away every connection, queue and worker reports each reconnect attempt: rate-limited, one line each.
  const redisErrors = redisErrorLog(logger);
  reportConnectionErrors(redisErrors, producer, "producer", queues);
  reportConnectionErrors(redisErrors, workerConnection, "worker");
  const workerErrors = new ThrottledErrorLog(logger, "worker", DEFAULTS.logs.repeatIntervalMs);

  const locks = new RedisLocks(producer, config.queuePrefix, config.worker.leaseTtlMs);
  const alertState = new AlertState(producer, config.queuePrefix, config.alerts.stateTtlMs);
  const alerter = createAlerter(config, producer, logger, alertState);
  const observeAll = (observations: Observation[]) => {
    for (const observation of observations) {
      alerter.observe(observation).catch((error: unknown) => logger.error({ err: error }, "alerting failed"));
    }
  };
  const workers = (deps.kinds ?? SERVED_KINDS).map((kind) => {
    const processor = bullProcessor(kind, { queues, chroma, backupStore, locks, logger, shutdownSignal: shutdown.signal });
    const worker = new Worker(queueName(kind), processor, {
      connection: workerConnection,
      prefix: config.queuePrefix,
      concurrency: config.worker.concurrency[kind],
      // The job lock lives as long as the job's lease: a dead worker's job is retried once its lease has lapsed too.
      lockDuration: config.worker.leaseTtlMs,
      stalledInterval: config.worker.leaseTtlMs,
      settings: { backoffStrategy: slotBackoffStrategy(config.scheduler.outageRetryMaxDelayMs, redisUsualFailures(producer)) },
    });
    worker.on("error", (err) => workerErrors.error(err, { kind }));
    worker.on("completed", (job, result) => {
      const seconds = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      metrics.jobCompleted(kind, seconds, job.data?.collection, result);
      const collection: unknown = job.data?.collection;
      if (typeof collection === "string" && !(result as { skipped?: string } | null)?.skipped) {
        lastSuccess.record(kind, collection).catch((error: unknown) => logger.warn({ err: error, kind }, "could not record last success"));
      }
      logger.info({ kind, jobId: job.id, seconds, result }, "job completed");
      observeAll(completedObservations(kind, job.data ?? {}, result, config.alerts));
    });
    worker.on("failed", (job, err) => {
      if (!job) return;
      const final = isFinalFailure(job, err);
      const seconds = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
      const collection = typeof job.data?.collection === "string" ? job.data.collection : undefined;
      metrics.jobFailed(kind, seconds, final, collection);
      logger[final ? "error" : "warn"](
        { kind, jobId: job.id, collection, attempt: job.attemptsMade, final, reason: err.message },
        final ? "job failed" : "job attempt failed; will retry",
      );
      if (final) observeAll(failedObservations(kind, job.data ?? {}, err.message, config.alerts));
    });
    return worker;
  });

  const ops = await startOpsServer({
    http: config.http,
    dashboard: config.dashboard,
    redis: producer,
    chroma,
    queues,
    metrics,
    logger,
  });
  logger.info(
    { redis: redactUrl(config.redisUrl), prefix: config.queuePrefix, chroma: chroma.where, kinds: deps.kinds ?? SERVED_KINDS },
    "worker started",
  );
  if (config.warmOnStart) void warmEveryCollection(queues, chroma, logger);

  const gone = new GoneCollections({ chroma, metrics, alertState, lastSuccess, named: new NamedCollections(producer, config.queuePrefix) });
  // One pass at a time: a Chroma that answers slowly must not stack them up.
  let forgetting: Promise<void> | undefined;
  const forget = () =>
    (forgetting ??= gone
      .forget()
      .then((forgotten) => {
        if (forgotten.length > 0) logger.info({ collections: forgotten }, "forgot the series and alert state of collections that no longer exist");
      })
      .finally(() => (forgetting = undefined)));
  const warnOf = (message: string) => (error: unknown) =>
    logger.warn({ reason: error instanceof Error ? error.message : String(error) }, message);
  // Start-up state from the truth: probe health from the alert state, last successes from the backup catalog.
  const seeded = seedProbeUp(metrics, alertState)
    .catch(warnOf("could not read the probe state for probe_up"))
    .then(() => lastSuccess.seedFromCatalog(backupStore))
    .catch(warnOf("could not read the backup catalog for last successes"))
    .then(forget)
    .catch(warnOf("could not forget gone collections"));
  const forgetTimer = setInterval(() => {
    forget().catch(warnOf("could not forget gone collections"));
  }, config.alerts.forgetIntervalMs);
  forgetTimer.unref();

  let closing: Promise<boolean> | undefined;
  const close = async (): Promise<boolean> => {
    const timeoutMs = config.worker.shutdownTimeoutMs;
    logger.info({ timeoutMs }, "worker shutting down: no new jobs, waiting for active ones");
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(workers.map((w) => w.close())).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    clearInterval(forgetTimer);
    if (!finished) {
      logger.error({ timeoutMs }, "active jobs did not finish within the shutdown limit; abandoning them (they will be retried)");
      shutdown.abort(new Error("worker shutdown time limit reached"));
      await Promise.race([Promise.all(workers.map((w) => w.close(true))), new Promise((r) => setTimeout(r, 2000))]);
    }
    await ops.close();
    await queues.close();
    workerConnection.disconnect();
    producer.disconnect();
    return !finished;
  };

  return {
    ops,
    queues,
    metrics,
    seeded,
    close: () => (closing ??= close()),
  };
}

/** `probe_up` of every collection with probe state in Redis: a probe's failures in a row are 0 exactly when it last passed. */
async function seedProbeUp(metrics: Metrics, alertState: AlertState): Promise<void> {
  for (const { check, subject } of await alertState.subjects()) {
    if (check !== "probe") continue;
    const failures = await alertState.failures(check, subject);
    if (failures !== undefined) metrics.seedProbeUp(subject, failures === 0);
  }
}

/**
 * A starting worker may sit next to a Chroma that just started too: warm every collection. Deduplicated per
 * collection while a warm job waits or runs, so workers starting together warm each collection once.
 */
async function warmEveryCollection(queues: QueueSet, chroma: ChromaStore, logger: Logger): Promise<void> {
  try {
    const names = (await chroma.listCollectionNames()).filter((name) => !isVectorkeeperTemporary(name));
    for (const collection of names) await enqueue(queues, "warm", { collection }, { deduplicationId: `warm-start.${collection}` });
    logger.info({ collections: names.length }, "warming every collection after start");
  } catch (error) {
    logger.warn({ reason: error instanceof Error ? error.message : String(error) }, "could not enqueue start-up warming");
  }
}
