import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { z } from "zod";
import { JOB_KINDS, type JobKind } from "../queues/kinds.js";
import { hasControlCharacters } from "../redact.js";
import { parseChromaEndpoint, type ChromaEndpoint } from "./chroma-endpoint.js";
import { ConfigError, describeIssues } from "./config-error.js";
import { DEFAULTS, type AlertOptions, type SchedulerOptions, type WorkerOptions } from "./defaults.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const urlWithScheme = (schemes: readonly string[], example: string) =>
  z.string().refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${schemes.map((s) => `${s}//`).join(" or ")}; for example ${example}` },
  );

const wholeNumber = (min: number, max: number, hint: string) =>
  z
    .string()
    .regex(/^\d+$/, { message: `must be a whole number (${hint})` })
    .transform(Number)
    .pipe(z.number().min(min, { message: `must be at least ${min} (${hint})` }).max(max, { message: `must be at most ${max} (${hint})` }));

const booleanFlag = z
  .enum(["true", "false", "1", "0", "yes", "no"], { message: "must be true or false" })
  .transform((v) => v === "true" || v === "1" || v === "yes");

/**
 * Jobs of one kind per process at most: BullMQ fetches that many at once and each holds pages in memory and sockets
 * open, so far beyond this a process runs out of memory or file descriptors before it gains anything.
 */
const MAX_CONCURRENCY = 1000;

const concurrencyList = z
  .string()
  .transform((text, ctx) => {
    const result: Partial<Record<JobKind, number>> = {};
    for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const match = /^([a-z]+)=(\d{1,9})$/.exec(part);
      const kind = match?.[1] as JobKind | undefined;
      const count = Number(match?.[2]);
      if (!match || !kind || !JOB_KINDS.includes(kind) || count < 1 || count > MAX_CONCURRENCY) {
        ctx.addIssue({
          code: "custom",
          message: `"${part.slice(0, 40)}" is not KIND=N with KIND one of ${JOB_KINDS.join(", ")} and N from 1 to ${MAX_CONCURRENCY}; for example probe=4,backup=1`,
        });
        return z.NEVER;
      }
      result[kind] = Number(match[2]);
    }
    return result;
  });

/** `~/…` as the AWS SDK reads it (it expands a leading `~/` itself; no shell does in a .env file or a systemd unit). */
const withHome = (path: string): string => (path.startsWith("~/") ? join(homedir(), path.slice(2)) : path);

function isReadableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The environment as design.md §3 defines it; empty strings count as unset. */
const envFields = z.object({
  REDIS_URL: urlWithScheme(["redis:", "rediss:"], DEFAULTS.redisUrl).default(DEFAULTS.redisUrl),
  VK_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, { message: "must be 1-64 letters, digits, '_', '.' or '-' (no ':')" })
    .default(DEFAULTS.queuePrefix),
  CHROMA_URL: urlWithScheme(["http:", "https:"], DEFAULTS.chromaUrl).optional(),
  CHROMA_TOKEN: z
    .string()
    .refine((token) => !hasControlCharacters(token), {
      message: "contains a control character such as a newline (often the end of a token file); remove it",
    })
    .optional(),
  CHROMA_TENANT: z.string().default(DEFAULTS.chromaTenant),
  CHROMA_DATABASE: z.string().default(DEFAULTS.chromaDatabase),
  VK_CHROMA_MAX_REQUEST_BYTES: wholeNumber(65_536, 2 ** 31, "bytes per write request to Chroma").optional(),
  BACKUP_URL: z
    .string()
    // `file://relative/dir` is refused, not guessed at: by URL rules "relative" is a host name, so the same text
    // means different directories to different tools. `file://./dir` says "relative" unambiguously.
    .regex(/^(s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?|file:\/\/(localhost)?\/.+|file:\/\/\.\.?\/.+)$/, {
      message:
        "must be s3://bucket/prefix, file:///absolute/dir or file://./dir (relative to the working directory); " +
        "file://dir/… would name a host, not a directory",
    })
    .default(DEFAULTS.backupUrl),
  VK_BACKUP_KEY_FILE: z.string().min(1, { message: "must name a file holding the backup passphrase or key" }).optional(),
  S3_ENDPOINT: urlWithScheme(["http:", "https:"], "http://127.0.0.1:9000").optional(),
  S3_REGION: z.string().optional(),
  S3_FORCE_PATH_STYLE: booleanFlag.optional(),
  // Read by the AWS SDK, not by vectorkeeper: checked here so a missing file stops the process with one line, instead
  // of the SDK's chain passing it by and trying instance metadata.
  AWS_SHARED_CREDENTIALS_FILE: z
    .string()
    .refine((path) => isReadableFile(withHome(path)), {
      message: "names no file this process can read; point it at an AWS shared credentials file or unset it",
    })
    .optional(),
  SCHEDULE_FILE: z.string().optional(),
  VK_LOCAL_CHROMA_PORT: wholeNumber(1, 65535, "the port `start` asks for its local Chroma").default(DEFAULTS.localChromaPort),
  HTTP_PORT: wholeNumber(0, 65535, "a TCP port; 0 picks a free one").default(DEFAULTS.httpPort),
  HTTP_HOST: z.string().default(DEFAULTS.httpHost),
  DASHBOARD_USER: z.string().optional(),
  DASHBOARD_PASSWORD: z.string().optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(", ")}` }).optional(),
  VK_CONCURRENCY: concurrencyList.optional(),
  VK_SHUTDOWN_TIMEOUT_MS: wholeNumber(0, 86_400_000, "milliseconds").optional(),
  VK_LEASE_TTL_MS: wholeNumber(1000, 3_600_000, "milliseconds").optional(),
  VK_CATCHUP_WINDOW_SECONDS: wholeNumber(0, 604_800, "seconds; 0 turns catch-up off").optional(),
  VK_ALERT_WEBHOOK_URL: urlWithScheme(["http:", "https:"], "https://hooks.slack.com/services/…").optional(),
  VK_ALERT_WEBHOOK_HEADERS: z
    .string()
    .transform((text, ctx) => {
      try {
        return z.record(z.string(), z.string()).parse(JSON.parse(text));
      } catch {
        ctx.addIssue({ code: "custom", message: 'must be a JSON object of header names to strings, e.g. {"Authorization":"Bearer …"}' });
        return z.NEVER;
      }
    })
    .optional(),
  VK_ALERT_PROBE_FAILURES: wholeNumber(1, 1000, "consecutive failed probes").optional(),
  VK_ALERT_JOB_FAILURES: wholeNumber(1, 1000, "consecutive failed jobs").optional(),
  VK_ALERT_PROBE_LATENCY_MS: wholeNumber(1, 3_600_000, "milliseconds").optional(),
  VK_BACKUP_MAX_AGE_HOURS: wholeNumber(1, 100_000, "hours").optional(),
  VK_WARM_ON_START: booleanFlag.optional(),
});

/**
 * The fields, then what depends on more than one: CHROMA_URL (or the default) with CHROMA_TOKEN as the endpoint every
 * request to Chroma is built from, so a bad combination stops every command before it starts, as CHROMA_URL's problem.
 */
const envSchema = envFields.transform((e, ctx) => {
  const chromaEndpoint = parseChromaEndpoint(e.CHROMA_URL ?? DEFAULTS.chromaUrl, e.CHROMA_TOKEN);
  if ("problem" in chromaEndpoint) {
    ctx.addIssue({ code: "custom", path: ["CHROMA_URL"], message: chromaEndpoint.problem });
    return z.NEVER;
  }
  return { ...e, chromaEndpoint };
});

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  redisUrl: string;
  queuePrefix: string;
  chroma: {
    /** CHROMA_URL; unset means "none configured": `start` then runs a local Chroma, other commands use the default URL. */
    url: string | undefined;
    /** Where requests go and the headers they carry: CHROMA_URL (or the default) and CHROMA_TOKEN, parsed once here. */
    endpoint: ChromaEndpoint;
    tenant: string;
    database: string;
    /** Request-body bytes one write sends at most. */
    maxRequestBytes: number;
  };
  backupUrl: string;
  /** VK_BACKUP_KEY_FILE: backups are encrypted with the passphrase or key it holds (read when the store opens). */
  backupKeyFile: string | undefined;
  s3: { endpoint: string | undefined; region: string | undefined; forcePathStyle: boolean };
  /** The schedule file and whether the user named it (a named file that is missing is an error). */
  schedule: { file: string; explicit: boolean };
  /** VK_LOCAL_CHROMA_PORT: the port `start` asks for the local Chroma it runs when CHROMA_URL is unset. */
  localChromaPort: number;
  http: { port: number; host: string };
  /** Undefined unless both user and password are set: then the dashboard is not served. */
  dashboard: { user: string; password: string } | undefined;
  /** Unset means each command's own default: `info` for daemons, `warn` for one-shot commands. */
  logLevel: LogLevel | undefined;
  worker: WorkerOptions;
  scheduler: SchedulerOptions;
  alerts: AlertOptions & { webhook: { url: string; headers: Record<string, string> } | undefined };
  warmOnStart: boolean;
}

/** Reads `.env` from the working directory, if any, under the real environment (which wins). */
export function environmentWithDotEnv(env: NodeJS.ProcessEnv = process.env, dotEnvPath = ".env"): NodeJS.ProcessEnv {
  if (!existsSync(dotEnvPath)) return env;
  return { ...parseEnv(readFileSync(dotEnvPath, "utf8")), ...env };
}

export function loadConfig(env: NodeJS.ProcessEnv = environmentWithDotEnv()): Config {
  const input = Object.fromEntries(
    Object.keys(envFields.shape)
      .map((key) => [key, env[key]] as const)
      .filter(([, value]) => value !== undefined && value !== ""),
  );
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      `invalid environment: ${describeIssues(parsed.error.issues, input, (path) => String(path[0] ?? "environment"))}`,
    );
  }
  const e = parsed.data;
  if (Boolean(e.DASHBOARD_USER) !== Boolean(e.DASHBOARD_PASSWORD)) {
    throw new ConfigError("invalid environment: DASHBOARD_USER and DASHBOARD_PASSWORD must be set together (or neither)");
  }
  const catchUpWindowMs =
    e.VK_CATCHUP_WINDOW_SECONDS === undefined ? DEFAULTS.scheduler.catchUpWindowMs : e.VK_CATCHUP_WINDOW_SECONDS * 1000;
  return {
    redisUrl: e.REDIS_URL,
    queuePrefix: e.VK_QUEUE_PREFIX,
    chroma: {
      url: e.CHROMA_URL,
      endpoint: e.chromaEndpoint,
      tenant: e.CHROMA_TENANT,
      database: e.CHROMA_DATABASE,
      maxRequestBytes: e.VK_CHROMA_MAX_REQUEST_BYTES ?? DEFAULTS.chroma.maxRequestBytes,
    },
    backupUrl: e.BACKUP_URL,
    backupKeyFile: e.VK_BACKUP_KEY_FILE,
    s3: { endpoint: e.S3_ENDPOINT, region: e.S3_REGION, forcePathStyle: e.S3_FORCE_PATH_STYLE ?? false },
    schedule: { file: e.SCHEDULE_FILE ?? DEFAULTS.scheduleFile, explicit: e.SCHEDULE_FILE !== undefined },
    localChromaPort: e.VK_LOCAL_CHROMA_PORT,
    http: { port: e.HTTP_PORT, host: e.HTTP_HOST },
    dashboard:
      e.DASHBOARD_USER && e.DASHBOARD_PASSWORD ? { user: e.DASHBOARD_USER, password: e.DASHBOARD_PASSWORD } : undefined,
    logLevel: e.LOG_LEVEL,
    worker: {
      concurrency: { ...DEFAULTS.worker.concurrency, ...e.VK_CONCURRENCY },
      shutdownTimeoutMs: e.VK_SHUTDOWN_TIMEOUT_MS ?? DEFAULTS.worker.shutdownTimeoutMs,
      leaseTtlMs: e.VK_LEASE_TTL_MS ?? DEFAULTS.worker.leaseTtlMs,
    },
    scheduler: {
      ...DEFAULTS.scheduler,
      catchUpWindowMs,
      slotClaimTtlMs: Math.max(DEFAULTS.scheduler.slotClaimTtlMs, catchUpWindowMs * 2),
    },
    alerts: {
      ...DEFAULTS.alerts,
      probeAfterFailures: e.VK_ALERT_PROBE_FAILURES ?? DEFAULTS.alerts.probeAfterFailures,
      jobAfterFailures: e.VK_ALERT_JOB_FAILURES ?? DEFAULTS.alerts.jobAfterFailures,
      probeLatencyMs: e.VK_ALERT_PROBE_LATENCY_MS ?? DEFAULTS.alerts.probeLatencyMs,
      backupMaxAgeHours: e.VK_BACKUP_MAX_AGE_HOURS ?? DEFAULTS.alerts.backupMaxAgeHours,
      webhook: e.VK_ALERT_WEBHOOK_URL ? { url: e.VK_ALERT_WEBHOOK_URL, headers: e.VK_ALERT_WEBHOOK_HEADERS ?? {} } : undefined,
    },
    warmOnStart: e.VK_WARM_ON_START ?? DEFAULTS.warmOnStart,
  };
}
