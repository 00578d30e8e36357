import type { z } from "zod";
import { PermanentError } from "../errors.js";
import { redactUrl, redactUrlsIn } from "../redact.js";

/** Bad input from outside (env, schedule file, flags, payloads, names of things that do not exist): exit code 2. */
export class ConfigError extends PermanentError {
  override name = "ConfigError";
}

/** Fields whose values must never appear in an error message or a log line. */
const SECRET_FIELD = /TOKEN|PASSWORD|SECRET|KEY|WEBHOOK/i;

/**
 * One line per problem: where it is, the bad value, what is wrong and how to fix it.
 * `where` turns a zod path into the name a user knows (an env var, `jobs[2].cron`).
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  where: (path: readonly PropertyKey[]) => string,
): string {
  return issues
    .map((issue) => {
      const name = where(issue.path);
      const value = valueAt(input, issue.path);
      const shown =
        value === undefined || SECRET_FIELD.test(name) ? "" : ` (got ${redactUrlsIn(JSON.stringify(urlLike(name, value)) ?? "").slice(0, 120)})`;
      return `${name}: ${issue.message}${shown}`;
    })
    .join("; ");
}

/** A URL that failed validation may still carry a password (`http://:pw@`): shown redacted, parseable or not. */
const urlLike = (name: string, value: unknown): unknown =>
  typeof value === "string" && /URL|ENDPOINT/i.test(name) ? redactUrl(value) : value;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
