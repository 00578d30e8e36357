import { benchBackup } from "./backup-bench.js";
import { benchServices } from "./bench-kit.js";
import { benchExpire } from "./expire-bench.js";
import { benchProbeAndEnqueue } from "./probe-and-enqueue.js";

/**
 * `npm run bench [-- --sizes 50000,100000] [-- --only probe|backup|expire]`: every benchmark prints its figures beside a
 * baseline measured in the same run.
 */
const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const sizes = (option("--sizes") ?? "50000,100000").split(",").map(Number);
const only = option("--only");

const services = await benchServices();
try {
  if (!only || only === "probe") await benchProbeAndEnqueue(services);
  if (!only || only === "backup") await benchBackup(services, sizes);
  if (!only || only === "expire") await benchExpire(services);
} finally {
  await services.close();
}
