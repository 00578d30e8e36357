import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Collection } from "chromadb";
import { DEFAULTS, type PacingOptions } from "../../config/defaults.js";
import type { Logger } from "../../logging.js";
import { median } from "../../stats.js";
import type { ChromaStore } from "./client.js";
import { credentialsRefused, isRefusal } from "./credentials.js";
import { LatencyProbe, type ProbeMessage } from "./latency-probe.js";

/** How fast one maintenance job may go (its payload's pacing fields). */
export interface Pace {
  /** Records a second at most, in each pass of the job (read, copy, delete). @defaultValue no limit */
  maxRecordsPerSecond?: number | undefined;
  /** Slow down while the collection's query latency rises (see PacingOptions). */
  adaptive: boolean;
  /** Adaptive: the multiple of the idle query latency above which the job slows down. */
  latencyFactor: number;
}

/** What pacing did, in a job's result. */
export interface PacingReport {
  maxRecordsPerSecond: number | null;
  adaptive: boolean;
  /** Median latency of the probe query before the job started (adaptive; null without a record to query with). */
  idleQueryMs: number | null;
  /** Probe queries run while the job ran. */
  probes: number;
  /** Times the job slowed down because the probe query was slower than `latencyFactor` × idle. */
  slowdowns: number;
  /** The slowest rate adaptive pacing set, records a second (null: it never slowed down). */
  lowestRecordsPerSecond: number | null;
  /** Time the job waited to keep to its rate. */
  waitedMs: number;
}

const round = (n: number, places = 3) => Math.round(n * 10 ** places) / 10 ** places;

/** An embedding stored in the collection (so of its dimension), and how many neighbours a query of it can ask. */
async function probeEmbedding(collection: Collection, results: number): Promise<{ embedding: number[]; nResults: number } | undefined> {
  const count = await collection.count();
  if (count === 0) return undefined;
  const page = await collection.get({ limit: 1, include: ["embeddings"] });
  const embedding = page.embeddings[0];
  return embedding ? { embedding, nResults: Math.min(results, count) } : undefined;
}

/**
 * Keeps a job to its pace: `take(n)` before each page of n records waits as long as the rate asks. The rate is
 * `maxRecordsPerSecond` (or none); adaptive pacing runs a probe query every `probeIntervalMs` on a thread of its own and,
 * AIMD-style, halves the rate while the median of the latest `probeWindow` probes is above `latencyFactor` × the idle
 * latency measured before the job began, and raises it by a share of the fastest rate seen while it is below, back
 * to full speed. Pages wait; requests in flight are never held, so a slowdown shows within a page or two.
 */
export class Pacer {
  /** Records a second now (Infinity: no limit). */
  private rate: number;
  private readonly ceiling: number;
  /** When the next page may go: pages are spaced by their records / rate, with no credit saved while the job is slower. */
  private next = 0;
  private taken = 0;
  /**
   * Records taken by the time of each of the latest probes (from the job's first page on): the rate the job went at is
   * measured over `probeWindow` probes, since pages read ahead arrive in bursts that one probe interval would mistake
   * for speed.
   */
  private readonly ticks: { at: number; taken: number }[] = [];
  /** The fastest rate the job reached, records a second. */
  private peak = 0;
  private readonly recent: number[] = [];
  private throttled = false;
  private lastProbeMs: number | undefined;
  private readonly tally = { probes: 0, slowdowns: 0, lowest: Number.POSITIVE_INFINITY, waitedMs: 0 };

  private constructor(
    private readonly pace: Pace,
    private readonly logger: Logger,
    private readonly tuning: PacingOptions,
    private readonly idleMs: number | undefined,
    private readonly probe?: LatencyProbe,
  ) {
    this.ceiling = pace.maxRecordsPerSecond ?? Number.POSITIVE_INFINITY;
    this.rate = this.ceiling;
  }

  /**
   * A pacer for a job on `collection`. Adaptive pacing first measures the idle latency (nothing to measure in an
   * empty or missing collection: then only the rate limit applies), then probes until `close`.
   */
  static async start(
    pace: Pace,
    target: { chroma: ChromaStore; collection: Collection } | undefined,
    logger: Logger,
    tuning: PacingOptions = DEFAULTS.pacing,
  ): Promise<Pacer> {
    if (!pace.adaptive || !target) return new Pacer(pace, logger, tuning, undefined);
    const { chroma, collection } = target;
    const query = await probeEmbedding(collection, tuning.probeResults);
    if (!query) {
      logger.info({ collection: collection.name }, "adaptive pacing: nothing to query in the collection, so only the rate limit applies");
      return new Pacer(pace, logger, tuning, undefined);
    }
    const probe = new LatencyProbe(chroma.queryRequest(collection, query.embedding, query.nResults, tuning.probeTimeoutMs));
    // The first query warms the path (connection, index pages); the rest measure, spaced as the job's probes will be,
    // so the reference is taken the way it is compared (back to back, each query finds the last one's caches warm).
    await probe.measure(1);
    const idle = await probe.measure(tuning.idleProbes, tuning.idleSpacingMs);
    if (idle.length === 0) {
      await probe.close();
      // Refused credentials say which variables to fix, as every other refused request does; the job itself goes on.
      const status = probe.firstStatus;
      const reason = status !== undefined && isRefusal(status) ? credentialsRefused(chroma.where, status).message : probe.firstError;
      logger.warn({ collection: collection.name, reason }, "adaptive pacing: the probe query failed, so only the rate limit applies");
      return new Pacer(pace, logger, tuning, undefined);
    }
    const pacer = new Pacer(pace, logger, tuning, median(idle), probe);
    logger.info({ collection: collection.name, idleQueryMs: round(median(idle)), latencyFactor: pace.latencyFactor }, "adaptive pacing: idle query latency measured");
    probe.watch(tuning.probeIntervalMs, (message) => pacer.heard(message));
    return pacer;
  }

