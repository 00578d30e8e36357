import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Collection } from "chromadb";
import { median, percentile } from "../src/stats.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import type { ReindexResult } from "../src/jobs/reindex.js";
import { carriedRecordName } from "../src/jobs/reindex-swap.js";
import { dropCollections, rate, runVariant, type Outcome } from "./backup-bench.js";
import type { benchServices } from "./bench-kit.js";
import { nameOf, seedTo } from "./scale-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

export const CASE = { records: 100_000, dimension: 384 };
/** The users: a steady stream of queries at this rate, sent on schedule whether or not the last one has answered. */
const QUERIES_PER_SECOND = 20;
const IDLE_MS = 10_000;

export interface Phase {
  p50: number;
  p95: number;
  queries: number;
  /** The backup running meanwhile (none while idle). */
  backup?: Outcome;
  /** 1-minute load average at the phase's end. */
  load: number;
}

/** User queries at a fixed rate until `until` settles (or for `ms`); their latencies. */
export async function userQueries(collection: Collection, embeddings: number[][], until: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  const inFlight: Promise<void>[] = [];
  let done = false;
  // Both ways, so a crashed variant is reported by its phase rather than as an unhandled rejection here.
  const stop = () => {
    done = true;
  };
  until.then(stop, stop);
  const started = performance.now();
  for (let i = 0; !done; i++) {
    const due = started + (i * 1000) / QUERIES_PER_SECOND;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (done) break;
    const sent = performance.now();
    inFlight.push(
      collection
        .query({ queryEmbeddings: [embeddings[i % embeddings.length]!], nResults: 10, include: ["documents", "metadatas", "distances"] })
        .then(() => void latencies.push(performance.now() - sent)),
    );
  }
  await Promise.all(inFlight);
  return latencies;
}

export async function phase(collection: Collection, embeddings: number[][], backup?: () => Promise<Outcome>): Promise<Phase> {
  const running = backup ? backup() : sleep(IDLE_MS).then(() => undefined);
  const latencies = (await userQueries(collection, embeddings, running)).sort((a, b) => a - b);
  const outcome = await running;
  if (outcome?.error) throw new Error(`backup failed: ${outcome.error}`);
  return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), queries: latencies.length, ...(outcome ? { backup: outcome } : {}), load: loadavg()[0]! };
}

/** The seeded collection the users query, 200 of its embeddings to query with, its index loaded and warm. */
export async function queriedCollection(url: string): Promise<{ name: string; store: ChromaStore; collection: Collection; embeddings: number[][] }> {
  await seedTo(url, CASE);
  const name = nameOf(CASE);
  const store = new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
  const collection = await store.openCollection(name);
  const embeddings = await store.spreadEmbeddings(collection, 200, CASE.records);
  await userQueries(collection, embeddings, sleep(3000));
  return { name, store, collection, embeddings };
}

/** A maintenance job measured under the query stream: its label in the table, how it runs, and what its speed is compared with. */
interface Variant {
  label: string;
  run: () => Promise<Outcome>;
  /** The variant whose speed is 100% for this one (its unthrottled kind). */
  baseline: number;
  /** Clean-up once the phase's queries have all answered. */
  after?: () => Promise<void>;
}

/** Extra adaptive backups to compare with the defaults in the same run: payload options for each, from `--adaptive-options`. */
function extraOptions(): Record<string, unknown>[] {
  const args = process.argv.slice(2);
  const at = args.indexOf("--adaptive-options");
  if (at === -1) return [];
  const text = args[at + 1] ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`--adaptive-options must be a JSON array of payload option objects (got ${text || "nothing"})`);
  }
  if (!Array.isArray(parsed) || !parsed.every((o): o is Record<string, unknown> => typeof o === "object" && o !== null && !Array.isArray(o))) {
    throw new Error(`--adaptive-options must be a JSON array of payload option objects (got ${text})`);
  }
  return parsed;
}

/** The share of the unthrottled speed the goal asks maintenance to keep. */
const GOAL_SHARE = 0.4;
/** The bare read's pages: the gentlest on queries of the page sizes tried (500, 200, 100, 50, 20; none met the goal). */
const BARE_PAGE = 100;

/**
 * Query latency under maintenance: a steady stream of user queries (20 a second) against 100,000 × 384 records, idle,
 * during an unthrottled backup, an adaptive one, a backup held steady at 40% of the unthrottled speed, and a bare read
 * at that rate (the same linear read, pages dropped: the floor under any backup through Chroma's API), with
 * `withReindex` an unthrottled and an adaptive reindex of the same collection too (and any `--adaptive-options`
 * backups). Each job runs in a process of its own, as a worker would. The 40% rate is 40% of an unthrottled backup
 * run before the rounds without queries. Idle and the jobs alternate `rounds` times (their order rotates each round)
 * and the table shows medians. Goal: adaptive keeps p95 ≤ 1.3× idle while the job runs at ≥ 40% of its unthrottled speed.
 */
