import type { JobKind } from "../queues/kinds.js";
import type { LocalChromaServer } from "../storage/chroma/local-binding.js";

/** How workers take and give back jobs. */
export interface WorkerOptions {
  /**
   * Jobs of one kind that one worker process runs at the same time (env `VK_CONCURRENCY`, e.g. `probe=4,backup=1`).
   * @defaultValue 1 for every kind except `probe` (4) and `warm` (2)
   */
  concurrency: Record<JobKind, number>;
  /**
   * On SIGTERM/SIGINT, how long active jobs may run before the worker gives up on them and exits non-zero
   * (env `VK_SHUTDOWN_TIMEOUT_MS`).
   * @defaultValue 30000
   */
  shutdownTimeoutMs: number;
  /**
   * Lifetime of a lease (one backup of a collection at a time, …) after its holder stops renewing it, and of BullMQ's
   * lock on an active job: the two agree, so a dead worker's job is handed on when its lease lapses, not before and
   * not long after (env `VK_LEASE_TTL_MS`). Renewed every third of it while held.
   * @defaultValue 30000
   */
  leaseTtlMs: number;
}

/** How the scheduler turns cron slots into jobs. */
export interface SchedulerOptions {
  /**
   * A slot missed while no scheduler ran is enqueued once at start if it is at most this old
   * (env `VK_CATCHUP_WINDOW_SECONDS`; 0 turns catch-up off).
   * @defaultValue 3600
   */
  catchUpWindowMs: number;
  /**
   * How long a slot's claim stays in Redis, so a scheduler that starts late never enqueues the same slot twice: at
   * least twice the catch-up window, and no longer, since a per-minute probe claims a slot a minute per collection.
   * @defaultValue 7200000 (two hours)
   */
  slotClaimTtlMs: number;
  /**
   * How often the scheduler looks again at each entry's latest slot inside the catch-up window, and retries slots
   * it could not enqueue (Redis unreachable), so a failed tick is enqueued once Redis answers, not lost.
   * @defaultValue 15000
   */
  catchUpIntervalMs: number;
  /**
   * A scheduled job that cannot reach Chroma keeps retrying until the entry's next slot, and at least this long after
   * its own slot, so an outage of minutes still yields that night's backup.
   * @defaultValue 3600000 (an hour)
   */
  slotUsefulMinMs: number;
  /** Longest wait between retries of a scheduled job while Chroma is unreachable. @defaultValue 60000 */
  outageRetryMaxDelayMs: number;
  /**
   * How long the collections an entry's globs matched are remembered in Redis, so a slot meeting a Chroma outage
   * still gets their jobs. @defaultValue 604800000 (7 days)
   */
  globMemoryMs: number;
  /** How long listing Chroma's collections for a slot may take before Chroma counts as down for it. @defaultValue 10000 */
  listTimeoutMs: number;
  /**
   * The shortest lifetime of the published set of literally named collections (at least four catch-up intervals),
   * so it lapses only when no scheduler runs. @defaultValue 600000 (10 minutes)
   */
  namedMinTtlMs: number;
}

/** Retention and retry of queued jobs (applied to every kind unless its catalogue entry overrides them). */
export interface JobDefaults {
  /** Attempts before a job counts as failed. @defaultValue 3 */
  attempts: number;
  /** First retry delay; doubles on each attempt (exponential backoff). @defaultValue 10000 */
  backoffMs: number;
  /** Completed jobs kept: at most this many per queue ... @defaultValue 1000 */
  keepCompleted: number;
  /** ... and none older than this. @defaultValue 86400 (one day) */
  keepCompletedSeconds: number;
  /** Failed jobs kept per queue, so failures can be studied. @defaultValue 5000 */
  keepFailed: number;
  /** ... and none older than this. @defaultValue 604800 (one week) */
  keepFailedSeconds: number;
}

/** How often jobs report progress (to BullMQ under a worker, to the progress line under the CLI). */
export interface ProgressOptions {
  /**
   * A job's progress is passed on at most once per this interval; the latest value goes out when it ends, and at once
   * when the job completes its total, starts another unit of work or changes its note. Jobs report per chunk or page:
   * unthrottled, a restore of a deduplicated backup of 100,000 records made about 33,000 Redis calls for its progress.
   * @defaultValue 500
   */
  intervalMs: number;
}

