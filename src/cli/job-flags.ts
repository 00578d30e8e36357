import type { Command } from "commander";
import type { z } from "zod";
import { ConfigError, describeIssues } from "../config/config-error.js";

/**
 * Job options on the command line. Every flag maps to one payload field; the kind's schema decides which apply, so a
 * flag that does not fit the kind is refused by name like any other bad input.
 */
interface FlagSpec {
  flag: string;
  field: string;
  description: string;
  /** How the text becomes a value; a flag without one is a switch. */
  parse?: (text: string, flag: string) => unknown;
  /** Nested payload field (keep.last). */
  parent?: string;
}

const number = (text: string, flag: string) => {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) throw new ConfigError(`${flag}: "${text}" is not a number`);
  return value;
};

const numberList = (text: string, flag: string) => text.split(",").map((part) => number(part, flag));

const FLAGS: FlagSpec[] = [
  { flag: "--collection <name>", field: "collection", description: "the collection to act on", parse: (t) => t },
  { flag: "--backup-id <id>", field: "backupId", description: "restore/verify: which backup", parse: (t) => t },
  { flag: "--replace", field: "replace", description: "restore: replace a target that holds records" },
  { flag: "--dry-run", field: "dryRun", description: "prune: show what would go, change nothing; tune: measure, change nothing" },
  { flag: "--sample <percent>", field: "samplePercent", description: "verify: check a random share of the chunks", parse: number },
  { flag: "--keep-last <n>", field: "last", parent: "keep", description: "backup/prune: keep the n newest", parse: number },
  { flag: "--keep-daily <n>", field: "daily", parent: "keep", description: "backup/prune: keep one a day for n days", parse: number },
  { flag: "--keep-weekly <n>", field: "weekly", parent: "keep", description: "backup/prune: keep one a week for n weeks", parse: number },
  { flag: "--keep-monthly <n>", field: "monthly", parent: "keep", description: "backup/prune: keep one a month for n months", parse: number },
  { flag: "--grace-hours <h>", field: "leftoverGraceHours", description: "prune: leave leftovers of interrupted backups younger than this", parse: number },
  { flag: "--field <name>", field: "field", description: "expire/archive: the lifecycle metadata field", parse: (t) => t },
  { flag: "--older-than-days <n>", field: "olderThanDays", description: "archive: move records created more than n days ago", parse: number },
  { flag: "--to <name>", field: "to", description: "restore: the collection to restore into; archive: target collection ({name} = source) or object-store", parse: (t) => t },
  { flag: "--batch-size <n>", field: "batchSize", description: "expire/archive/restore/reindex: records per batch", parse: number },
  { flag: "--compression <kind>", field: "compression", description: "backup: gzip (default), zstd or none", parse: (t) => t },
  { flag: "--dedupe", field: "dedupe", description: "backup: store chunks once per collection, in packs shared by its backups (format 4)" },
  { flag: "--pack-bytes <n>", field: "packBytes", description: "backup with --dedupe: bytes at which a pack is uploaded", parse: number },
  { flag: "--chunk-records <n>", field: "chunkRecords", description: "backup: records per chunk", parse: number },
  { flag: "--page-size <n>", field: "pageSize", description: "backup: records per read from Chroma", parse: number },
  { flag: "--read-ahead <n>", field: "readAhead", description: "backup: pages requested ahead of the one being written", parse: number },
  { flag: "--k <n>", field: "k", description: "recall/tune/reindex: neighbours compared per query (recall@k)", parse: number },
  { flag: "--queries <n>", field: "queries", description: "recall/tune/reindex: queries drawn from the collection", parse: number },
  { flag: "--query-batch <n>", field: "queryBatch", description: "recall/tune: queries searched exactly per read of the collection", parse: number },
  { flag: "--target-recall <r>", field: "targetRecall", description: "tune: the recall@k to reach (0-1)", parse: number },
  { flag: "--ef-values <list>", field: "efValues", description: "tune: ef_search values to try, e.g. 10,20,40,80,160", parse: numberList },
  { flag: "--sample-records <n>", field: "sampleRecords", description: "drill: records compared with the backup and the source", parse: number },
  { flag: "--max-records-per-second <n>", field: "maxRecordsPerSecond", description: "backup/archive/expire/drill/reindex: records a second at most, in each pass", parse: number },
  { flag: "--adaptive", field: "adaptive", description: "backup/archive/expire/drill/reindex: slow down while the collection's query latency rises" },
  { flag: "--latency-factor <x>", field: "latencyFactor", description: "with --adaptive: slow down while a probe query takes more than x times its idle latency", parse: number },
  { flag: "--nice <n>", field: "nice", description: "with --adaptive: the job's threads run at this nice value (1-19), yielding the CPU to the host's work", parse: number },
  { flag: "--space <name>", field: "space", description: "reindex: distance space l2, cosine or ip (a rebuild)", parse: (t) => t },
  { flag: "--max-neighbors <n>", field: "maxNeighbors", description: "reindex: HNSW M / max_neighbors (a rebuild)", parse: number },
  { flag: "--ef-construction <n>", field: "efConstruction", description: "reindex: ef_construction (a rebuild)", parse: number },
  { flag: "--ef-search <n>", field: "efSearch", description: "reindex: ef_search (in place)", parse: number },
  { flag: "--num-threads <n>", field: "numThreads", description: "reindex: HNSW num_threads (in place)", parse: number },
  { flag: "--hnsw-batch-size <n>", field: "hnswBatchSize", description: "reindex: HNSW batch_size (in place)", parse: number },
  { flag: "--sync-threshold <n>", field: "syncThreshold", description: "reindex: HNSW sync_threshold (in place)", parse: number },
  { flag: "--resize-factor <x>", field: "resizeFactor", description: "reindex: HNSW resize_factor (in place)", parse: number },
  { flag: "--rebuild", field: "rebuild", description: "reindex: rebuild the index even when no fixed setting changes" },
  { flag: "--rollback", field: "rollback", description: "reindex: put back the collection the last reindex replaced" },
  { flag: "--drop-old", field: "dropOld", description: "reindex: delete the replaced collection (after this run's swap, or those kept now)" },
  { flag: "--drop-changed", field: "dropChanged", description: "reindex: drop (or roll back to) a kept collection even when writes made to it since its reconcile cannot be carried over" },
  { flag: "--keep-old-hours <h>", field: "keepOldHours", description: "reindex: keep replaced collections this long for --rollback", parse: number },
  { flag: "--max-passes <n>", field: "maxPasses", description: "reindex: catch-up passes before the swap (and after it) at most", parse: number },
  { flag: "--skip-recall", field: "skipRecall", description: "reindex: do not measure recall before and after" },
];

