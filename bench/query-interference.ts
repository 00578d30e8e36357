import { setTimeout as sleep } from "node:timers/promises";
import { median } from "../src/stats.js";
import { rate, runVariant, type Outcome } from "./backup-bench.js";
import type { benchServices } from "./bench-kit.js";
import { CASE, phase, queriedCollection, type Phase } from "./maintenance-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

/** How long each load without a collection read runs (a read at 40% takes about as long). */
const LOAD_MS = 12_000;
/** Bytes of Chroma's JSON answer per 384-dimension record with its embedding (440,016 for 100 records). */
const JSON_BYTES_PER_RECORD = 4_400;

/**
 * What in a backup slows users' queries down: the query stream of the maintenance bench (20 a second against 100,000 ×
 * 384), idle and beside loads that each take one part of a backup's work, at the rate of 40% of an unthrottled backup
 * (measured first, without queries): a CPU hog on one core; the same bytes a second moved over loopback HTTP between
 * two sockets of one process; 300 MB/s streamed through 256 MB of memory; the backup's linear read with its pages
 * dropped, with every field and without embeddings. Alternating `rounds` times; medians.
 */
export async function benchQueryInterference(services: Services, rounds: number): Promise<void> {
  const url = services.chroma.url;
  const { name, collection, embeddings } = await queriedCollection(url);
  const calibration = await runVariant(["paced-read", url, name, "0", "500", "2"]);
  const unthrottled = await runVariant(["backup", url, name, `${services.dir}/interference`, "{}"]);
  if (unthrottled.error || calibration.error) throw new Error(`calibration failed: ${unthrottled.error ?? calibration.error}`);
  const target = Math.round(rate(unthrottled) * 0.4);
  console.log(`  unthrottled backup ${rate(unthrottled).toFixed(0)} records/s (bare read ${rate(calibration).toFixed(0)}), so 40% is ${target} records/s`);
  const loads: { label: string; run: () => Promise<Outcome> }[] = [
    { label: "CPU hog on one core", run: () => runVariant(["cpu-hog", url, name, String(LOAD_MS)]) },
    { label: `loopback HTTP, ${((target * JSON_BYTES_PER_RECORD) / 1e6).toFixed(0)} MB/s`, run: () => runVariant(["loopback", url, name, String(LOAD_MS), String(target * JSON_BYTES_PER_RECORD)]) },
    { label: "memory streamed, 300 MB/s", run: () => runVariant(["memory-stream", url, name, String(LOAD_MS), "300"]) },
    { label: `read at ${target}/s, all fields`, run: () => runVariant(["paced-read", url, name, String(target), "100", "0"]) },
    { label: `read at ${target}/s, no embeddings`, run: () => runVariant(["paced-read", url, name, String(target), "100", "0", "documents+metadatas+uris"]) },
  ];
  const idle: Phase[] = [];
  const during: Phase[][] = loads.map(() => []);
  for (let round = 0; round < rounds; round++) {
    idle.push(await phase(collection, embeddings));
    for (let k = 0; k < loads.length; k++) {
      const l = (k + round) % loads.length;
      await sleep(2000);
      during[l]!.push(await phase(collection, embeddings, loads[l]!.run));
    }
    console.log(`  round ${round + 1}: idle p95 ${idle.at(-1)!.p95.toFixed(1)} ms; ${loads.map((load, l) => `${load.label} ${during[l]!.at(-1)!.p95.toFixed(1)} ms`).join("; ")}`);
  }
  const idleP95 = median(idle.map((p) => p.p95));
  const width = Math.max(...loads.map((l) => l.label.length)) + 2;
  console.log(`\nwhat slows queries down: ${CASE.records} x ${CASE.dimension}, 20 queries/s, medians of ${rounds} alternating rounds`);
  console.log(`${"".padEnd(width)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}${"p95 vs idle".padStart(13)}`);
  console.log(`${"idle".padEnd(width)}${median(idle.map((p) => p.p50)).toFixed(1).padStart(9)}${idleP95.toFixed(1).padStart(9)}${"1.00x".padStart(13)}`);
  loads.forEach((load, l) => {
    const p95 = median(during[l]!.map((p) => p.p95));
    console.log(`${load.label.padEnd(width)}${median(during[l]!.map((p) => p.p50)).toFixed(1).padStart(9)}${p95.toFixed(1).padStart(9)}${`${(p95 / idleP95).toFixed(2)}x`.padStart(13)}`);
  });
}