export async function benchMaintenance(services: Services, rounds: number, withReindex = false): Promise<void> {
  const url = services.chroma.url;
  const queried = await queriedCollection(url);
  const { name, store, embeddings } = queried;
  // A reindex swaps another collection in under the name.
  let { collection } = queried;

  let n = 0;
  const backupWith = (options: object) => async () => {
    const dir = join(services.dir, `maintenance_${n++}`);
    try {
      return await runVariant(["backup", url, name, dir, JSON.stringify(options)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  let keptAs: string | undefined;
  const reindexWith = (options: object) => async () => {
    const outcome = await runVariant(["reindex", url, name, JSON.stringify({ batchSize: 1000, ...options })]);
    keptAs = (outcome.recall as ReindexResult | undefined)?.keptAs ?? undefined;
    return outcome;
  };
  // The queries went on against the collection set aside by the swap until the phase ended: the next phase queries the
  // one now under the name, and the old one is dropped (outside the timing, as the reindex bench does).
  const afterReindex = async () => {
    collection = await store.openCollection(name);
    if (keptAs) await dropCollections(url, [keptAs, carriedRecordName(name, keptAs)]);
    keptAs = undefined;
  };
  const calibration = await backupWith({})();
  if (calibration.error) throw new Error(`backup failed: ${calibration.error}`);
  const target = Math.round(rate(calibration) * GOAL_SHARE);
  console.log(`  unthrottled backup without queries: ${rate(calibration).toFixed(0)} records/s, so 40% is ${target} records/s`);
  const variants: Variant[] = [
    { label: "unthrottled backup", run: backupWith({}), baseline: 0 },
    { label: "adaptive backup", run: backupWith({ adaptive: true }), baseline: 0 },
    { label: `backup steady at ${target}/s`, run: backupWith({ maxRecordsPerSecond: target }), baseline: 0 },
    { label: `bare read at ${target}/s`, run: () => runVariant(["paced-read", url, name, String(target), String(BARE_PAGE), "0"]), baseline: 0 },
    ...extraOptions().map((options) => ({ label: `backup ${JSON.stringify(options)}`, run: backupWith({ adaptive: true, ...options }), baseline: 0 })),
  ];
  if (withReindex) {
    const at = variants.length;
    variants.push(
      { label: "unthrottled reindex", run: reindexWith({}), baseline: at, after: afterReindex },
      { label: "adaptive reindex", run: reindexWith({ adaptive: true }), baseline: at, after: afterReindex },
    );
  }
  const idle: Phase[] = [];
  const during: Phase[][] = variants.map(() => []);
  const show = (p: Phase) =>
    `p50 ${p.p50.toFixed(1)} ms, p95 ${p.p95.toFixed(1)} ms${p.backup ? `, ${rate(p.backup).toFixed(0)} records/s` : ""} (load ${p.load.toFixed(1)})`;
  for (let round = 0; round < rounds; round++) {
    idle.push(await phase(collection, embeddings));
    console.log(`  round ${round + 1}: idle ${show(idle.at(-1)!)}`);
    for (let k = 0; k < variants.length; k++) {
      const v = (k + round) % variants.length;
      // A breath between phases, so one job's tail does not fall into the next phase.
      await sleep(2000);
      const measured = await phase(collection, embeddings, variants[v]!.run);
      during[v]!.push(measured);
      await variants[v]!.after?.();
      const pacing = (measured.backup as { pacing?: { adaptive?: boolean } } | undefined)?.pacing ?? (measured.backup?.recall as { pacing?: { adaptive?: boolean } } | undefined)?.pacing;
      const phases = (measured.backup?.recall as ReindexResult | undefined)?.phasesMs;
      console.log(`    ${variants[v]!.label}: ${show(measured)}${pacing?.adaptive ? `; pacing ${JSON.stringify(pacing)}` : ""}${phases ? `; phases ms ${JSON.stringify(phases)}` : ""}`);
    }
  }

  const idleP95 = median(idle.map((p) => p.p95));
  const width = Math.max(22, ...variants.map((v) => v.label.length + 2));
  console.log(`\nquery latency under maintenance: ${QUERIES_PER_SECOND} queries/s against ${CASE.records} x ${CASE.dimension}, medians of ${rounds} alternating rounds`);
  // Besides the ratio of medians, the median of each round's own ratio (its phase against that round's idle and its
  // unthrottled run): on a shared machine the background drifts between rounds more than within one.
  console.log(
    `${"".padEnd(width)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}${"p95 vs idle".padStart(13)}${"per round".padStart(11)}${"records/s".padStart(14)}${"vs unthrottled".padStart(16)}${"per round".padStart(11)}${"load".padStart(7)}`,
  );
  console.log(
    `${"idle".padEnd(width)}${median(idle.map((p) => p.p50)).toFixed(1).padStart(9)}${idleP95.toFixed(1).padStart(9)}${"1.00x".padStart(13)}${"".padStart(11)}${"".padStart(14)}${"".padStart(16)}${"".padStart(11)}${median(idle.map((p) => p.load)).toFixed(1).padStart(7)}`,
  );
  variants.forEach((variant, v) => {
    const phases = during[v]!;
    const base = during[variant.baseline]!;
    const p95 = median(phases.map((p) => p.p95));
    const speed = median(phases.map((p) => rate(p.backup!)));
    const roundP95 = median(phases.map((p, r) => p.p95 / idle[r]!.p95));
    const roundSpeed = median(phases.map((p, r) => rate(p.backup!) / rate(base[r]!.backup!)));
    const full = median(base.map((p) => rate(p.backup!)));
    console.log(
      `${variant.label.padEnd(width)}${median(phases.map((p) => p.p50)).toFixed(1).padStart(9)}${p95.toFixed(1).padStart(9)}${`${(p95 / idleP95).toFixed(2)}x`.padStart(13)}${`${roundP95.toFixed(2)}x`.padStart(11)}${speed.toFixed(0).padStart(14)}${`${((speed / full) * 100).toFixed(0)}%`.padStart(16)}${`${(roundSpeed * 100).toFixed(0)}%`.padStart(11)}${median(phases.map((p) => p.load)).toFixed(1).padStart(7)}`,
    );
  });
  console.log("goal: adaptive p95 ≤ 1.30x idle while the job runs at ≥ 40% of its unthrottled speed (the bare read is the floor: the read alone, at 40%)");
}
