import { UnrecoverableError, type Job } from "bullmq";
import { PermanentError } from "../errors.js";
import type { JobContext, Locks } from "../jobs/job-context.js";
import { withThrottledProgress } from "../jobs/progress-throttle.js";
import type { Logger } from "../logging.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import type { ObjectStore } from "../storage/objects/object-store.js";
import { definitionOf, isServedKind, type ServedKind } from "./catalogue.js";
import { enqueueUnchecked, parseJobData } from "./enqueue.js";
import { storedProgress } from "./job-progress.js";
import type { QueueSet } from "./queue-set.js";

export interface ProcessorDeps {
  queues: QueueSet;
  chroma: ChromaStore;
  backupStore: ObjectStore;
  locks: Locks;
  logger: Logger;
  /** Aborted when a shutdown runs out of time, so long jobs can stop at a safe point. */
  shutdownSignal: AbortSignal;
}

const firstLine = (message: string) => message.split("\n")[0] || message;

/**
 * Adapts a job kind's processor to BullMQ: validates the payload, builds the context, and turns bad input into
 * UnrecoverableError so BullMQ does not retry what cannot succeed.
 */
export function bullProcessor(kind: ServedKind, deps: ProcessorDeps) {
  const job = definitionOf(kind);
  return async (bullJob: Job, _token?: string, cancelSignal?: AbortSignal): Promise<unknown> => {
    const payload = parseJobData(kind, bullJob.data);
    const logger = deps.logger.child({ kind, jobId: bullJob.id, collection: payload.collection });
    const ctx: JobContext = {
      logger,
      chroma: deps.chroma,
      backupStore: deps.backupStore,
      locks: deps.locks,
      runner: `job ${bullJob.id}`,
      followUp: async (next, payload) => {
        if (isServedKind(next)) await enqueueUnchecked(deps.queues, next, payload);
      },
      signal: cancelSignal ? AbortSignal.any([cancelSignal, deps.shutdownSignal]) : deps.shutdownSignal,
      progress: async (progress) => {
        await bullJob.updateProgress({ ...storedProgress(progress) });
      },
    };
    try {
      return await withThrottledProgress(ctx, (throttled) => job.process(payload, throttled));
    } catch (error) {
      if (error instanceof PermanentError) throw new UnrecoverableError(firstLine(error.message));
      const named = deps.chroma.withOrigin(error);
      // BullMQ keeps the message as the job's failure reason: one line, like every failure vectorkeeper reports.
      if (named instanceof Error && named.message.includes("\n")) throw new Error(firstLine(named.message), { cause: named });
      throw named;
    }
  };
}
