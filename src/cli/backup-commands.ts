import type { Command } from "commander";
import { ConfigError, describeIssues } from "../config/config-error.js";
import type { KeepPolicy } from "../storage/retention/retention.js";
import { payloadFromFlags, withJobFlags } from "./job-flags.js";
import { printResult, type OutputOptions } from "./output.js";

// The stores, the schedule and the job runner are imported by each action when it runs, not with the commands.

type Flags = OutputOptions & Record<string, unknown>;

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** The retention of the first backup entry of the schedule that covers a collection, if any. */
async function scheduledKeep(collection: string): Promise<KeepPolicy | undefined> {
  const [{ runtimeFor }, { loadSchedule }, { resolveCollections }] = await Promise.all([
    import("./runtime.js"),
    import("../scheduling/schedule-file.js"),
    import("../scheduling/collection-globs.js"),
  ]);
  const { config } = runtimeFor("command");
  const schedule = loadSchedule(config.schedule.file, config.schedule.explicit);
  for (const entry of schedule.jobs) {
    const keep = (entry as { keep?: KeepPolicy }).keep;
    if (entry.kind === "backup" && keep && resolveCollections(entry.collections, [collection]).collections.length > 0) return keep;
  }
  return undefined;
}

export function registerBackupCommands(program: Command): void {
  withJobFlags(
    program
      .command("restore <backupId>")
      .description("restore a backup into a collection (a new one unless --replace); every chunk is verified before any write")
      .option("--json", "print the result as one JSON object"),
    ["to", "replace", "batchSize"],
  ).action(async (backupId: string, flags: Flags) => {
    const payload = { ...payloadFromFlags(flags), backupId };
    const { runInline } = await import("./inline-run.js");
    await runInline("restore", payload, flags, { backupId: "<backupId>" });
  });

  const backups = program.command("backups").description("list, verify and prune backups");

  backups
    .command("list")
    .description("complete backups (those with a manifest), newest first")
    .option("--collection <name>", "only this collection's")
    .option("--json", "print as one JSON object")
    .action(async (flags: OutputOptions & { collection?: string }) => {
      const [{ runtimeFor, backupStoreOf }, { collectionName }, { completeBackups }, { soleBytes }] = await Promise.all([
        import("./runtime.js"),
        import("../jobs/payload-fields.js"),
        import("../storage/backup-format/backup-catalog.js"),
        import("../storage/backup-format/content-store.js"),
      ]);
      const { config } = runtimeFor("command");
      // The name becomes a path in a file:// store: checked like every collection name before any store is touched.
      const checked = collectionName.optional().safeParse(flags.collection);
      if (!checked.success) throw new ConfigError(describeIssues(checked.error.issues, flags.collection, () => "--collection"));
      const store = backupStoreOf(config);
      const { backups: entries, damaged } = await completeBackups(store, checked.data);
      const sole = soleBytes(entries);
      const result = {
        store: store.description,
        backups: entries.map(({ manifest: m, bytes }) => ({
          backupId: m.backupId,
          collection: m.collection.name,
          startedAt: m.startedAt,
          records: m.records,
          bytes,
          /** What this backup alone holds (chunks no other backup shares, and its manifest): what pruning it frees. */
          ownBytes: sole.get(m.backupId) ?? bytes,
          chunks: m.chunks.length,
          durationMs: m.durationMs,
          consistent: m.consistent,
        })),
        damaged,
      };
      printResult(result, flags, (r) => {
        const width = Math.max(10, ...r.backups.map((b) => b.collection.length));
        const row = (id: string, collection: string, records: string, size: string, own: string, duration: string, consistent: string) =>
          `  ${id.padEnd(26)}  ${collection.padEnd(width)}  ${records.padStart(9)}  ${size.padStart(11)}  ${own.padStart(11)}  ${duration.padStart(9)}  ${consistent}`;
        return [
          `${r.backups.length} backups in ${r.store}`,
          ...(r.backups.length > 0 ? [row("backup id", "collection", "records", "size", "own", "duration", "consistent")] : []),
          ...r.backups.map((b) =>
            row(b.backupId, b.collection, String(b.records), mib(b.bytes), mib(b.ownBytes), `${(b.durationMs / 1000).toFixed(1)} s`, b.consistent ? "yes" : "no (changed while read)"),
          ),
          ...r.damaged.map((d) => `  DAMAGED ${d.backupId} ${d.collection}: ${d.problem}`),
        ].join("\n");
      });
    });

  withJobFlags(
    backups
      .command("verify <backupId>")
      .description("download chunks and check size, SHA-256, decoding and record counts; non-zero exit naming a bad chunk")
      .option("--json", "print the result as one JSON object"),
    ["samplePercent"],
  ).action(async (backupId: string, flags: Flags) => {
    const [{ runtimeFor, backupStoreOf }, { findBackup }, { runInline }] = await Promise.all([
      import("./runtime.js"),
      import("../storage/backup-format/backup-catalog.js"),
      import("./inline-run.js"),
    ]);
    const { config } = runtimeFor("command");
    const manifest = await findBackup(backupStoreOf(config), backupId);
    await runInline("verify", { ...payloadFromFlags(flags), collection: manifest.collection.name, backupId }, flags);
  });

  withJobFlags(
    backups
      .command("prune")
      .description("apply retention (restic forget rules) and collect leftovers of interrupted backups")
      .option("--json", "print the result as one JSON object"),
    ["collection", "dryRun", "last", "daily", "weekly", "monthly", "leftoverGraceHours"],
  ).action(async (flags: Flags) => {
    const payload = payloadFromFlags(flags);
    if (typeof payload.collection !== "string") throw new ConfigError("backups prune needs --collection NAME");
    payload.keep ??= await scheduledKeep(payload.collection);
    if (!payload.keep) {
      throw new ConfigError(
        `no retention for ${payload.collection}: pass --keep-last/--keep-daily/--keep-weekly/--keep-monthly or give its backup schedule entry a keep`,
      );
    }
    const { runInline } = await import("./inline-run.js");
    await runInline("prune", payload, flags);
  });
}