const optionName = (spec: FlagSpec) =>
  spec.flag
    .split(" ")[0]!
    .slice(2)
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Adds the job flags to a command (those named in `only`, or all). */
export function withJobFlags(command: Command, only?: readonly string[]): Command {
  for (const spec of FLAGS) {
    if (only && !only.includes(spec.field)) continue;
    command.option(spec.flag, spec.description);
  }
  return command;
}

/** The payload the flags describe; values are checked by the kind's schema afterwards. */
export function payloadFromFlags(options: Record<string, unknown>): Record<string, unknown> {
  const payload: Record<string, unknown> = {};
  for (const spec of FLAGS) {
    const raw = options[optionName(spec)];
    if (raw === undefined) continue;
    const flag = spec.flag.split(" ")[0]!;
    const value = spec.parse && typeof raw === "string" ? spec.parse(raw, flag) : raw;
    if (spec.parent) {
      const parent = (payload[spec.parent] ??= {}) as Record<string, unknown>;
      parent[spec.field] = value;
    } else {
      payload[spec.field] = value;
    }
  }
  return payload;
}

/** Names the user typed for payload fields where they differ from the flag (`restore <backupId> --to NAME`). */
export type FlagLabels = Readonly<Record<string, string>>;

/** The flag behind a payload path, for error messages: `keep.last` → `--keep-last`. */
export function flagOf(path: readonly PropertyKey[], labels: FlagLabels = {}): string {
  const [first, second] = path.map(String);
  if (first !== undefined && second === undefined && labels[first]) return labels[first];
  const spec = FLAGS.find((s) => (s.parent ? s.parent === first && s.field === second : s.field === first));
  if (spec) return spec.flag.split(" ")[0]!;
  return first === "keep" ? "--keep-*" : path.join(".") || "flags";
}

/** Schema problems of a payload built from flags, each named by what the user typed; a missing one says so. */
export function describeFlagIssues(issues: readonly z.core.$ZodIssue[], payload: Record<string, unknown>, labels: FlagLabels = {}): string {
  return issues
    .map((issue) => {
      const name = flagOf(issue.path, labels);
      const missing = issue.code === "invalid_type" && issue.path.length === 1 && payload[String(issue.path[0])] === undefined;
      return missing ? `${name} is required` : describeIssues([issue], payload, (path) => flagOf(path, labels));
    })
    .join("; ");
}
