import { pino, type Logger } from "pino";
import type { LogLevel } from "./config/env.js";

export type { Logger };

/** Keys whose values never reach a log line, wherever they sit in a logged object. */
const REDACT = [
  "password",
  "token",
  "secret",
  "authorization",
  "*.password",
  "*.token",
  "*.secret",
  "*.authorization",
  "*.headers.authorization",
  '*.headers["x-chroma-token"]',
  "dashboard.password",
  "chroma.token",
];

/**
 * pino JSON, one event per line, on stderr: stdout belongs to command results (`--json` prints one object there
 * and nothing else), and containers collect both streams anyway.
 */
export function createLogger(level: LogLevel, destination: number = 2): Logger {
  return pino(
    {
      name: "vectorkeeper",
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: destination, sync: true }),
  );
}

/** `redis://user:secret@host` → `redis://user:***@host`, for logging URLs that may carry credentials. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "[unparseable url]";
  }
}
