import type { Redis } from "ioredis";
import type { Logger } from "../logging.js";
import { enqueueUnchecked } from "../queues/enqueue.js";
import type { QueueSet } from "../queues/queue-set.js";
import type { ChromaStore } from "../storage/chroma.js";
import { resolveCollections } from "./collection-globs.js";
import { payloadOf, type ScheduleEntry } from "./schedule-file.js";
import { slotJobId } from "./slots.js";

export interface SlotOutcome {
  enqueued: string[];
  /** Jobs of this slot another scheduler (or an earlier run of this one) already claimed. */
  alreadyClaimed: string[];
  missing: string[];
}

/**
 * Turns one slot of one entry into at most one job per collection, whatever the number of schedulers.
 * A slot is claimed with SET NX before it is added: the job id alone would let a late scheduler re-add a slot whose
 * job has already run and been removed by retention.
 */
export class SlotEnqueuer {
  constructor(
    private readonly deps: {
      redis: Redis;
      queues: QueueSet;
      chroma: ChromaStore;
      logger: Logger;
      claimTtlMs: number;
    },
  ) {}

  private claimKey(jobId: string): string {
    return `${this.deps.queues.prefix}:scheduler:slot:${jobId}`;
  }

  async enqueueSlot(entry: ScheduleEntry, slot: Date, reason: "tick" | "catch-up"): Promise<SlotOutcome> {
    const { redis, queues, chroma, logger, claimTtlMs } = this.deps;
    const { collections, missing } = resolveCollections(entry.collections, await chroma.listCollectionNames());
    if (missing.length > 0) {
      logger.warn({ kind: entry.kind, missing }, "schedule names collections that do not exist; skipped");
    }
    const outcome: SlotOutcome = { enqueued: [], alreadyClaimed: [], missing };
    for (const collection of collections) {
      const jobId = slotJobId(entry.kind, collection, slot);
      const claimed = await redis.set(this.claimKey(jobId), String(process.pid), "PX", claimTtlMs, "NX");
      if (claimed !== "OK") {
        outcome.alreadyClaimed.push(jobId);
        continue;
      }
      try {
        await enqueueUnchecked(queues, entry.kind, payloadOf(entry, collection), { jobId });
        outcome.enqueued.push(jobId);
      } catch (error) {
        // Give the slot back so another scheduler (or the next start's catch-up) can enqueue it.
        await redis.del(this.claimKey(jobId)).catch(() => undefined);
        throw error;
      }
    }
    logger.info(
      { kind: entry.kind, slot: slot.toISOString(), reason, enqueued: outcome.enqueued.length, skipped: outcome.alreadyClaimed.length },
      "schedule slot",
    );
    return outcome;
  }
}
