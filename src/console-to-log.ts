import { format } from "node:util";
import type { Logger } from "./logging.js";
import { ThrottledErrorLog } from "./throttled-log.js";

/**
 * Libraries write to the console on their own: BullMQ warns "IMPORTANT! Eviction policy is …" once per connection
 * (a worker opens some thirty) and prints errors it cannot hand to a listener, ioredis prints unhandled connection
 * errors, the chromadb client warns about deprecated options. In a daemon, whose stderr is a stream of JSON lines,
 * each of those becomes one rate-limited JSON line instead of free text spread over several lines.
 */
export function routeConsoleToLog(logger: Logger, intervalMs: number): void {
  const warnings = new ThrottledErrorLog(logger, "library", intervalMs, Date.now, "warn");
  const errors = new ThrottledErrorLog(logger, "library", intervalMs);
  const text = (args: unknown[]) => format(...args);
  console.warn = (...args: unknown[]) => warnings.error(text(args), { source: "console" });
  console.error = (...args: unknown[]) => errors.error(text(args), { source: "console" });
  console.log = (...args: unknown[]) => logger.info({ source: "console" }, text(args).split("\n")[0] ?? "");
  console.info = console.log;
}
