import type { Redis } from "ioredis";
import { DEFAULTS } from "../config/defaults.js";
import { chromaEndpoint } from "../config/chroma-endpoint.js";
import { loadConfig, type Config } from "../config/env.js";
import { createLogger, type Logger } from "../logging.js";
import type { Locks } from "../jobs/job-context.js";
import { LocalLocks, RedisLocks } from "../queues/locks.js";
import type { QueueSet } from "../queues/queue-set.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import type { ObjectStore } from "../storage/objects/object-store.js";
import { openObjectStore } from "../storage/objects/open-object-store.js";

// The Chroma client, the Redis client and BullMQ are imported where a command first needs them, not with this file:
// every command loads it, and several (`schedule`, `backups list`) need none of them.

export interface Runtime {
  config: Config;
  logger: Logger;
}

/** Config and logger for a command; daemons log at info, one-shot commands at warn, unless LOG_LEVEL says. */
export function runtimeFor(role: "daemon" | "command"): Runtime {
  const config = loadConfig();
  const level = config.logLevel ?? (role === "daemon" ? DEFAULTS.daemonLogLevel : DEFAULTS.commandLogLevel);
  return { config, logger: createLogger(level) };
}

/** The configured Chroma (CHROMA_URL or the default, with its credentials), or a local one `start` runs (no auth). */
export async function chromaStoreOf(config: Config, localUrl?: string): Promise<ChromaStore> {
  const { ChromaStore } = await import("../storage/chroma/client.js");
  const { endpoint, tenant, database, maxRequestBytes } = config.chroma;
  return new ChromaStore({ url: localUrl === undefined ? endpoint : chromaEndpoint(localUrl), tenant, database, maxRequestBytes });
}

/** A fail-fast producer connection and the queues on it, or a RedisUnavailableError that says how to get Redis. */
export async function connectQueues(config: Config, logger: Logger): Promise<{ redis: Redis; queues: QueueSet }> {
  const [{ createRedisConnection, waitForRedis }, { QueueSet }] = await Promise.all([
    import("../queues/connection.js"),
    import("../queues/queue-set.js"),
  ]);
  const redis = createRedisConnection(config.redisUrl, "producer");
  redis.on("error", (err) => logger.debug({ err: err.message }, "redis connection error"));
  try {
    await waitForRedis(redis, config.redisUrl);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return { redis, queues: new QueueSet(redis, config.queuePrefix) };
}

export function backupStoreOf(config: Config): ObjectStore {
  return openObjectStore({ url: config.backupUrl, s3: config.s3, keyFile: config.backupKeyFile });
}

/**
 * Locks for a job run inline: Redis leases when a Redis answers (so `run backup` and the workers exclude each
 * other), else leases within this process only. Connects on first use (a lease, or recording a success at the end).
 */
export function inlineLocks(config: Config, logger: Logger): Locks & { close(): void; redis(): Promise<Redis | undefined> } {
  let chosen: Promise<{ locks: Locks; redis?: Redis }> | undefined;
  const choose = async (): Promise<{ locks: Locks; redis?: Redis }> => {
    try {
      const { redis, queues } = await connectQueues(config, logger);
      await queues.close();
      return { locks: new RedisLocks(redis, config.queuePrefix, config.worker.leaseTtlMs), redis };
    } catch {
      return { locks: new LocalLocks(config.worker.leaseTtlMs) };
    }
  };
  let warned = false;
  const locks = async () => {
    chosen ??= choose();
    const { locks, redis } = await chosen;
    if (!redis && !warned) logger.warn("no Redis answers: this inline run cannot see jobs running on workers");
    warned = true;
    return locks;
  };
  return {
    ttlMs: config.worker.leaseTtlMs,
    async tryAcquire(name, holder) {
      return (await locks()).tryAcquire(name, holder);
    },
    async holder(name) {
      return (await locks()).holder(name);
    },
    /** The same connection, for recording the run's success where workers and `/metrics` see it; none without Redis. */
    async redis() {
      chosen ??= choose();
      return (await chosen).redis;
    },
    close() {
      void chosen?.then(({ redis }) => redis?.disconnect());
    },
  };
}
