import { DEFAULTS } from "../config/defaults.js";
import { routeConsoleToLog } from "../console-to-log.js";
import type { Logger } from "../logging.js";

/**
 * Runs `stop` once on the first SIGTERM or SIGINT and exits with its code; a second signal exits at once (1), for
 * the operator who really means it.
 */
export function exitOnSignal(logger: Logger, stop: () => Promise<number>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    stop()
      .then((code) => process.exit(code))
      .catch((error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

/**
 * Keeps a daemon alive through stray errors: logged loudly instead of ending the process silently; and keeps its
 * stderr JSON: libraries' console output becomes rate-limited log lines.
 */
export function logStrayErrors(logger: Logger): void {
  routeConsoleToLog(logger, DEFAULTS.logs.repeatIntervalMs);
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled promise rejection"));
  process.on("uncaughtException", (error) => {
    logger.fatal({ err: error }, "uncaught exception; exiting");
    process.exit(1);
  });
}
