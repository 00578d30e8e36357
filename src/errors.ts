/**
 * A failure that retrying cannot fix: the worker fails such a job at once (UnrecoverableError), the CLI prints its
 * message as one line and exits non-zero, never with a stack trace.
 */
export class PermanentError extends Error {
  override name = "PermanentError";
}

/** Stored data that fails its checks (checksum, record count, manifest): exit code 1, never retried. */
export class IntegrityError extends PermanentError {
  override name = "IntegrityError";
}

/**
 * Another run holds the lease this one needs (a restore into the same target, a drill of the same collection). Not
 * permanent: the queue retries the job with its usual backoff, by when the other run has usually finished; the CLI
 * exits 1.
 */
export class LeaseBusyError extends Error {
  override name = "LeaseBusyError";
}

/**
 * No Redis answers; the message says how to get one. Kept here rather than beside the connection so that the CLI can
 * tell it apart from other failures without loading the Redis client.
 */
export class RedisUnavailableError extends Error {
  override readonly name = "RedisUnavailableError";
  constructor(url: string) {
    const where = (() => {
      try {
        const u = new URL(url);
        return `${u.hostname}:${u.port || 6379}`;
      } catch {
        return url;
      }
    })();
    super(
      `Redis does not answer at ${where} (REDIS_URL). vectorkeeper needs a Redis for its queues: ` +
        "`apt install redis-server`, `brew install redis && brew services start redis`, or `docker compose up -d redis`",
    );
  }
}
