import { Redis } from "ioredis";
import { DEFAULTS } from "../config/defaults.js";
import { RedisUnavailableError } from "../errors.js";

/**
 * - `worker`: blocking reads must wait out Redis restarts, so commands retry forever (`maxRetriesPerRequest: null`,
 *   which BullMQ requires of worker connections).
 * - `producer`: the CLI, the scheduler's enqueues and the ops server must fail fast when Redis is down instead of
 *   hanging, so no offline queue and one retry.
 */
export type ConnectionRole = "worker" | "producer";

export function createRedisConnection(url: string, role: ConnectionRole): Redis {
  const common = { connectionName: `vectorkeeper-${role}`, lazyConnect: false };
  if (role === "worker") {
    return new Redis(url, { ...common, maxRetriesPerRequest: null, enableReadyCheck: true });
  }
  return new Redis(url, {
    ...common,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: DEFAULTS.checks.timeoutMs * 2,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/** Resolves once the connection is ready, or rejects with a message that says how to get a Redis. */
export async function waitForRedis(redis: Redis, url: string, timeoutMs = DEFAULTS.checks.timeoutMs * 2): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new RedisUnavailableError(url));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    // Nothing listens there: no point waiting out the timeout.
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code !== "ECONNREFUSED" && error.code !== "ENOTFOUND") return;
      cleanup();
      reject(new RedisUnavailableError(url));
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", onError);
    };
    redis.on("ready", onReady);
    redis.on("error", onError);
  });
}

/** Reads `maxmemory-policy`: anything but `noeviction` lets Redis silently drop queued jobs under memory pressure. */
export async function maxmemoryPolicy(redis: Redis): Promise<string | undefined> {
  const reply = (await redis.config("GET", "maxmemory-policy")) as unknown;
  return Array.isArray(reply) && typeof reply[1] === "string" ? reply[1] : undefined;
}
