#!/usr/bin/env -S node --max-semi-space-size=4
// A 4 MB young generation (V8's default is 16 MB): vectorkeeper's work is a stream of short-lived page buffers, and
// larger semi-spaces only let that garbage pile up (about 40 MB more peak RSS for the same speed in the backup bench).
// `npm start` and the Docker image pass the same flag.
import { Command, CommanderError } from "commander";
import { TOOL_VERSION } from "../version.js";
import { EXIT, reportFailure, reportUsageError } from "./output.js";
import { registerBackupCommands } from "./backup-commands.js";
import { registerDaemonCommands } from "./daemon-commands.js";
import { registerInfoCommands } from "./info-commands.js";
import { registerJobCommands } from "./job-commands.js";

const program = new Command("vectorkeeper")
  .description("scheduled backups, retention, expiry, archival, index warming and health probes for Chroma")
  .version(TOOL_VERSION, "-V, --version", "print vectorkeeper's version")
  // Commander's own errors (unknown command or option, missing argument) come out as one line, like every other
  // failure: they are printed below from the thrown error, not by commander over several lines.
  .configureOutput({ outputError: () => undefined })
  .exitOverride();

registerDaemonCommands(program);
registerJobCommands(program);
registerBackupCommands(program);
registerInfoCommands(program);

// Node prints warnings as multi-line text; as one JSON line they keep stderr parseable like every other log line.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  process.stderr.write(`${JSON.stringify({ level: 40, time: new Date().toISOString(), name: "vectorkeeper", msg: warning.message.split("\n")[0] })}\n`);
});

const json = process.argv.includes("--json");
try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version text are already printed; `commander.help` is the help shown for a command given no subcommand.
    if (error.exitCode === 0) process.exitCode = EXIT.ok;
    else if (error.code === "commander.help") process.exitCode = EXIT.badInput;
    else reportUsageError(error.message, json);
  } else {
    reportFailure(error, json);
  }
}
