import type { Command } from "commander";
import { ConfigError } from "../config/config-error.js";
import { DEFAULTS } from "../config/defaults.js";
import { checkReadiness } from "../ops/readiness.js";
import { SERVED_KINDS } from "../queues/served-kinds.js";
import { EXIT, printResult, type OutputOptions } from "./output.js";

// The schedule's parser, Redis, BullMQ and the Chroma client are imported by the action that needs them.

/** How many finished jobs per queue `status` reads to find the last result per collection. */
const RECENT_JOBS = 200;

export function registerInfoCommands(program: Command): void {
  program
    .command("schedule")
    .description("show the effective schedule with each entry's next run times")
    .option("--count <n>", "next run times to show per entry", "3")
    .option("--json", "print as one JSON object")
    .action(async (flags: OutputOptions & { count: string }) => {
      const count = Number(flags.count);
      if (!Number.isInteger(count) || count < 1 || count > 100) {
        throw new ConfigError(`--count: "${flags.count}" must be a whole number from 1 to 100`);
      }
      const [{ runtimeFor }, { loadSchedule }, { nextSlots }] = await Promise.all([
        import("./runtime.js"),
        import("../scheduling/schedule-file.js"),
        import("../scheduling/slots.js"),
      ]);
      const { config } = runtimeFor("command");
      const schedule = loadSchedule(config.schedule.file, config.schedule.explicit);
      const now = new Date();
      const result = {
        source: schedule.source,
        timezone: schedule.timezone,
        jobs: schedule.jobs.map((entry) => ({
          ...entry,
          nextRuns: nextSlots(entry.cron, schedule.timezone, now, count).map((d) => d.toISOString()),
        })),
      };
      printResult(result, flags, (r) =>
        [
          `schedule: ${r.source} (timezone ${r.timezone})`,
          ...r.jobs.map(
            (j) => `  ${j.kind.padEnd(8)} ${JSON.stringify(j.cron).padEnd(18)} ${j.collections.join(",")}\n           next: ${j.nextRuns.join(", ")}`,
          ),
        ].join("\n"),
      );
    });

  program
    .command("status")
    .description("queue counts, recent failures, and the last result of each kind per collection; exits 1 unless Redis and Chroma answer")
    .option("--json", "print as one JSON object")
    .action(async (flags: OutputOptions) => {
      const { chromaStoreOf, connectQueues, runtimeFor } = await import("./runtime.js");
      const { config, logger } = runtimeFor("command");
      const { redis, queues } = await connectQueues(config, logger);
      try {
        const chroma = await chromaStoreOf(config);
        const readiness = await checkReadiness(redis, chroma, DEFAULTS.checks.timeoutMs);
        const kinds = await Promise.all(
          SERVED_KINDS.map(async (kind) => {
            const queue = queues.get(kind);
            const [counts, failed, completed] = await Promise.all([
              queue.getJobCounts("waiting", "active", "delayed", "completed", "failed"),
              queue.getFailed(0, 4),
              queue.getCompleted(0, RECENT_JOBS - 1),
            ]);
            const last: Record<string, { finishedAt: string | null; result: unknown }> = {};
            for (const job of completed) {
              const collection = String(job.data?.collection ?? "");
              const known = last[collection];
              const finishedAt = job.finishedOn ?? 0;
              if (!known || Date.parse(known.finishedAt ?? "0") < finishedAt) {
                last[collection] = { finishedAt: finishedAt ? new Date(finishedAt).toISOString() : null, result: job.returnvalue };
              }
            }
            return {
              kind,
              counts,
              recentFailures: failed.map((job) => ({
                jobId: job.id,
                collection: job.data?.collection,
                failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
                reason: job.failedReason,
              })),
              lastResults: last,
            };
          }),
        );
        const result = { prefix: config.queuePrefix, readiness, kinds };
        printResult(result, flags, (r) =>
          [
            `redis ${r.readiness.checks.redis.ok ? "ok" : r.readiness.checks.redis.error}; chroma ${r.readiness.checks.chroma.ok ? "ok" : r.readiness.checks.chroma.error}`,
            ...r.kinds.map((k) =>
              [
                `${k.kind}: ${Object.entries(k.counts).map(([s, n]) => `${s} ${n}`).join(", ")}`,
                ...Object.entries(k.lastResults).map(([c, v]) => `  last ${c}: ${v.finishedAt}`),
                ...k.recentFailures.map((f) => `  failed ${f.collection} at ${f.failedAt}: ${f.reason}`),
              ].join("\n"),
            ),
          ].join("\n"),
        );
        if (!readiness.ready) {
          // Scripts and health checks read the exit code: the report above is printed either way.
          const reasons = Object.values(readiness.checks).flatMap((c) => (c.error ? [c.error] : []));
          process.stderr.write(`vectorkeeper: not ready: ${reasons.join("; ")}\n`);
          process.exitCode = EXIT.failed;
        }
      } finally {
        await queues.close();
        redis.disconnect();
      }
    });
}
