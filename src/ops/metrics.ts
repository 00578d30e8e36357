import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { BackupResult } from "../jobs/backup.js";
import type { DrillResult } from "../jobs/drill.js";
import type { ProbeResult } from "../jobs/probe.js";
import type { RecallResult } from "../jobs/recall.js";
import type { WarmResult } from "../jobs/warm.js";
import { SERVED_KINDS, type ServedKind } from "../queues/catalogue.js";
import type { QueueSet } from "../queues/queue-set.js";
import type { LastSuccessStore } from "./last-success.js";
import { registerProcessMetrics } from "./process-metrics.js";

const JOB_STATES = ["waiting", "active", "delayed", "completed", "failed", "prioritized", "waiting-children"] as const;

/**
 * Prometheus metrics of one process: one `vectorkeeper_` prefix, base units (seconds), `_total` on counters.
 * Queue depths are read from Redis at scrape time, so every replica reports the same shared queues; job outcomes and
 * probe figures are those this process observed; last successes are read from Redis at scrape time, so they survive
 * restarts and agree across replicas. Counters exist at 0 from the start, so `increase()` sees the first failure.
 */
export class Metrics {
  readonly registry = new Registry();
  /** Every collection some per-collection series names, so the series of one that no longer exists can be removed. */
  private readonly seen = new Set<string>();
  private readonly perCollectionSeries: (Gauge<"collection"> | Counter<"collection">)[] = [];

  private perCollection(name: string, help: string): Gauge<"collection"> {
    const gauge = new Gauge({ name, help, labelNames: ["collection"] as const, registers: [this.registry] });
    this.perCollectionSeries.push(gauge);
    return gauge;
  }