/** How backups read, chunk and store a collection (each can be set per job; see the backup payload). */
export interface BackupOptions {
  /** Records per Chroma `get` page. @defaultValue 500 */
  pageSize: number;
  /**
   * Pages requested ahead of the one being written (0: one after another). Chroma serves a request on about one core,
   * so with two in flight it keeps working while vectorkeeper encodes; each adds a page to the memory a backup holds.
   * @defaultValue 2
   */
  readAhead: number;
  /** Chunks downloaded ahead of the one being checked or restored (restore, verify). @defaultValue 2 */
  chunkReadAhead: number;
  /** Records per chunk at most. @defaultValue 2000 */
  chunkRecords: number;
  /**
   * Uncompressed bytes per chunk at most (the memory a backup holds is about two chunks): 2000 records of 384
   * dimensions fit; 1536-dim chunks hold about 650, so a backup stays within 200 MB at any width. @defaultValue 4194304 (4 MiB)
   */
  chunkBytes: number;
  /** Chunk compression; `zstd` needs a Node.js whose zlib has it. @defaultValue "gzip" */
  compression: "gzip" | "zstd" | "none";
  /** Prune deletes leftovers of interrupted backups only once untouched this long, so a running backup is safe. @defaultValue 24 */
  leftoverGraceHours: number;
  /**
   * Store chunks once per collection under their content's hash, in packs (format 4), and reuse them across backups,
   * instead of a full copy per backup (format 2). @defaultValue false
   */
  dedupe: boolean;
  /**
   * With dedupe, a chunk ends after a record whose id hashes to 0 modulo this: the mean chunk in records. Small, as a
   * change re-uploads its whole chunk (1% of records changed at random touch about 10% of 6-record chunks).
   * @defaultValue 6
   */
  dedupeMeanRecords: number;
  /** With dedupe, records per chunk at most (bounds the chunks of ids that never hash to a boundary). @defaultValue 32 */
  dedupeMaxRecords: number;
  /** With dedupe, chunks being encoded and compressed at once. @defaultValue 8 */
  dedupeEncoders: number;
  /**
   * With dedupe, chunk reads (format 3) or pack range reads (format 4) running ahead of the chunk being checked or
   * restored. @defaultValue 16
   */
  dedupeReadAhead: number;
  /**
   * With dedupe, a pack is uploaded once its chunks reach this many bytes: a few MiB, so a backup writes about as many
   * objects as a full copy does, while a pack that holds one changed chunk of many stays cheap to keep.
   * @defaultValue 4194304 (4 MiB)
   */
  packBytes: number;
  /** With dedupe, packs uploading at once (each held in memory until it is stored). @defaultValue 2 */
  packUploads: number;
  /** Format 4 restores and verifies read neighbouring chunks of a pack with one range request of at most this. @defaultValue 1048576 (1 MiB) */
  packReadBytes: number;
  /** ... reading through a gap (chunks no longer listed) of at most this between them. @defaultValue 65536 */
  packReadGapBytes: number;
  /**
   * How long a process that set up an encrypted store's header waits before reading it back and using whichever
   * header the store kept: longer than a listing and a write take, so processes setting up one store at once all
   * read back after the last write and agree on one key. Paid once per store, by its first backups. @defaultValue 1000
   */
  headerSettleMs: number;
}

/**
 * How maintenance jobs (backup, archive, expire, drill, reindex) spare the queries of the collection they work on: a
 * rate limit (`maxRecordsPerSecond`, none by default) and adaptive pacing, which measures the collection's query
 * latency itself with a probe query (a stored embedding of the collection, so its dimension) before the job starts
 * (idle) and while it runs, and slows down while that latency stays above `latencyFactor` times idle (each can be set
 * per job or schedule entry, except the tuning below).
 */
export interface PacingOptions {
  /** Adaptive pacing unless a job says otherwise. @defaultValue false */
  adaptive: boolean;
  /** Slow down while the probe query takes more than this multiple of its idle latency. @defaultValue 1.3 */
  latencyFactor: number;
  /** Pause between one probe query's answer and the next probe while the job runs. @defaultValue 250 */
  probeIntervalMs: number;
  /** Probe queries run before the job starts (after one that warms the path); their median is the idle latency. @defaultValue 15 */
  idleProbes: number;
  /** Pause between one idle probe's answer and the next (not back to back: each would find the last one's caches warm). @defaultValue 100 */
  idleSpacingMs: number;

