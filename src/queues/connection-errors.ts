import type { Redis } from "ioredis";
import { DEFAULTS } from "../config/defaults.js";
import type { Logger } from "../logging.js";
import { ThrottledErrorLog } from "../throttled-log.js";
import type { QueueSet } from "./queue-set.js";

/**
 * A daemon's Redis errors, from its connections, its queues and its BullMQ workers, as one rate-limited log: one JSON
 * line per distinct error per interval while Redis is away, and one line when it answers again.
 */
export function redisErrorLog(logger: Logger, intervalMs: number = DEFAULTS.logs.repeatIntervalMs): ThrottledErrorLog {
  return new ThrottledErrorLog(logger, "redis", intervalMs);
}

/** Routes a connection's (and its queues') errors into the log; its `ready` after failures is the recovery. */
export function reportConnectionErrors(log: ThrottledErrorLog, redis: Redis, role: string, queues?: QueueSet): void {
  redis.on("error", (error: Error) => log.error(error, { connection: role }));
  redis.on("ready", () => log.recovered());
  queues?.onError((error) => log.error(error, { connection: role }));
}
