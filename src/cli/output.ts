import { ConfigError } from "../config/config-error.js";
import { LeaseBusyError, PermanentError, RedisUnavailableError } from "../errors.js";
import { redactUrlsIn } from "../redact.js";

export interface OutputOptions {
  json?: boolean;
}

/** Exit codes: 0 success, 1 the operation failed, 2 bad input or configuration. */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/** A command's result: one JSON object on stdout under --json, else the human rendering; URL credentials never shown. */
export function printResult<T>(result: T, options: OutputOptions, human: (result: T) => string): void {
  process.stdout.write(redactUrlsIn(options.json ? `${JSON.stringify(result)}\n` : `${human(result)}\n`));
}

/** A job's result for people: the same object as under --json, indented. */
export const humanResult = (result: unknown): string => JSON.stringify(result, null, 2);

export function exitCodeOf(error: unknown): number {
  return error instanceof ConfigError ? EXIT.badInput : EXIT.failed;
}

/** One line, never a stack trace: the message of the error, and the first line of it only. */
export function oneLine(error: unknown): string {
  if (error instanceof PermanentError || error instanceof LeaseBusyError || error instanceof RedisUnavailableError) return redactUrlsIn(error.message);
  const message = error instanceof Error ? error.message : String(error);
  return redactUrlsIn(message.split("\n")[0] || "unknown error");
}

/** Reports a failure as one line on stderr (and as `{"error": …}` on stdout under --json) and sets the exit code. */
export function reportFailure(error: unknown, json: boolean): void {
  const line = oneLine(error);
  process.stderr.write(`vectorkeeper: ${line}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: line })}\n`);
  process.exitCode = exitCodeOf(error);
}

/**
 * A command-line usage error from commander ("error: unknown command 'bakup'" and its "(Did you mean backups?)" on
 * the next line) as one line, exit 2.
 */
export function reportUsageError(message: string, json: boolean): void {
  const line = message
    .replace(/^error: /, "")
    .split("\n")
    .map((part) => part.trim())
    .filter(Boolean)
    .join(" ")
    .replace("(Did you mean", "(did you mean");
  process.stderr.write(`vectorkeeper: ${line}; see --help\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: line })}\n`);
  process.exitCode = EXIT.badInput;
}

/**
 * Results that say part of what was asked was refused (a --drop-old that kept a collection back, its reasons in
 * `refused`): each such line on stderr and exit 2, after the result itself was printed.
 */
export function reportRefusals(results: unknown[]): void {
  for (const result of results) {
    const refused = (result as { refused?: unknown } | null)?.refused;
    if (typeof refused !== "string" || !refused) continue;
    process.stderr.write(`vectorkeeper: ${redactUrlsIn(refused)}\n`);
    process.exitCode = EXIT.badInput;
  }
}
