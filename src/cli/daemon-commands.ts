import type { Command } from "commander";
import type { OutputOptions } from "./output.js";

// The daemons (workers, the scheduler, the ops server with its dashboard, a local Chroma) are imported when one
// starts: the other commands, and help, need none of them.

export function registerDaemonCommands(program: Command): void {
  program
    .command("worker")
    .description("run the workers of every job kind and the ops server (/livez /readyz /metrics /dashboard)")
    .option("--json", "print the start-up summary as JSON")
    .action(async (options: OutputOptions) => {
      const { runWorker } = await import("./daemons.js");
      await runWorker(options);
    });

  program
    .command("scheduler")
    .description("enqueue the jobs of the schedule file at their cron times")
    .option("--json", "print the start-up summary as JSON")
    .action(async (options: OutputOptions) => {
      const { runScheduler } = await import("./daemons.js");
      await runScheduler(options);
    });

  program
    .command("start")
    .description("all in one for a first try: worker, scheduler and dashboard, with a local Chroma when CHROMA_URL is unset")
    .option("--json", "print the start-up summary as JSON")
    .action(async (options: OutputOptions) => {
      const { runAll } = await import("./daemons.js");
      await runAll(options);
    });
}
