import { QueueEvents } from "bullmq";
import type { Command } from "commander";
import { ConfigError } from "../config/config-error.js";
import type { JobContext } from "../jobs/job-context.js";
import { isServedKind, jobOf, queueName, unknownKindMessage, type ServedKind } from "../queues/catalogue.js";
import { createRedisConnection } from "../queues/connection.js";
import { enqueueUnchecked, parsePayload } from "../queues/enqueue.js";
import { printResult, type OutputOptions } from "./output.js";
import { progressLine } from "./progress-line.js";
import { chromaStoreOf, connectQueues, runtimeFor } from "./runtime.js";

interface JobFlags extends OutputOptions {
  collection?: string;
}

function servedKind(kind: string): ServedKind {
  if (!isServedKind(kind)) throw new ConfigError(unknownKindMessage(kind));
  return kind;
}

/** The payload a command line describes; validated against the kind's schema like any other outside input. */
function payloadFromFlags(kind: ServedKind, flags: JobFlags): Record<string, unknown> {
  if (!flags.collection) throw new ConfigError(`${kind} needs --collection NAME`);
  return { collection: flags.collection };
}

const humanResult = (result: unknown) => JSON.stringify(result, null, 2);

export function registerJobCommands(program: Command): void {
  program
    .command("run <kind>")
    .description("run one job inline, without Redis (for scripts and first aid)")
    .requiredOption("--collection <name>", "the collection to act on")
    .option("--json", "print the result as one JSON object")
    .action(async (kindArg: string, flags: JobFlags) => {
      const kind = servedKind(kindArg);
      const payload = parsePayload(kind, payloadFromFlags(kind, flags));
      const { config, logger } = runtimeFor("command");
      const line = progressLine(`${kind} ${payload.collection}`);
      // Ctrl-C asks the job to stop at its next safe point; a second one ends the process.
      const interrupted = new AbortController();
      process.once("SIGINT", () => {
        interrupted.abort(new Error("interrupted"));
        process.once("SIGINT", () => process.exit(130));
      });
      const ctx: JobContext = {
        logger: logger.child({ kind, collection: payload.collection }),
        chroma: chromaStoreOf(config),
        signal: interrupted.signal,
        progress: (p) => line.update(p),
      };
      let result: unknown;
      try {
        result = await jobOf(kind).process(payload, ctx);
      } finally {
        line.done();
      }
      printResult(result, flags, humanResult);
    });

  program
    .command("enqueue <kind>")
    .description("put a job on its queue; --wait waits for its result")
    .requiredOption("--collection <name>", "the collection to act on")
    .option("--wait", "wait for the job to finish and print its result")
    .option("--timeout <seconds>", "with --wait: give up after this long", "3600")
    .option("--json", "print the result as one JSON object")
    .action(async (kindArg: string, flags: JobFlags & { wait?: boolean; timeout: string }) => {
      const kind = servedKind(kindArg);
      const timeoutSeconds = Number(flags.timeout);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
        throw new ConfigError(`--timeout: "${flags.timeout}" is not a positive number of seconds`);
      }
      const payload = payloadFromFlags(kind, flags);
      parsePayload(kind, payload);
      const { config, logger } = runtimeFor("command");
      const { redis, queues } = await connectQueues(config, logger);
      let events: QueueEvents | undefined;
      const eventsConnection = flags.wait ? createRedisConnection(config.redisUrl, "worker") : undefined;
      try {
        if (eventsConnection) {
          // Listen before adding, so a fast job's completion is not missed.
          const connection = eventsConnection;
          events = new QueueEvents(queueName(kind), { connection, prefix: config.queuePrefix });
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
