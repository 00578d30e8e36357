// Runs before `npm start`: compiles TypeScript only when a source changed since the last build, so a restart takes
// a second instead of a full `tsc` run. A file's or a folder's modification time newer than dist/.build-stamp (a
// folder's changes when a file is added or deleted) means "changed"; a failed build leaves the stamp alone.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const INPUTS = ["worker.ts", "scheduler.ts", "src", "bench", "tsconfig.json", "tsconfig.build.json", "package.json", "package-lock.json"];
const STAMP = join("dist", ".build-stamp");

/** The newest modification time under a path (milliseconds), folders included. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let latest = info.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
const changed = Math.max(...INPUTS.map(newest));
if (built === 0 || changed > built) {
  const started = new Date();
  console.error(built === 0 ? "vectorkeeper: compiling (first start) ..." : "vectorkeeper: sources changed, compiling ...");
  const tsc = join("node_modules", "typescript", "bin", "tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: ["ignore", "inherit", "inherit"] });
  } catch {
    process.exit(1);
  }
  // Stamped with the time the build started: a file saved while tsc ran is newer, and compiles next time.
  writeFileSync(STAMP, `${started.toISOString()}\n`);
  utimesSync(STAMP, started, started);
}