  /** The latency compared with the limit is the median of this many latest probes, so one slow answer is not a trend. @defaultValue 3 */
  probeWindow: number;
  /** Each slowdown multiplies the rate by this (the multiplicative decrease of AIMD). @defaultValue 0.5 */
  slowdown: number;
  /** Each probe within the limit raises the rate by this share of the fastest rate seen (the additive increase). @defaultValue 0.1 */
  speedupShare: number;
  /**
   * The slowest adaptive pacing goes, as a share of the fastest rate seen (or of `maxRecordsPerSecond`), so a collection
   * whose queries are slow for other reasons still gets its maintenance. @defaultValue 0.1
   */
  floorShare: number;
  /** Neighbours the probe query asks for. @defaultValue 10 */
  probeResults: number;
  /** A probe query that takes longer is abandoned, and counts as that slow. @defaultValue 10000 */
  probeTimeoutMs: number;
  /**
   * Adaptive: the nice value (1-19; 0 leaves it) the job's threads (decoding pages, encoding, compressing, hashing)
   * run at, so on a busy host the CPU goes to the host's work first; the probe's thread keeps its priority, so it
   * measures the server, not the job's own niceness. A non-root process cannot raise its priority back, so only a
   * process that runs its own job (`vectorkeeper run`) lowers it, for good; a worker keeps its own. Chroma's threads,
   * the other side of the contention, are not the job's to lower. Per job: `nice` / `--nice`. @defaultValue 0
   */
  nice: number;
  /**
   * Records per Chroma `get` page of a paced backup (adaptive or `maxRecordsPerSecond`) unless its payload sets
   * `pageSize`. Chroma answers a page on one thread, and a query that meets it waits: in the maintenance bench (2
   * cores), at 10% of full speed pages of 100 left queries' p95 at 0.98–1.58× idle against 1.50–1.90× for pages of 500;
   * at 40% one round gave 1.46× against 2.01×, two more were within the noise. A paced job is held below the speed
   * where the page size matters. @defaultValue 100
   */
  pageSize: number;
  /** Pages a paced backup or archive requests ahead unless its payload sets `readAhead`: none, for the same reason. @defaultValue 0 */
  readAhead: number;
}

/** How whole collections are read (backup, archive, lint, warm's samples, expire's audit). */
export interface ReadOptions {
  /**
   * Ids listed per request before their records are fetched by id. Local Chroma answers `get` with an offset by
   * sorting and skipping every earlier row, so whole records are never paged that way; bare ids in large windows are.
   * @defaultValue 50000
   */
  idWindow: number;
  /**
   * Each id window starts this many ids before the previous one ended (ids already listed are dropped), so as many
   * records deleted meanwhile in front of it shift nothing out of the listing. @defaultValue 1000
   */
  idOverlap: number;
  /**
   * Embedding values fetched per page at most: a page of wide embeddings holds fewer records (500 at 384 dimensions,
   * 125 at 1536), so the pages in flight take the same memory whatever the width. @defaultValue 192000
   */
  pageValues: number;
}

/** The limits vectorkeeper keeps to when it talks to Chroma. */
export interface ChromaRequestOptions {
  /**
   * Request-body bytes one write sends at most, besides the server's `max_batch_size` records (env
   * `VK_CHROMA_MAX_REQUEST_BYTES`): Chroma refuses bodies over 40 MiB with 413, which 5,461 records of 1536 dimensions
   * exceed. Lower it behind a proxy with a smaller limit.
   * @defaultValue 41943040 (40 MiB)
   */
  maxRequestBytes: number;
}

/** Expiry and archival (each can be set per job or schedule entry). */
export interface LifecycleJobOptions {
  /** Metadata field holding the expiry time, epoch milliseconds. @defaultValue "_expires_at" */
  expiresField: string;
  /** Metadata field holding the creation time, epoch milliseconds. @defaultValue "_created_at" */
  createdField: string;
  /** Records archived per batch (fetched whole, copied, confirmed, deleted). @defaultValue 1000 */
  batchSize: number;
  /** Ids expired per batch, at most the server's maximum batch size. @defaultValue 5000 */
  expireBatchSize: number;
  /** Archive target collection; `{name}` is the source's name, `object-store` the backup store. @defaultValue "{name}_archive" */
  archiveTarget: string;
  /** Sample ids reported for each problem found. @defaultValue 5 */
  sampleIds: number;
  /** Records per page when lint reads a collection. @defaultValue 1000 */
  lintPageSize: number;
  /** Records per page (metadata only) when expire audits a collection for fields that are not numbers. @defaultValue 5000 */
  auditPageSize: number;
  /**
   * Expire's audit reads every record's metadata on every run, where `maxRecordsPerSecond` is set with its deletes in
   * mind: each audited record counts as this share of one against the limit, so a gentle delete rate does not stretch
   * the audit of a large collection past the next run (500/s would audit 1M records in 33 minutes). @defaultValue 0.1
   */
  auditPaceShare: number;
}

