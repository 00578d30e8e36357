import { ConfigError } from "../config/config-error.js";
import type { JobContext } from "../jobs/job-context.js";
import { withThrottledProgress } from "../jobs/progress-throttle.js";
import { definitionOf } from "../queues/catalogue.js";
import { cliHolder } from "../queues/locks.js";
import { isServedKind, type ServedKind } from "../queues/served-kinds.js";
import { LastSuccessStore } from "../ops/last-success.js";
import { resolveCollections } from "../scheduling/collection-globs.js";
import { checkedPayload } from "./checked-payload.js";
import type { FlagLabels } from "./job-flags.js";
import { humanResult, printResult, reportRefusals, type OutputOptions } from "./output.js";
import { progressLine } from "./progress-line.js";

/** Runs jobs in this process: the same processors as the workers, with a progress line on a terminal. */
async function executeInline(kind: ServedKind, payloads: Record<string, unknown>[], labels?: FlagLabels): Promise<unknown[]> {
  const checked = payloads.map((payload) => checkedPayload(kind, payload, labels));
  // Loaded once the payloads pass: a bad value is answered without the config, the logger and the stores.
  const { backupStoreOf, chromaStoreOf, inlineLocks, runtimeFor } = await import("./runtime.js");
  const { config, logger } = runtimeFor("command");
  // Ctrl-C asks the job to stop at its next safe point; a second one ends the process.
  const interrupted = new AbortController();
  process.once("SIGINT", () => {
    interrupted.abort(new Error("interrupted"));
    process.once("SIGINT", () => process.exit(130));
  });
  const locks = inlineLocks(config, logger);
  const chroma = await chromaStoreOf(config);
  const backupStore = backupStoreOf(config);
  const results: unknown[] = [];
  // Staleness alerts count runs from the CLI too: the success goes where the workers export it from.
  const recordSuccess = async (jobKind: ServedKind, collection: string) => {
    const redis = await locks.redis();
    if (!redis) return;
    await new LastSuccessStore(redis, config.queuePrefix)
      .record(jobKind, collection)
      .catch((error: unknown) => logger.debug({ err: error }, "could not record the last success in Redis"));
  };
  const runOne = async (jobKind: ServedKind, payload: Record<string, unknown> & { collection: string }): Promise<unknown> => {
    const line = progressLine(`${jobKind} ${payload.collection}`);
    const jobLogger = logger.child({ kind: jobKind, collection: payload.collection });
    const ctx: JobContext = {
      logger: jobLogger,
      chroma,
      backupStore,
      locks,
      runner: cliHolder(),
      ownProcess: true,
      signal: interrupted.signal,
      progress: (p) => line.update(p),
      // Inline, a follow-up runs right after; its outcome is logged, the command's result stays the job's own.
      followUp: async (next, followPayload) => {
        if (!isServedKind(next)) return;
        const outcome = await runOne(next, checkedPayload(next, followPayload));
        jobLogger.info({ followUp: next, outcome }, "follow-up done");
      },
    };
    try {
      const result = await withThrottledProgress(ctx, (throttled) => definitionOf(jobKind).process(payload, throttled));
      if (!(result as { skipped?: string } | null)?.skipped) await recordSuccess(jobKind, payload.collection);
      return result;
    } catch (error) {
      throw chroma.withOrigin(error);
    } finally {
      line.done();
    }
  };
  try {
    for (const payload of checked) results.push(await runOne(kind, payload));
  } finally {
    locks.close();
  }
  return results;
}

/** Runs one job inline and prints its result; a job that stood down exits 1 with its reason, one that refused 2. */
export async function runInline(
  kind: ServedKind,
  payload: Record<string, unknown>,
  output: OutputOptions,
  labels?: FlagLabels,
): Promise<unknown> {
  const [result] = await executeInline(kind, [payload], labels);
  printResult(result, output, humanResult);
  reportRefusals([result]);
  const skipped = (result as { skipped?: string } | null)?.skipped;
  if (skipped) {
    process.stderr.write(`vectorkeeper: ${skipped}\n`);
    process.exitCode = 1;
  }
  return result;
}

/** `run KIND --all`: the job for every collection on the server, one after another, printed as one object. */
export async function runForAll(kind: ServedKind, payload: Record<string, unknown>, output: OutputOptions): Promise<void> {
  if (payload.collection !== undefined) throw new ConfigError("give --collection or --all, not both");
  const { chromaStoreOf, runtimeFor } = await import("./runtime.js");
  const { config } = runtimeFor("command");
  // As the schedule's "*": vectorkeeper's own collections (restore staging, kept originals, scratch copies) are left out.
  const names = resolveCollections(["*"], await (await chromaStoreOf(config)).listCollectionNames()).collections;
  const results = await executeInline(kind, names.map((collection) => ({ ...payload, collection })));
  printResult({ kind, collections: results }, output, humanResult);
  reportRefusals(results);
}
