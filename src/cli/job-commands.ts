import { QueueEvents } from "bullmq";
import type { Command } from "commander";
import { ConfigError, describeIssues } from "../config/config-error.js";
import type { JobContext } from "../jobs/job-context.js";
import { definitionOf, isServedKind, queueName, unknownKindMessage, type ServedKind } from "../queues/catalogue.js";
import { createRedisConnection } from "../queues/connection.js";
import { enqueueUnchecked } from "../queues/enqueue.js";
import { flagOf, payloadFromFlags, withJobFlags } from "./job-flags.js";
import { printResult, type OutputOptions } from "./output.js";
import { progressLine } from "./progress-line.js";
import { backupStoreOf, chromaStoreOf, connectQueues, inlineLocks, runtimeFor } from "./runtime.js";

function servedKind(kind: string): ServedKind {
  if (!isServedKind(kind)) throw new ConfigError(unknownKindMessage(kind));
  return kind;
}

/** Validates a payload built from flags; problems are named by their flag (`--sample: …`). */
export function checkedPayload(kind: ServedKind, payload: Record<string, unknown>): Record<string, unknown> & { collection: string } {
  const schema = definitionOf(kind).payload;
  for (const field of Object.keys(payload)) {
    if (!(field in schema.shape)) throw new ConfigError(`${flagOf([field])} does not apply to ${kind}`);
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new ConfigError(`${kind}: ${describeIssues(parsed.error.issues, payload, flagOf)}`);
  return parsed.data as Record<string, unknown> & { collection: string };
}

const humanResult = (result: unknown) => JSON.stringify(result, null, 2);

/** Runs one job in this process: same processor as the workers, with a progress line on a terminal. */
export async function runInline(kind: ServedKind, payload: Record<string, unknown>, output: OutputOptions): Promise<unknown> {
  const checked = checkedPayload(kind, payload);
  const { config, logger } = runtimeFor("command");
  const line = progressLine(`${kind} ${checked.collection}`);
  // Ctrl-C asks the job to stop at its next safe point; a second one ends the process.
  const interrupted = new AbortController();
  process.once("SIGINT", () => {
    interrupted.abort(new Error("interrupted"));
    process.once("SIGINT", () => process.exit(130));
  });
  const locks = inlineLocks(config, logger);
  const ctx: JobContext = {
    logger: logger.child({ kind, collection: checked.collection }),
    chroma: chromaStoreOf(config),
    backupStore: backupStoreOf(config),
    locks,
    runner: `cli ${process.pid}`,
    signal: interrupted.signal,
    progress: (p) => line.update(p),
  };
  let result: unknown;
  try {
    result = await definitionOf(kind).process(checked, ctx);
  } finally {
    line.done();
    locks.close();
  }
  printResult(result, output, humanResult);
  const skipped = (result as { skipped?: string } | null)?.skipped;
  if (skipped) {
    process.stderr.write(`vectorkeeper: ${skipped}\n`);
    process.exitCode = 1;
  }
  return result;
}

export function registerJobCommands(program: Command): void {
  withJobFlags(
    program
      .command("run <kind>")
      .description("run one job inline, without the queues (for scripts and first aid)")
      .option("--json", "print the result as one JSON object"),
  ).action(async (kindArg: string, flags: OutputOptions & Record<string, unknown>) => {
    const kind = servedKind(kindArg);
    await runInline(kind, payloadFromFlags(flags), flags);
  });

  withJobFlags(
    program
      .command("enqueue <kind>")
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
      const job = await enqueueUnchecked(queues, kind, payload);
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