  private readonly jobDuration = new Histogram({
    name: "vectorkeeper_job_duration_seconds",
    help: "Wall time of jobs run by this process, by kind and outcome",
    labelNames: ["kind", "outcome"] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  private readonly completed = new Counter({
    name: "vectorkeeper_jobs_completed_total",
    help: "Jobs completed by this process, by kind",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  private readonly failures = new Counter({
    name: "vectorkeeper_job_failures_total",
    help: "Failed job attempts in this process, by kind and whether it was the last attempt",
    labelNames: ["kind", "final"] as const,
    registers: [this.registry],
  });
  private readonly probeUp = this.perCollection("vectorkeeper_probe_up", "1 when the last probe of a collection succeeded, 0 when it failed");
  private readonly probeQuery = this.perCollection("vectorkeeper_probe_query_latency_seconds", "Latency of the last probe's nearest-neighbour query, by collection");
  private readonly probeHeartbeat = this.perCollection("vectorkeeper_probe_heartbeat_latency_seconds", "Latency of the last probe's heartbeat to Chroma, by collection");
  private readonly records = this.perCollection("vectorkeeper_collection_records", "Records in a collection at its last probe");
  private readonly backupBytes = new Counter({
    name: "vectorkeeper_backup_bytes_total",
    help: "Bytes written to the backup store by backups run here",
    labelNames: ["collection"] as const,
    registers: [this.registry],
  });
  private readonly backupRecords = new Counter({
    name: "vectorkeeper_backup_records_total",
    help: "Records backed up by backups run here",
    labelNames: ["collection"] as const,
    registers: [this.registry],
  });
  private readonly warmCold = this.perCollection("vectorkeeper_warm_cold_latency_seconds", "Latency of the first (cold) query of the last warm job, by collection");
  private readonly warmP50 = this.perCollection("vectorkeeper_warm_p50_latency_seconds", "Median warm query latency of the last warm job, by collection");
  private readonly warmP95 = this.perCollection("vectorkeeper_warm_p95_latency_seconds", "95th percentile warm query latency of the last warm job, by collection");
  private readonly recallAtK = this.perCollection("vectorkeeper_recall_at_k", "Recall@k of a collection's index against exact search at its last recall job (0-1; k is the job's, 10 by default)");
  private readonly drillRestore = this.perCollection("vectorkeeper_drill_restore_seconds", "How long the restore of the last successful restore drill of a collection took: the recovery time to expect");
  private readonly lastProbe = this.perCollection("vectorkeeper_probe_last_timestamp_seconds", "When a collection was last probed (successfully or not), Unix time");

  constructor(queues: QueueSet, lastSuccess: LastSuccessStore) {
    registerProcessMetrics(this.registry);
    this.perCollectionSeries.push(this.backupBytes, this.backupRecords);
    for (const kind of SERVED_KINDS) {
      this.completed.inc({ kind }, 0);
      this.failures.inc({ kind, final: "true" }, 0);
      this.failures.inc({ kind, final: "false" }, 0);
    }
    new Gauge({
      name: "vectorkeeper_last_success_timestamp_seconds",
      help: "When a job kind last succeeded on a collection (worker, CLI run or backup catalog), Unix time: alert when it is too old",
      labelNames: ["kind", "collection"] as const,
      registers: [this.registry],
      async collect() {
        // Redis unreachable: keep the last values rather than fail the scrape or drop the series.
        const entries = await lastSuccess.all().catch(() => undefined);
        if (!entries) return;
        this.reset();
        for (const { kind, collection, at } of entries) this.set({ kind, collection }, at);
      },
    });
    new Gauge({
      name: "vectorkeeper_drill_last_success_timestamp_seconds",
      help: "When a restore drill of a collection last succeeded, Unix time (from the shared last-success record): alert when it is too old",
      labelNames: ["collection"] as const,
      registers: [this.registry],
      async collect() {
        const entries = await lastSuccess.all().catch(() => undefined);
        if (!entries) return;
        this.reset();
        for (const { kind, collection, at } of entries) if (kind === "drill") this.set({ collection }, at);
      },
    });
    new Gauge({
      name: "vectorkeeper_jobs",
      help: "Jobs in each queue by state, read from Redis at scrape time",
      labelNames: ["queue", "state"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        await Promise.all(
          queues.all().map(async (queue) => {
            const counts = await queue.getJobCounts(...JOB_STATES);
            for (const state of JOB_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
          }),
        );
      },
    });
  }

  jobCompleted(kind: ServedKind, seconds: number, collection: unknown, result: unknown): void {
    this.jobDuration.observe({ kind, outcome: "completed" }, seconds);
    this.completed.inc({ kind });
    if (kind === "probe") this.probeSucceeded(result as ProbeResult);
    if (kind === "backup") {
      const backup = result as BackupResult;
      if (!backup.skipped) {
        this.seen.add(backup.collection);
        // What the run uploaded: with dedupe, chunks shared with earlier backups are not written again.
        this.backupBytes.inc({ collection: backup.collection }, backup.uploadedBytes);
        this.backupRecords.inc({ collection: backup.collection }, backup.records);
      }
    }
    if (kind === "recall") {
      const measured = result as RecallResult;
      this.seen.add(measured.collection);
      this.recallAtK.set({ collection: measured.collection }, measured.recall);
    }
    if (kind === "drill") {
      const drilled = result as DrillResult;
      this.seen.add(drilled.collection);
      this.drillRestore.set({ collection: drilled.collection }, drilled.restoreSeconds);
    }
    if (kind === "warm") {
      const warm = result as WarmResult;
      this.seen.add(warm.collection);
      const set = (gauge: Gauge<"collection">, ms: number | null) =>
        ms === null ? gauge.remove({ collection: warm.collection }) : gauge.set({ collection: warm.collection }, ms / 1000);
      set(this.warmCold, warm.coldMs);
      set(this.warmP50, warm.warmP50Ms);
      set(this.warmP95, warm.warmP95Ms);
    }
  }

  jobFailed(kind: ServedKind, seconds: number, final: boolean, collection: string | undefined): void {
    this.jobDuration.observe({ kind, outcome: "failed" }, seconds);
    this.failures.inc({ kind, final: String(final) });
    if (kind === "probe" && collection) {
      this.seen.add(collection);
      this.probeUp.set({ collection }, 0);
      this.lastProbe.set({ collection }, Date.now() / 1000);
    }
  }

  private probeSucceeded(result: ProbeResult): void {
    const collection = result.collection;
    this.seen.add(collection);
    this.probeUp.set({ collection }, 1);
    this.records.set({ collection }, result.count);
    this.probeHeartbeat.set({ collection }, result.heartbeatMs / 1000);
    this.lastProbe.set({ collection }, Date.parse(result.checkedAt) / 1000);
    if (result.queryMs === null) this.probeQuery.remove({ collection });
    else this.probeQuery.set({ collection }, result.queryMs / 1000);
  }

  /**
   * Seeds a collection's `probe_up` from the outcome of its last probe anywhere (its alert state in Redis), so a
   * restarted worker exports the same health until it probes again, rather than nothing.
   */
  seedProbeUp(collection: string, up: boolean): void {
    if (this.seen.has(collection)) return;
    this.seen.add(collection);
    this.probeUp.set({ collection }, up ? 1 : 0);
  }

  /** Collections named by some per-collection series of this process. */
  collections(): string[] {
    return [...this.seen];
  }

  /** Removes every series of these collections (they no longer exist). */
  forget(collections: Iterable<string>): void {
    for (const collection of collections) {
      for (const series of this.perCollectionSeries) series.remove({ collection });
      this.seen.delete(collection);
    }
  }
}
