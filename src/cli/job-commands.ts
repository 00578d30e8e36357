import { QueueEvents } from "bullmq";
import type { Command } from "commander";
import { ConfigError } from "../config/config-error.js";
import type { JobContext } from "../jobs/job-context.js";
import { withThrottledProgress } from "../jobs/progress-throttle.js";
import { definitionOf, isServedKind, queueName, SERVED_KINDS, unknownKindMessage, type ServedKind } from "../queues/catalogue.js";
import { createRedisConnection } from "../queues/connection.js";
import { enqueueUnchecked } from "../queues/enqueue.js";
import { progressOf } from "../queues/job-progress.js";
import { cliHolder } from "../queues/locks.js";
import { describeFlagIssues, flagOf, payloadFromFlags, withJobFlags, type FlagLabels } from "./job-flags.js";
import { printResult, type OutputOptions } from "./output.js";
import { progressLine } from "./progress-line.js";
import { LastSuccessStore } from "../ops/last-success.js";
import { resolveCollections } from "../scheduling/collection-globs.js";
import { backupStoreOf, chromaStoreOf, connectQueues, inlineLocks, runtimeFor } from "./runtime.js";

function servedKind(kind: string): ServedKind {
  if (!isServedKind(kind)) throw new ConfigError(unknownKindMessage(kind));
  return kind;
}

/**
 * A restore names its target with `--to NAME` wherever it starts (`restore <backupId>`, `run restore`, `enqueue
 * restore`); in the payload, as for every kind, it is the `collection`.
 */
function withRestoreTarget(kind: ServedKind, payload: Record<string, unknown>): Record<string, unknown> {
  if (kind !== "restore") return payload;
  if (payload.collection !== undefined) throw new ConfigError("restore: name the collection to restore into with --to NAME, not --collection");
  const { to, ...rest } = payload;
  return to === undefined ? rest : { ...rest, collection: to };
}