/** Index warming (each can be set per job or schedule entry). */
export interface WarmOptions {
  /** Real embeddings sampled, spread over the whole collection, to query with. @defaultValue 20 */
  samples: number;
  /** Neighbours asked for per query. @defaultValue 10 */
  nResults: number;
  /** Stop when this many latencies in a row lie within `settleTolerance` of each other. @defaultValue 3 */
  settleWindow: number;
  /** Relative spread that counts as settled (0.1: the slowest is at most 10% above the fastest). @defaultValue 0.1 */
  settleTolerance: number;
  /** Time budget of one warm job. @defaultValue 10000 */
  budgetMs: number;
  /** Queries at most. @defaultValue 200 */
  maxQueries: number;
}

/** Measured recall (recall and tune jobs; each can be set per job or schedule entry). */
export interface RecallOptions {
  /** Neighbours compared per query: recall@k. @defaultValue 10 */
  k: number;
  /** Queries drawn at random from the collection. @defaultValue 100 */
  queries: number;
  /**
   * Queries searched exactly in one read of the collection: the collection is read once per batch, and a batch holds
   * its queries' embeddings and k neighbours each. @defaultValue 1000
   */
  queryBatch: number;
  /** Records per page of the read (embeddings only). @defaultValue 1000 */
  pageSize: number;
  /** Pages requested ahead of the one being searched. @defaultValue 2 */
  readAhead: number;
  /** ef_search values `tune` tries when none are given. @defaultValue [10, 20, 40, 80, 160] */
  efValues: readonly number[];
}

/** Restore drills. */
export interface DrillOptions {
  /** Records compared with the backup and the source, drawn from random chunks. @defaultValue 100 */
  sampleRecords: number;
  /** Chunks the sample is drawn from. @defaultValue 5 */
  sampleChunks: number;
}

/** Reindexing (rebuilding a collection's index with new settings, swapped in under its name). */
export interface ReindexOptions {
  /**
   * Catch-up passes before the swap, and reconcile passes after it, at most: each reads the collection once and carries
   * over what changed since the pass before; they stop at the first that finds nothing. @defaultValue 5
   */
  maxPasses: number;
  /**
   * Reconcile passes go on until one that found nothing started at least this long after the swap: a write a client
   * sent to the replaced collection just before the swap lands within it. @defaultValue 2000
   */
  reconcileGraceMs: number;
  /** How long the replaced collection is kept aside for `--rollback` before a later reindex deletes it. @defaultValue 72 */
  keepOldHours: number;
  /** Records per page of the copy's and the passes' reads. @defaultValue 500 */
  pageSize: number;
  /** Pages requested ahead of the one being written. @defaultValue 2 */
  readAhead: number;
  /**
   * Ids of records gone from the source that a pass collects from one listing of the target before it deletes them
   * (it lists again for more): bounds the memory of a pass that finds many gone. @defaultValue 100000
   */
  unseenBatch: number;
}

/** When alerts fire and where they go (besides the log, always). */
export interface AlertOptions {
  /** Consecutive failed probes of a collection before an alert (env `VK_ALERT_PROBE_FAILURES`). @defaultValue 3 */
  probeAfterFailures: number;
  /** Consecutive final failures of a job kind on a collection before an alert (env `VK_ALERT_JOB_FAILURES`). @defaultValue 1 */
  jobAfterFailures: number;
  /** A probe query slower than this fails the probe-latency check (env `VK_ALERT_PROBE_LATENCY_MS`). @defaultValue 1000 */
  probeLatencyMs: number;
  /** A collection with a backup schedule and no complete backup this recent is stale (env `VK_BACKUP_MAX_AGE_HOURS`). @defaultValue 26 */
  backupMaxAgeHours: number;
  /** How often the scheduler checks backup staleness. @defaultValue 600000 (10 minutes) */
  stalenessIntervalMs: number;
  /** How long a webhook POST may take. @defaultValue 5000 */
  webhookTimeoutMs: number;
  /** Attempts of a webhook POST that times out, breaks off or gets a 5xx/429, with backoff from `webhookRetryBaseMs`. @defaultValue 3 */
  webhookAttempts: number;
  /** First delay before a webhook POST is sent again, doubled on each further retry. @defaultValue 1000 */
  webhookRetryBaseMs: number;
  /** An alert state (consecutive failures, firing) not observed this long is forgotten. @defaultValue 2592000000 (30 days) */
  stateTtlMs: number;
  /**
   * How often a worker removes the series and alert states of collections that no longer exist (and that no
   * schedule names literally). @defaultValue 60000
   */
  forgetIntervalMs: number;
}

