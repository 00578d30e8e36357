import { pino, type Logger } from "pino";
import type { LogLevel } from "./config/env.js";
import { redactUrl, redactUrlsIn } from "./redact.js";

export type { Logger };

/** Keys whose values never reach a log line, wherever they sit in a logged object. */
const SECRET_PATHS = [
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
 * Keys that hold URLs (of Redis, the object store, webhooks): logged with credentials stripped. Not `chroma`: a path
 * that is a prefix of another (`chroma.token`) would shadow it; strings under any key are scrubbed below anyway.
 */
const URL_KEYS = ["url", "redis", "endpoint", "webhook", "backups"];
const URL_PATHS = [...URL_KEYS, ...URL_KEYS.map((key) => `*.${key}`)];
const URL_KEY_SET = new Set(URL_KEYS);

const censor = (value: unknown, path: string[]): unknown => {
  const key = path[path.length - 1] ?? "";
  if (!URL_KEY_SET.has(key)) return "[redacted]";
  return typeof value === "string" ? redactUrl(value) : value;
};

/** Library errors (ioredis, fetch, the AWS SDK) put URLs in their messages; the serialized error is scrubbed too. */
function errSerializer(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown;
  if (!serialized || typeof serialized !== "object") return typeof serialized === "string" ? redactUrlsIn(serialized) : serialized;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(serialized)) out[key] = typeof value === "string" ? redactUrlsIn(value) : value;
  return out;
}

/** Keys whose values are credentials wherever they sit, however deep (header names as well as field names). */
const SECRET_KEY = /^(password|token|secret|authorization|proxy-authorization|x-chroma-token)$/i;

/**
 * Strings anywhere in a logged object (a `reason`, a nested result, a header) lose URL and header credentials, and
 * values under {@link SECRET_KEY} names are replaced, at any depth: the whole object is walked, and an object inside
 * itself (a cycle) is shown as "[Circular]". Errors are the `err` serializer's; bytes are not walked.
 */
function scrub(value: unknown, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === "string") return redactUrlsIn(value);
  if (value === null || typeof value !== "object" || value instanceof Error || ArrayBuffer.isView(value)) return value;
  if (seen.has(value)) return "[Circular]";
  seen.add(value);
  const out: unknown = Array.isArray(value)
    ? value.map((item) => scrub(item, seen))
    : Object.fromEntries(Object.entries(value).map(([key, item]) => [key, SECRET_KEY.test(key) ? "[redacted]" : scrub(item, seen)]));
  seen.delete(value);
  return out;
}

/**
 * pino JSON, one event per line, on stderr: stdout belongs to command results (`--json` prints one object there
 * and nothing else), and containers collect both streams anyway.
 */
export function createLogger(level: LogLevel, destination: number = 2): Logger {
  return pino(
    {
      name: "vectorkeeper",
      level,
      redact: { paths: [...SECRET_PATHS, ...URL_PATHS], censor },
      serializers: { err: errSerializer },
      formatters: { log: (object) => scrub(object) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === "string" ? redactUrlsIn(arg) : arg)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: destination, sync: true }),
  );
}
