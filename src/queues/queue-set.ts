import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { jobOptionsOf, queueName, SERVED_KINDS, type ServedKind } from "./catalogue.js";

/** One producer-side Queue per served kind, sharing one connection. */
export class QueueSet {
  readonly queues: ReadonlyMap<ServedKind, Queue>;

  constructor(
    readonly connection: Redis,
    readonly prefix: string,
  ) {
    this.queues = new Map(
      SERVED_KINDS.map((kind) => [
        kind,
        new Queue(queueName(kind), { connection, prefix, defaultJobOptions: jobOptionsOf(kind) }),
      ]),
    );
  }

  get(kind: ServedKind): Queue {
    const queue = this.queues.get(kind);
    if (!queue) throw new Error(`no queue for kind ${kind}`);
    return queue;
  }

  all(): Queue[] {
    return [...this.queues.values()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((q) => q.close()));
  }
}