/**
 * Timeouts and retries of the calls to S3 and Chroma, so a hung connection becomes a retry and then a clear failure,
 * never a job that holds its lease forever. With these, an S3 request that stalls every time fails after about
 * `attempts × (idleTimeoutMs + backoff)` ≈ 1.5 minutes.
 */
export interface NetworkOptions {
  /** How long connecting may take. @defaultValue 5000 */
  connectTimeoutMs: number;
  /** A request during which no byte moves either way for this long is abandoned (and retried). @defaultValue 20000 */
  idleTimeoutMs: number;
  /**
   * How long one Chroma API call may take in all (writes of a full batch index before they answer, so this is
   * generous). @defaultValue 120000
   */
  chromaRequestTimeoutMs: number;
  /** Attempts of one idempotent request (S3 requests, Chroma reads): the first plus retries. @defaultValue 4 */
  attempts: number;
  /** First retry delay, doubled on each further retry. @defaultValue 500 */
  retryBaseMs: number;
}

/** Timeouts of the checks made by `/readyz`, `status` and the probe. */
export interface CheckOptions {
  /** How long a Redis PING or Chroma heartbeat may take before it counts as down. @defaultValue 2000 */
  timeoutMs: number;
  /**
   * The probe queries with the embedding of a record at a random offset among the collection's first this many: an
   * offset anywhere in a large collection costs local Chroma a skip over every earlier row, once a minute per
   * collection. @defaultValue 1000
   */
  probeSampleWindow: number;
}

/** The Chroma `start` runs from npm bindings when CHROMA_URL is unset (and the tests' servers). */
export interface LocalChromaOptions {
  /**
   * How long a stopping server gets after SIGTERM before SIGKILL, per server. Bindings 1.3.4 ignore SIGTERM for 20 s
   * and more (1.0.5 exits at once); Chroma's data is durable on every write, so a kill loses nothing.
   * @defaultValue 5000 for 1.0.5, 1000 for current
   */
  stopGraceMs: Record<LocalChromaServer, number>;
}

/** How the daemons log. */
export interface LogOptions {
  /**
   * A repeating error (Redis down: every reconnect attempt of every queue fails alike) is logged at most once per
   * this interval, with the number of repeats in between. @defaultValue 10000
   */
  repeatIntervalMs: number;
  /**
   * Distinct errors a rate-limited log remembers at once (messages can carry ids); beyond this the longest-quiet is
   * forgotten. @defaultValue 1000
   */
  repeatMaxDistinct: number;
}

