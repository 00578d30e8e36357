import { createHash, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Logger } from "../logging.js";
import { enqueueUnchecked } from "../queues/enqueue.js";
import type { QueueSet } from "../queues/queue-set.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { isGlob, resolveCollections } from "./collection-globs.js";
import { payloadOf, type ScheduleEntry } from "./schedule-file.js";
import { slotJobId } from "./slots.js";

export interface SlotOutcome {
  enqueued: string[];
  /** Jobs of this slot another scheduler (or an earlier run of this one) already claimed. */
  alreadyClaimed: string[];
  /** Literal names that are not on the server; their jobs are enqueued anyway, and fail saying so. */
  missing: string[];
  /**
   * Chroma did not answer the listing: the slot went to the literal names and the collections its globs matched at
   * the last listing that worked. The scheduler looks at the slot again once Chroma answers.
   */
  chromaDown: boolean;
}

export const emptyOutcome = (): SlotOutcome => ({ enqueued: [], alreadyClaimed: [], missing: [], chromaDown: false });

/** What a scheduler stored as a glob's last resolution, read back from Redis. */
const rememberedNames = z.array(z.string().min(1));

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Turns one slot of one entry into at most one job per collection, whatever the number of schedulers.
 * A slot is claimed with SET NX before it is added: the job id alone would let a late scheduler re-add a slot whose
 * job has already run and been removed by retention. A Chroma that does not answer does not drop the slot: literal
 * names always get their job, globs the collections they matched last time, and the jobs retry until Chroma answers.
 */
export class SlotEnqueuer {
  /** This scheduler's claim value: a claim it holds whose add failed unseen (reply lost in a cut) is added again. */
  private readonly token = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(
    private readonly deps: {
      /** Claims and remembered glob matches live here, under the queue prefix. */
      redis: Redis;
      /** Where the slots' jobs are added. */
      queues: QueueSet;
      /** Listed for each slot, to resolve the entry's globs and find literal names that do not exist. */
      chroma: ChromaStore;
      logger: Logger;
      /** How long a slot's claim is kept, so replicas enqueue it once (see `SchedulerOptions.slotClaimTtlMs`). */
      claimTtlMs: number;
      /** How long listing the collections may take before Chroma counts as down for this slot. */
      listTimeoutMs: number;
      /** How long a glob's last resolution is remembered for outages (see `SchedulerOptions.globMemoryMs`). */
      globMemoryMs: number;
    },
  ) {}

  private claimKey(jobId: string): string {
    return `${this.deps.queues.prefix}:scheduler:slot:${jobId}`;
  }

  private resolvedKey(entry: ScheduleEntry): string {
    const patterns = createHash("sha256").update(JSON.stringify(entry.collections)).digest("hex").slice(0, 16);
    return `${this.deps.queues.prefix}:scheduler:resolved:${entry.kind}:${patterns}`;
  }

  /** Claims a one-off event of a slot (e.g. its server check) for this scheduler; false when another took it. */
  async claim(name: string): Promise<boolean> {
    return (await this.claimOf(name)) === "new";
  }

  /** `new`: claimed now; `mine`: claimed earlier by this scheduler; `taken`: claimed by another. */
  private async claimOf(name: string): Promise<"new" | "mine" | "taken"> {
    const key = this.claimKey(name);
    if ((await this.deps.redis.set(key, this.token, "PX", this.deps.claimTtlMs, "NX")) === "OK") return "new";
    return (await this.deps.redis.get(key)) === this.token ? "mine" : "taken";
  }

  /** The collections the entry's globs matched at the last listing that worked; none when unreadable (logged). */
  private async remembered(entry: ScheduleEntry): Promise<string[]> {
    const key = this.resolvedKey(entry);
    const stored = await this.deps.redis.get(key);
    if (stored === null) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(stored);
    } catch {
      parsed = undefined;
    }
    const names = rememberedNames.safeParse(parsed);
    if (names.success) return names.data;
    this.deps.logger.warn({ kind: entry.kind, key }, "remembered glob matches in Redis are not a list of names; using only literal names this slot");
    return [];
  }

  private async targets(entry: ScheduleEntry, chromaKnownDown: boolean): Promise<{ collections: string[]; missing: string[]; chromaDown: boolean }> {
    const { redis, chroma, logger, listTimeoutMs } = this.deps;
    let existing: string[] | undefined;
    if (!chromaKnownDown) {
      try {
        existing = await within(chroma.listCollectionNames(), listTimeoutMs);
      } catch (error) {
        logger.warn({ kind: entry.kind, reason: error instanceof Error ? error.message : String(error) }, "could not list collections for a schedule slot");
      }
    }
    if (!existing) {
      const remembered = await this.remembered(entry);
      const literals = entry.collections.filter((pattern) => !isGlob(pattern));
      return { collections: [...new Set([...literals, ...remembered])], missing: [], chromaDown: true };
    }
    const { collections, missing } = resolveCollections(entry.collections, existing);
    await redis.set(this.resolvedKey(entry), JSON.stringify(collections), "PX", this.deps.globMemoryMs);
    if (missing.length > 0) {
      logger.warn({ kind: entry.kind, missing }, "schedule names collections that do not exist; their jobs will fail until they do");
    }
    return { collections: [...collections, ...missing], missing, chromaDown: false };
  }

  async enqueueSlot(
    entry: ScheduleEntry,
    slot: Date,
    reason: "tick" | "catch-up",
    options: { jobOptions?: JobsOptions; chromaKnownDown?: boolean } = {},
  ): Promise<SlotOutcome> {
    const { redis, queues, logger } = this.deps;
    const { collections, missing, chromaDown } = await this.targets(entry, options.chromaKnownDown ?? false);
    const outcome: SlotOutcome = { enqueued: [], alreadyClaimed: [], missing, chromaDown };
    for (const collection of collections) {
      const jobId = slotJobId(entry.kind, collection, slot);
      const claim = await this.claimOf(jobId);
      // A claim of ours without its job: the add's reply was lost when Redis went away; add it now.
      if (claim === "taken" || (claim === "mine" && (await queues.get(entry.kind).getJob(jobId)))) {
        outcome.alreadyClaimed.push(jobId);
        continue;
      }
      try {
        await enqueueUnchecked(queues, entry.kind, payloadOf(entry, collection), {
          jobId,
          ...(options.jobOptions ? { jobOptions: options.jobOptions } : {}),
        });
        outcome.enqueued.push(jobId);
      } catch (error) {
        // Give the slot back so another scheduler (or the next catch-up pass) can enqueue it.
        await redis.del(this.claimKey(jobId)).catch(() => undefined);
        throw error;
      }
    }
    logger.info(
      {
        kind: entry.kind,
        slot: slot.toISOString(),
        reason,
        enqueued: outcome.enqueued.length,
        skipped: outcome.alreadyClaimed.length,
        ...(chromaDown ? { chromaDown } : {}),
      },
      "schedule slot",
    );
    return outcome;
  }
}
