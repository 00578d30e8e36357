import { benchBackup } from "./backup-bench.js";
import { benchServices } from "./bench-kit.js";
import { benchDedupe } from "./dedupe-bench.js";
import { benchExpire } from "./expire-bench.js";
import { benchMaintenance } from "./maintenance-bench.js";
import { benchProbeAndEnqueue } from "./probe-and-enqueue.js";
import { benchQueryInterference } from "./query-interference.js";
import { benchRecall } from "./recall-bench.js";
import { benchReindex } from "./reindex-bench.js";
import { benchScale, parseScaleCases, SCALE_CASES } from "./scale-bench.js";

/**
 * `npm run bench [-- --sizes 50000,100000] [-- --only probe|backup|expire|scale|recall|dedupe|maintenance|reindex|interference]`: every benchmark prints its figures
 * beside a baseline measured in the same run. The scale run (a million records; also part of a full run) takes
 * `--scale-cases 1000000x16,50000x384`, `--rounds N`, `--no-restore` (backups only) and `--chroma-dir DIR` to keep its
 * seeded Chroma for the next run. The dedupe run takes `--rounds N` (full backups, alternating), `--restore-rounds N`
 * (restores of a full and an incremental backup, alternating; 1 by default) and `--no-restore`. The maintenance run takes
 * `--rounds N`, `--with-reindex` (an unthrottled and an adaptive reindex beside the backups) and `--adaptive-options JSON`.
 */
const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const sizes = (option("--sizes") ?? "50000,100000").split(",").map(Number);
const only = option("--only");
const scaleCases = parseScaleCases(option("--scale-cases") ?? SCALE_CASES.map((c) => `${c.records}x${c.dimension}`).join(","));
const rounds = Number(option("--rounds") ?? "3");
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a whole number of at least 1 (got ${option("--rounds")})`);

const services = await benchServices({ chromaDir: option("--chroma-dir") });
try {
  if (!only || only === "probe") await benchProbeAndEnqueue(services);
  if (!only || only === "backup") await benchBackup(services, sizes);
  if (!only || only === "expire") await benchExpire(services);
  if (!only || only === "scale") await benchScale(services, scaleCases, rounds, !args.includes("--no-restore"));
  if (!only || only === "recall") await benchRecall(services);
  if (!only || only === "maintenance") await benchMaintenance(services, rounds, args.includes("--with-reindex"));
  // A diagnosis, not a goal: only when asked for.
  if (only === "interference") await benchQueryInterference(services, rounds);
  if (!only || only === "reindex") await benchReindex(services, rounds, Number(option("--reindex-records") ?? "100000"));
  if (!only || only === "dedupe") {
    await benchDedupe(services, { rounds, restoreRounds: args.includes("--no-restore") ? 0 : Number(option("--restore-rounds") ?? "1") });
  }
} finally {
  await services.close();
}
