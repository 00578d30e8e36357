import { z } from "zod";
import { ConfigError, describeIssues } from "../config/config-error.js";

/** Every point a run can stop at; a name not listed here is refused rather than waited for in vain. */
export const FAILPOINTS = [
  "archive:after-copy",
  "archive:after-manifest",
  "backup:after-first-page",
  "backup:before-manifest",
  "drill:restored",
  "reindex:between-renames",
  "reindex:copying",
  "reindex:pass",
  "reindex:settled",
  "restore:before-swap",
  "tune:copied",
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

const FailpointEnv = z.object({
  VK_FAILPOINT: z.enum(FAILPOINTS, { message: `must be one of ${FAILPOINTS.join(", ")}` }).optional(),
  VK_FAILPOINT_PAUSE: z.enum(["0", "1"], { message: "must be 1 (pause until SIGUSR2) or 0 (stop for good)" }).optional(),
});
let parsed: z.infer<typeof FailpointEnv> | undefined;

/** Read once: a mistyped failpoint variable would otherwise make a crash test wait for a stop that never comes. */
function failpointEnv(): z.infer<typeof FailpointEnv> {
  if (parsed) return parsed;
  const input = { VK_FAILPOINT: process.env.VK_FAILPOINT || undefined, VK_FAILPOINT_PAUSE: process.env.VK_FAILPOINT_PAUSE || undefined };
  const result = FailpointEnv.safeParse(input);
  if (!result.success) throw new ConfigError(describeIssues(result.error.issues, input, (path) => String(path[0])));
  return (parsed = result.data);
}

/**
 * Fault injection for crash tests, in the spirit of kopia's: when `VK_FAILPOINT` names a point, the process announces
 * it on stderr and stops there, so a test can SIGKILL it at exactly that step. With `VK_FAILPOINT_PAUSE=1` it goes on
 * when it receives SIGUSR2 instead, so a test can change the data under a run between two of its steps (say, between
 * reading records and deleting them). Unset, it costs one comparison.
 */
export async function failpoint(name: Failpoint): Promise<void> {
  const env = failpointEnv();
  if (env.VK_FAILPOINT !== name) return;
  if (env.VK_FAILPOINT_PAUSE !== "1") {
    process.stderr.write(`failpoint ${name} reached\n`);
    await new Promise<never>(() => undefined);
  }
  // A signal listener does not keep the process alive on its own; the timer does, until the signal comes.
  const alive = setInterval(() => undefined, 60_000);
  const resumed = new Promise<void>((resolve) => process.once("SIGUSR2", () => resolve())).finally(() => clearInterval(alive));
  process.stderr.write(`failpoint ${name} reached\n`);
  await resumed;
  process.stderr.write(`failpoint ${name} resumed\n`);
}
