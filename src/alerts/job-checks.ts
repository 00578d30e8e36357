import type { ProbeResult } from "../jobs/probe.js";
import type { ServedKind } from "../queues/catalogue.js";
import type { Observation } from "./alerter.js";

/** Thresholds when neither the job nor its schedule entry sets one. */
export interface AlertThresholds {
  /** Consecutive failed probes of a collection before an alert. */
  probeAfterFailures: number;
  /** Consecutive final failures of a job kind on a collection before an alert. */
  jobAfterFailures: number;
  /** A probe query slower than this counts as a failure of the `probe-latency` check. */
  probeLatencyMs: number;
}

interface JobData {
  collection?: unknown;
  alertAfterFailures?: unknown;
  latencyThresholdMs?: unknown;
}

const numberOr = (value: unknown, fallback: number) => (typeof value === "number" ? value : fallback);

/** What a completed job says about the checks it belongs to. */
export function completedObservations(kind: ServedKind, data: JobData, result: unknown, t: AlertThresholds): Observation[] {
  const subject = String(data.collection ?? "?");
  if (kind === "probe") {
    const probe = result as ProbeResult;
    const threshold = numberOr(data.alertAfterFailures, t.probeAfterFailures);
    const limit = numberOr(data.latencyThresholdMs, t.probeLatencyMs);
    const slow = probe.queryMs !== null && probe.queryMs > limit;
    return [
      { check: "probe", subject, ok: true, threshold, summary: `${probe.count} records` },
      {
        check: "probe-latency",
        subject,
        ok: !slow,
        threshold,
        summary: `query took ${probe.queryMs ?? 0} ms (limit ${limit} ms)`,
        details: { queryMs: probe.queryMs, limitMs: limit },
      },
    ];
  }
  return [{ check: `job:${kind}`, subject, ok: true, threshold: numberOr(data.alertAfterFailures, t.jobAfterFailures), summary: "succeeded" }];
}

/** What a job that failed its last attempt says. */
export function failedObservations(kind: ServedKind, data: JobData, reason: string, t: AlertThresholds): Observation[] {
  const subject = String(data.collection ?? "?");
  const check = kind === "probe" ? "probe" : `job:${kind}`;
  const threshold = numberOr(data.alertAfterFailures, kind === "probe" ? t.probeAfterFailures : t.jobAfterFailures);
  return [{ check, subject, ok: false, threshold, summary: reason, details: { reason } }];
}
