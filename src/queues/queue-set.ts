import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { jobOptionsOf, queueName, SERVED_KINDS, type ServedKind } from "./catalogue.js";

/** One producer-side Queue per served kind, sharing one connection. */
export class QueueSet {
  readonly queues: ReadonlyMap<ServedKind, Queue>;
  private errorHandler: (error: Error) => void = () => undefined;

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
    // A Queue without an error listener prints each connection failure as a multi-line dump on stderr (BullMQ's
    // fallback); the connection's own error listener, which every owner sets, reports the same failure.
    for (const queue of this.queues.values()) queue.on("error", (error) => this.errorHandler(error));
  }

  /** Where the queues' errors go (by default nowhere but the connection's own error listener). */
  onError(handler: (error: Error) => void): void {
    this.errorHandler = handler;
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
