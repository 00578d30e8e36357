import { QueueEvents } from "bullmq";
import { createRedisConnection } from "../queues/connection.js";
import { enqueueUnchecked } from "../queues/enqueue.js";
import { progressOf } from "../queues/job-progress.js";
import { queueName, type ServedKind } from "../queues/served-kinds.js";
import { checkedPayload } from "./checked-payload.js";
import { humanResult, printResult, reportRefusals, type OutputOptions } from "./output.js";
import { progressLine } from "./progress-line.js";
import { connectQueues, runtimeFor } from "./runtime.js";

/** `enqueue KIND`: puts the job on its queue; with `wait`, prints its result once a worker has run it. */
export async function enqueueJob(
  kind: ServedKind,
  flagPayload: Record<string, unknown>,
  flags: OutputOptions & { wait?: boolean },
  timeoutSeconds: number,
): Promise<void> {
  const payload = checkedPayload(kind, flagPayload);
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
    reportRefusals([result]);
  } finally {
    await events?.close();
    eventsConnection?.disconnect();
    await queues.close();
    redis.disconnect();
  }
}