/** Validates a payload built from flags; problems are named by the flag the user typed (`--sample: …`). */
export function checkedPayload(
  kind: ServedKind,
  flagPayload: Record<string, unknown>,
  labels: FlagLabels = {},
): Record<string, unknown> & { collection: string } {
  const payload = withRestoreTarget(kind, flagPayload);
  const names: FlagLabels = kind === "restore" ? { collection: "--to", ...labels } : labels;
  const schema = definitionOf(kind).payload;
  for (const field of Object.keys(payload)) {
    if (!(field in schema.shape)) throw new ConfigError(`${flagOf([field], names)} does not apply to ${kind}`);
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new ConfigError(`${kind}: ${describeFlagIssues(parsed.error.issues, payload, names)}`);
  return parsed.data as Record<string, unknown> & { collection: string };
}

const humanResult = (result: unknown) => JSON.stringify(result, null, 2);

/** Runs jobs in this process: the same processors as the workers, with a progress line on a terminal. */
async function executeInline(kind: ServedKind, payloads: Record<string, unknown>[], labels?: FlagLabels): Promise<unknown[]> {
  const checked = payloads.map((payload) => checkedPayload(kind, payload, labels));
  const { config, logger } = runtimeFor("command");
  // Ctrl-C asks the job to stop at its next safe point; a second one ends the process.
  const interrupted = new AbortController();
  process.once("SIGINT", () => {
    interrupted.abort(new Error("interrupted"));
    process.once("SIGINT", () => process.exit(130));
  });
  const locks = inlineLocks(config, logger);
  const chroma = chromaStoreOf(config);
  const backupStore = backupStoreOf(config);
  const results: unknown[] = [];
  // Staleness alerts count runs from the CLI too: the success goes where the workers export it from.
  const recordSuccess = async (jobKind: ServedKind, collection: string) => {
    const redis = await locks.redis();
    if (!redis) return;
    await new LastSuccessStore(redis, config.queuePrefix)
      .record(jobKind, collection)
      .catch((error: unknown) => logger.debug({ err: error }, "could not record the last success in Redis"));
  };
  const runOne = async (jobKind: ServedKind, payload: Record<string, unknown> & { collection: string }): Promise<unknown> => {
    const line = progressLine(`${jobKind} ${payload.collection}`);
    const jobLogger = logger.child({ kind: jobKind, collection: payload.collection });
    const ctx: JobContext = {
      logger: jobLogger,
      chroma,
      backupStore,
      locks,
      runner: cliHolder(),
      ownProcess: true,
      signal: interrupted.signal,
      progress: (p) => line.update(p),
      // Inline, a follow-up runs right after; its outcome is logged, the command's result stays the job's own.
      followUp: async (next, followPayload) => {
        if (!isServedKind(next)) return;
        const outcome = await runOne(next, checkedPayload(next, followPayload));
        jobLogger.info({ followUp: next, outcome }, "follow-up done");
      },
    };
    try {
      const result = await withThrottledProgress(ctx, (throttled) => definitionOf(jobKind).process(payload, throttled));
      if (!(result as { skipped?: string } | null)?.skipped) await recordSuccess(jobKind, payload.collection);
      return result;
    } catch (error) {
      throw chroma.withOrigin(error);
    } finally {
      line.done();
    }
  };
  try {
    for (const payload of checked) results.push(await runOne(kind, payload));
  } finally {
    locks.close();
  }
  return results;
}

/** Runs one job inline and prints its result; a job that stood down exits 1 with its reason. */
export async function runInline(
  kind: ServedKind,
  payload: Record<string, unknown>,
  output: OutputOptions,
  labels?: FlagLabels,
): Promise<unknown> {
  const [result] = await executeInline(kind, [payload], labels);
  printResult(result, output, humanResult);
  const skipped = (result as { skipped?: string } | null)?.skipped;
  if (skipped) {
    process.stderr.write(`vectorkeeper: ${skipped}\n`);
    process.exitCode = 1;
  }
  return result;
}

/** `run KIND --all`: the job for every collection on the server, one after another, printed as one object. */
async function runForAll(kind: ServedKind, payload: Record<string, unknown>, output: OutputOptions): Promise<void> {
  if (payload.collection !== undefined) throw new ConfigError("give --collection or --all, not both");
  const { config } = runtimeFor("command");
  // As the schedule's "*": vectorkeeper's own collections (restore staging, kept originals, scratch copies) are left out.
  const names = resolveCollections(["*"], await chromaStoreOf(config).listCollectionNames()).collections;
  const results = await executeInline(kind, names.map((collection) => ({ ...payload, collection })));
  printResult({ kind, collections: results }, output, humanResult);
}

export function registerJobCommands(program: Command): void {
  withJobFlags(
    program
      .command("run")
      .argument("<kind>", `the job kind: ${SERVED_KINDS.join(", ")}`)
      .description("run one job inline, without the queues (for scripts and first aid)")
      .option("--all", "run it for every collection on the server (not vectorkeeper's own __vk collections)")
      .option("--json", "print the result as one JSON object"),
  ).action(async (kindArg: string, flags: OutputOptions & Record<string, unknown> & { all?: boolean }) => {
    const kind = servedKind(kindArg);
    if (flags.all) await runForAll(kind, payloadFromFlags(flags), flags);
    else await runInline(kind, payloadFromFlags(flags), flags);
  });

  withJobFlags(
    program
      .command("enqueue")
      .argument("<kind>", `the job kind: ${SERVED_KINDS.join(", ")}`)
      .description("put a job on its queue; --wait waits for its result")
      .option("--wait", "wait for the job to finish and print its result")
      .option("--timeout <seconds>", "with --wait: give up after this long", "3600")
      .option("--json", "print the result as one JSON object"),
  ).action(async (kindArg: string, flags: OutputOptions & Record<string, unknown> & { wait?: boolean; timeout: string }) => {
    const kind = servedKind(kindArg);
    const timeoutSeconds = Number(flags.timeout);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
      throw new ConfigError(`--timeout: "${flags.timeout}" is not a positive number of seconds`);
    }
    const payload = checkedPayload(kind, payloadFromFlags(flags));
    const { config, logger } = runtimeFor("command");
    const { redis, queues } = await connectQueues(config, logger);
    let events: QueueEvents | undefined;
    const eventsConnection = flags.wait ? createRedisConnection(config.redisUrl, "worker") : undefined;
    try {
      if (eventsConnection) {
        // Listen before adding, so a fast job's completion is not missed.
        events = new QueueEvents(queueName(kind), { connection: eventsConnection, prefix: config.queuePrefix });
        await events.waitUntilReady();
      }
      let jobId: string | undefined;
      const line = progressLine(`${kind} ${payload.collection}`);
      events?.on("progress", ({ jobId: id, data }) => {
        const progress = id === jobId ? progressOf(data) : undefined;
        if (progress) void line.update(progress);
      });
      const job = await enqueueUnchecked(queues, kind, payload);
      jobId = job.id;
      if (!events) {
        printResult({ jobId: job.id, kind, queue: queueName(kind), collection: payload.collection }, flags, (r) =>
          `enqueued ${r.kind} job ${r.jobId} for ${r.collection}`,
        );
        return;
      }
      let result: unknown;
      try {
        result = await job.waitUntilFinished(events, timeoutSeconds * 1000);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`${kind} job ${job.id} failed: ${reason}`);
      } finally {
        line.done();
      }
      printResult({ jobId: job.id, kind, result }, flags, (r) => humanResult(r.result));
    } finally {
      await events?.close();
      eventsConnection?.disconnect();
      await queues.close();
      redis.disconnect();
    }
  });
}
