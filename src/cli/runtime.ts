import type { Redis } from "ioredis";
import { DEFAULTS } from "../config/defaults.js";
import { chromaUrlOf, loadConfig, type Config } from "../config/env.js";
import { createLogger, type Logger } from "../logging.js";
import { createRedisConnection, waitForRedis } from "../queues/connection.js";
import { QueueSet } from "../queues/queue-set.js";
import { ChromaStore } from "../storage/chroma.js";

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

export function chromaStoreOf(config: Config, url: string = chromaUrlOf(config)): ChromaStore {
  return new ChromaStore({ url, token: config.chroma.token, tenant: config.chroma.tenant, database: config.chroma.database });
}

/** A fail-fast producer connection and the queues on it, or a RedisUnavailableError that says how to get Redis. */
export async function connectQueues(config: Config, logger: Logger): Promise<{ redis: Redis; queues: QueueSet }> {
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