  /** Counts `records` through and waits as long as the current rate asks (not at all without a limit). */
  async take(records: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    if (this.ticks.length === 0) this.ticks.push({ at: now, taken: 0 });
    this.taken += records;
    if (!Number.isFinite(this.rate)) {
      this.next = now;
      return;
    }
    const start = Math.max(this.next, now);
    this.next = start + (records / this.rate) * 1000;
    if (start > now) {
      this.tally.waitedMs += start - now;
      await sleep(start - now, undefined, signal ? { signal } : {});
    }
  }

  /** For a progress line: the rate the job keeps to, and why, while it is held back. */
  get note(): string | undefined {
    if (this.throttled) {
      return `throttled to ${Math.round(this.rate)} records/s: query ${round(this.lastProbeMs ?? 0, 1)} ms, idle ${round(this.idleMs ?? 0, 1)} ms`;
    }
    return Number.isFinite(this.rate) ? `limited to ${Math.round(this.rate)} records/s` : undefined;
  }

  report(): PacingReport {
    return {
      maxRecordsPerSecond: this.pace.maxRecordsPerSecond ?? null,
      adaptive: this.pace.adaptive,
      idleQueryMs: this.idleMs === undefined ? null : round(this.idleMs),
      probes: this.tally.probes,
      slowdowns: this.tally.slowdowns,
      lowestRecordsPerSecond: Number.isFinite(this.tally.lowest) ? Math.round(this.tally.lowest) : null,
      waitedMs: Math.round(this.tally.waitedMs),
    };
  }

  /** Stops the probes. */
  close(): void {
    void this.probe?.close();
  }

  /** A probe's answer. A failed probe is no measurement (the job's own requests report a server gone), unless it timed out. */
  private heard(message: ProbeMessage): void {
    if (message.error !== undefined && message.ms < this.tuning.probeTimeoutMs) {
      this.logger.debug({ reason: message.error }, "adaptive pacing: probe query failed");
      return;
    }
    this.tally.probes++;
    this.lastProbeMs = message.ms;
    this.adjust(message.ms);
  }

  private adjust(ms: number): void {
    this.recent.push(ms);
    if (this.recent.length > this.tuning.probeWindow) this.recent.shift();
    if (this.ticks.length === 0) return;
    const now = performance.now();
    this.ticks.push({ at: now, taken: this.taken });
    if (this.ticks.length > this.tuning.probeWindow + 1) this.ticks.shift();
    const since = this.ticks[0]!;
    const observed = now > since.at ? ((this.taken - since.taken) / (now - since.at)) * 1000 : 0;
    // Also while throttled: a peak caught early on a busy machine would otherwise pin the floor and the step too low.
    if (this.ticks.length > this.tuning.probeWindow) this.peak = Math.max(this.peak, observed);
    // A judgement needs a full window: one slow answer on a busy machine is not a trend.
    if (this.recent.length < this.tuning.probeWindow) return;
    const level = median(this.recent);
    const limit = this.pace.latencyFactor * this.idleMs!;
    const fastest = Math.min(this.ceiling, Math.max(this.peak, observed));
    if (level > limit) {
      // From the rate the job really went at: a limit it never reached slows nothing.
      const from = Number.isFinite(this.rate) ? Math.min(this.rate, observed > 0 ? observed : this.rate) : observed;
      if (!(from > 0)) return;
      const rate = Math.max(this.tuning.floorShare * fastest, from * this.tuning.slowdown, 1);
      if (!this.throttled) {
        this.logger.info({ queryMs: round(level), idleQueryMs: round(this.idleMs!), recordsPerSecond: Math.round(rate) }, "adaptive pacing: queries slowed down, throttling");
      }
      this.throttled = true;
      this.rate = rate;
      // The next slowdown waits for probes taken at this rate (the window refills), as AIMD waits a round trip.
      this.recent.splice(0, this.recent.length - 1);
      this.ticks.splice(0, this.ticks.length - 1);
      this.tally.slowdowns++;
      this.tally.lowest = Math.min(this.tally.lowest, rate);
    } else if (this.throttled) {
      this.rate += this.tuning.speedupShare * fastest;
      if (this.rate >= fastest) {
        this.rate = this.ceiling;
        this.throttled = false;
        this.logger.info({ queryMs: round(level), idleQueryMs: round(this.idleMs!) }, "adaptive pacing: queries back to normal, full speed");
      }
    }
  }
}
