import { existsSync, readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { z } from "zod";
import { ConfigError, describeIssues } from "../config/config-error.js";
import { definitionOf, SERVED_KINDS, type ServedKind } from "../queues/catalogue.js";
import { cronProblem } from "./slots.js";

const collectionPatterns = z
  .array(
    z.string().regex(/^[A-Za-z0-9._*?-]+$/, {
      message: "must be a collection name or a glob of letters, digits, '.', '_', '-', '*' and '?'",
    }),
  )
  .min(1, { message: 'must list at least one collection name or glob, e.g. ["*"]' });

/** The entry schema of one kind: its payload options (all but `collection`) plus when and for what it runs. */
function entrySchemaOf<K extends ServedKind>(kind: K) {
  return definitionOf(kind)
    .payload.omit({ collection: true })
    .extend({
      kind: z.literal(kind),
      cron: z.string({ message: 'is required: a cron expression such as "0 3 * * *"' }),
      collections: collectionPatterns,
    })
    .strict();
}

const entrySchemas = SERVED_KINDS.map((kind) => entrySchemaOf(kind));

/**
 * The longest IANA zone name is 32 characters (America/Argentina/ComodRivadavia); anything much longer is refused
 * before Intl sees it, which takes over a minute to reject a megabyte of text.
 */
const MAX_TIMEZONE_LENGTH = 64;

const isTimezone = (tz: string) => {
  if (tz.length > MAX_TIMEZONE_LENGTH) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};

const scheduleSchema = z
  .object({
    timezone: z
      .string()
      .refine(isTimezone, { message: `is not an IANA time zone (at most ${MAX_TIMEZONE_LENGTH} characters); use e.g. "UTC" or "Europe/Berlin"` })
      .default("UTC"),
    jobs: z.array(
      z.looseObject({ kind: z.string() }).superRefine((entry, ctx) => {
        if (!SERVED_KINDS.includes(entry.kind as ServedKind)) {
          ctx.addIssue({
            code: "custom",
            path: ["kind"],
            message: `is not a job kind this build runs; use one of ${SERVED_KINDS.join(", ")}`,
          });
        }
      }),
    ),
  })
  .strict();

export type ScheduleEntry = z.output<(typeof entrySchemas)[number]>;

export interface Schedule {
  timezone: string;
  jobs: ScheduleEntry[];
  /** Where it came from: a file path, or "built-in default". */
  source: string;
}

/** The schedule `start` and the scheduler use when there is no schedule file. */
export const DEFAULT_SCHEDULE_YAML = `# vectorkeeper's built-in schedule, used when there is no schedule file
timezone: UTC
jobs:
  - { kind: probe, cron: "* * * * *", collections: ["*"] }
  - { kind: backup, cron: "0 3 * * *", collections: ["*"], keep: { last: 3, daily: 7, weekly: 4, monthly: 6 } }
`;

/** Validates a parsed schedule; every message names the entry (`jobs[2].cron`), the bad value and the fix. */
export function parseSchedule(input: unknown, source: string): Schedule {
  const where = (path: readonly PropertyKey[]) =>
    path.reduce<string>((acc, key) => (typeof key === "number" ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), "");
  const fail = (message: string): never => {
    throw new ConfigError(`schedule (${source}): ${message}`);
  };
  const top = scheduleSchema.safeParse(input ?? {});
  if (!top.success) return fail(describeIssues(top.error.issues, input, where));

  const jobs = top.data.jobs.map((raw, index) => {
    const schema = entrySchemas[SERVED_KINDS.indexOf(raw.kind as ServedKind)]!;
    const entry = schema.safeParse(raw);
    if (!entry.success) {
      return fail(describeIssues(entry.error.issues, raw, (path) => where(["jobs", index, ...path])));
    }
    const problem = cronProblem(entry.data.cron, top.data.timezone);
    if (problem) fail(`jobs[${index}].cron: "${entry.data.cron}" ${problem}`);
    return entry.data;
  });
  return { timezone: top.data.timezone, jobs, source };
}

/**
 * Aliases a schedule might reasonably use (a shared `keep:` block); a few nested aliases that each repeat the one
 * before ("billion laughs") would expand to gigabytes.
 */
const MAX_ALIASES = 100;

export function parseScheduleYaml(text: string, source: string): Schedule {
  const doc = parseDocument(text, { uniqueKeys: true });
  const first = doc.errors[0];
  if (first) throw new ConfigError(`schedule (${source}): not valid YAML: ${first.message.split("\n")[0]}`);
  let input: unknown;
  try {
    input = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new ConfigError(`schedule (${source}): refused: ${reason} (at most ${MAX_ALIASES} alias expansions; write entries out instead)`);
  }
  const forbidden = forbiddenKeyPath(input, "");
  if (forbidden !== undefined) {
    throw new ConfigError(`schedule (${source}): ${forbidden}: "__proto__", "constructor" and "prototype" are not allowed as keys; remove it`);
  }
  return parseSchedule(input, source);
}

/** Keys that would reach an object's prototype once spread into a payload: refused by name, not silently dropped. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function forbiddenKeyPath(value: unknown, at: string): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = forbiddenKeyPath(item, `${at}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const path = at ? `${at}.${key}` : key;
    if (FORBIDDEN_KEYS.has(key)) return path;
    const found = forbiddenKeyPath((value as Record<string, unknown>)[key], path);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The schedule file when it exists; the built-in default when it does not and nobody named it.
 * A file named in SCHEDULE_FILE that is missing is an error: running a different schedule silently would be worse.
 */
export function loadSchedule(file: string, explicit: boolean): Schedule {
  if (!existsSync(file)) {
    if (explicit) throw new ConfigError(`SCHEDULE_FILE: ${file} does not exist; create it or unset SCHEDULE_FILE`);
    return parseScheduleYaml(DEFAULT_SCHEDULE_YAML, "built-in default");
  }
  return parseScheduleYaml(readFileSync(file, "utf8"), file);
}

/** The payload a schedule entry gives one collection. */
export function payloadOf(entry: ScheduleEntry, collection: string): Record<string, unknown> {
  const { kind: _kind, cron: _cron, collections: _collections, ...options } = entry;
  return { ...options, collection };
}
