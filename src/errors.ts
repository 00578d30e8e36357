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