export const DEFAULTS = {
  redisUrl: "redis://127.0.0.1:6379",
  queuePrefix: "vk",
  chromaUrl: "http://127.0.0.1:8000",
  chromaTenant: "default_tenant",
  chromaDatabase: "default_database",
  backupUrl: "file://./data/backups",
  scheduleFile: "./schedule.yaml",
  /** Where `start` keeps the local Chroma it runs when CHROMA_URL is unset. */
  localChromaPath: "./data/chroma",
  /**
   * The port `start` asks for its local Chroma (Chroma's own default, so clients configured for a stock server find
   * it); when it is taken, a free one is used and printed.
   */
  localChromaPort: 8000,
  /** Where `start` keeps the dashboard password it generates when DASHBOARD_USER/DASHBOARD_PASSWORD are unset (mode 0600). */
  dashboardPasswordFile: "./data/dashboard-password",
  httpPort: 9464,
  httpHost: "0.0.0.0",
  /** Log level of the daemons (worker, scheduler, start) when LOG_LEVEL is unset. */
  daemonLogLevel: "info",
  /** Log level of one-shot commands (run, enqueue, status, …) when LOG_LEVEL is unset: their output is the result. */
  commandLogLevel: "warn",
  worker: {
    concurrency: { backup: 1, restore: 1, verify: 1, prune: 1, expire: 1, archive: 1, lint: 1, warm: 2, probe: 4, recall: 1, tune: 1, drill: 1, reindex: 1 },
    shutdownTimeoutMs: 30_000,
    leaseTtlMs: 30_000,
  } satisfies WorkerOptions,
  scheduler: {
    catchUpWindowMs: 3_600_000,
    slotClaimTtlMs: 7_200_000,
    catchUpIntervalMs: 15_000,
    slotUsefulMinMs: 3_600_000,
    outageRetryMaxDelayMs: 60_000,
    globMemoryMs: 7 * 86_400_000,
    listTimeoutMs: 10_000,
    namedMinTtlMs: 600_000,
  } satisfies SchedulerOptions,
  jobs: {
    attempts: 3,
    backoffMs: 10_000,
    keepCompleted: 1000,
    keepCompletedSeconds: 86_400,
    keepFailed: 5000,
    keepFailedSeconds: 604_800,
  } satisfies JobDefaults,
  checks: { timeoutMs: 2000, probeSampleWindow: 1000 } satisfies CheckOptions,
  progress: { intervalMs: 500 } satisfies ProgressOptions,
  logs: { repeatIntervalMs: 10_000, repeatMaxDistinct: 1000 } satisfies LogOptions,
  network: {
    connectTimeoutMs: 5000,
    idleTimeoutMs: 20_000,
    chromaRequestTimeoutMs: 120_000,
    attempts: 4,
    retryBaseMs: 500,
  } satisfies NetworkOptions,
  chroma: { maxRequestBytes: 40 * 1024 * 1024 } satisfies ChromaRequestOptions,
  localChroma: { stopGraceMs: { "1.0.5": 5000, current: 1000 } } satisfies LocalChromaOptions,
  lifecycle: {
    expiresField: "_expires_at",
    createdField: "_created_at",
    batchSize: 1000,
    expireBatchSize: 5000,
    archiveTarget: "{name}_archive",
    sampleIds: 5,
    lintPageSize: 1000,
    auditPageSize: 5000,
    auditPaceShare: 0.1,
  } satisfies LifecycleJobOptions,
  alerts: {
    probeAfterFailures: 3,
    jobAfterFailures: 1,
    probeLatencyMs: 1000,
    backupMaxAgeHours: 26,
    stalenessIntervalMs: 600_000,
    webhookTimeoutMs: 5000,
    webhookAttempts: 3,
    webhookRetryBaseMs: 1000,
    stateTtlMs: 30 * 86_400_000,
    forgetIntervalMs: 60_000,
  } satisfies AlertOptions,
  /** Enqueue a warm job for every collection when a worker starts (env `VK_WARM_ON_START`). */
  warmOnStart: true,
  warm: {
    samples: 20,
    nResults: 10,
    settleWindow: 3,
    settleTolerance: 0.1,
    budgetMs: 10_000,
    maxQueries: 200,
  } satisfies WarmOptions,
  recall: { k: 10, queries: 100, queryBatch: 1000, pageSize: 1000, readAhead: 2, efValues: [10, 20, 40, 80, 160] } satisfies RecallOptions,
  drill: { sampleRecords: 100, sampleChunks: 5 } satisfies DrillOptions,
  pacing: {
    adaptive: false,
    latencyFactor: 1.3,
    probeIntervalMs: 250,
    idleProbes: 15,
    idleSpacingMs: 100,
    probeWindow: 3,
    slowdown: 0.5,
    speedupShare: 0.1,
    floorShare: 0.1,
    probeResults: 10,
    probeTimeoutMs: 10_000,
    nice: 0,
    pageSize: 100,
    readAhead: 0,
  } satisfies PacingOptions,
  reindex: { maxPasses: 5, reconcileGraceMs: 2000, keepOldHours: 72, pageSize: 500, readAhead: 2, unseenBatch: 100_000 } satisfies ReindexOptions,
  reads: { idWindow: 50_000, idOverlap: 1000, pageValues: 192_000 } satisfies ReadOptions,
  backup: {
    pageSize: 500,
    readAhead: 2,
    chunkReadAhead: 2,
    chunkRecords: 2000,
    chunkBytes: 4 * 1024 * 1024,
    compression: "gzip",
    leftoverGraceHours: 24,
    dedupe: false,
    dedupeMeanRecords: 6,
    dedupeMaxRecords: 32,
    dedupeEncoders: 8,
    dedupeReadAhead: 16,
    packBytes: 4 * 1024 * 1024,
    packUploads: 2,
    packReadBytes: 1024 * 1024,
    packReadGapBytes: 64 * 1024,
    headerSettleMs: 1000,
  } satisfies BackupOptions,
} as const;
