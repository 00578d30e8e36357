import type { Command } from "commander";
import { ConfigError } from "../config/config-error.js";
import { isServedKind, SERVED_KINDS, unknownKindMessage, type ServedKind } from "../queues/served-kinds.js";
import { payloadFromFlags, withJobFlags } from "./job-flags.js";
import type { OutputOptions } from "./output.js";

// What runs a job is imported by the action that needs it, once the flags are read: help and a mistyped command, flag
// or kind load none of it, and a bad value loads the job schemas (the catalogue) but no Chroma, Redis, BullMQ or S3
// client.

function servedKind(kind: string): ServedKind {
  if (!isServedKind(kind)) throw new ConfigError(unknownKindMessage(kind));
  return kind;
}

export function registerJobCommands(program: Command): void {
  withJobFlags(
    program
      .command("run")
      .argument("<kind>", `the job kind: ${SERVED_KINDS.join(", ")}`)
      .description("run one job inline, without the queues (for scripts and first aid)")
      .option("--all", "run it for every collection on the server (not vectorkeeper's own __vk collections)")
      .option("--json", "print the result as one JSON object"),
  ).action(async (kindArg: string, flags: OutputOptions & Record<string, unknown> & { all?: boolean }) => {
    const kind = servedKind(kindArg);
    const payload = payloadFromFlags(flags);
    const { runForAll, runInline } = await import("./inline-run.js");
    if (flags.all) await runForAll(kind, payload, flags);
    else await runInline(kind, payload, flags);
  });

  withJobFlags(
    program
      .command("enqueue")
      .argument("<kind>", `the job kind: ${SERVED_KINDS.join(", ")}`)
      .description("put a job on its queue; --wait waits for its result")
      .option("--wait", "wait for the job to finish and print its result")
      .option("--timeout <seconds>", "with --wait: give up after this long", "3600")
      .option("--json", "print the result as one JSON object"),
  ).action(async (kindArg: string, flags: OutputOptions & Record<string, unknown> & { wait?: boolean; timeout: string }) => {
    const kind = servedKind(kindArg);
    const timeoutSeconds = Number(flags.timeout);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
      throw new ConfigError(`--timeout: "${flags.timeout}" is not a positive number of seconds`);
    }
    const payload = payloadFromFlags(flags);
    const { enqueueJob } = await import("./enqueue-job.js");
    await enqueueJob(kind, payload, flags, timeoutSeconds);
  });
}
