import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Collection } from "chromadb";
import { percentile } from "../src/recall/index-recall.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { rate, runVariant, type Outcome } from "./backup-bench.js";
import type { benchServices } from "./bench-kit.js";
import { nameOf, seedTo } from "./scale-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

const CASE = { records: 100_000, dimension: 384 };
/** The users: a steady stream of queries at this rate, sent on schedule whether or not the last one has answered. */
const QUERIES_PER_SECOND = 20;
const IDLE_MS = 10_000;

interface Phase {
  p50: number;
  p95: number;
  queries: number;
  /** The backup running meanwhile (none while idle). */
  backup?: Outcome;
  /** 1-minute load average at the phase's end. */
  load: number;
}

/** User queries at a fixed rate until `until` settles (or for `ms`); their latencies. */
async function userQueries(collection: Collection, embeddings: number[][], until: Promise<unknown>): Promise<number[]> {
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

async function phase(collection: Collection, embeddings: number[][], backup?: () => Promise<Outcome>): Promise<Phase> {
  const running = backup ? backup() : sleep(IDLE_MS).then(() => undefined);
  const latencies = (await userQueries(collection, embeddings, running)).sort((a, b) => a - b);
  const outcome = await running;
  if (outcome?.error) throw new Error(`backup failed: ${outcome.error}`);
  return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), queries: latencies.length, ...(outcome ? { backup: outcome } : {}), load: loadavg()[0]! };
}

const mid = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** A backup measured under the query stream: its label in the table and its payload options. */
interface Variant {
  label: string;
  options: Record<string, unknown>;
}

/**
 * Extra adaptive variants to compare with the defaults in the same run: `--adaptive-options '[{"pageSize":100}, …]'`
 * (each a JSON object of backup payload options, `adaptive: true` implied), e.g. to try tuning before changing a default.
 */
function extraVariants(): Variant[] {
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
  return parsed.map((options) => ({ label: `adaptive ${JSON.stringify(options)}`, options: { ...options, adaptive: true } }));
}

/**
 * Query latency under maintenance: a steady stream of user queries (20 a second) against 100,000 × 384 records, idle,
 * during an unthrottled backup and during an adaptive one (and any `--adaptive-options` variants); each backup runs in
 * a process of its own, as a worker would. Idle and the backups alternate `rounds` times (the backups' order rotates
 * each round) and the table shows medians. Goal: adaptive keeps p95 ≤ 1.3× idle while the backup runs at ≥ 40% of its
 * unthrottled speed.
 */
export async function benchMaintenance(services: Services, rounds: number): Promise<void> {
  const variants: Variant[] = [{ label: "unthrottled backup", options: {} }, { label: "adaptive backup", options: { adaptive: true } }, ...extraVariants()];
  const url = services.chroma.url;
  await seedTo(url, CASE);
  const name = nameOf(CASE);
  const store = new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
  const collection = await store.openCollection(name);
  const embeddings = await store.spreadEmbeddings(collection, 200, CASE.records);
  // The index is loaded and warm before anything is measured.
  await userQueries(collection, embeddings, sleep(3000));

  let n = 0;
  const backupWith = (options: object) => async () => {
    const dir = join(services.dir, `maintenance_${n++}`);
    try {
      return await runVariant(["backup", url, name, dir, JSON.stringify(options)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const idle: Phase[] = [];
  const during: Phase[][] = variants.map(() => []);
  const show = (p: Phase) =>
    `p50 ${p.p50.toFixed(1)} ms, p95 ${p.p95.toFixed(1)} ms${p.backup ? `, backup ${rate(p.backup).toFixed(0)} records/s` : ""} (load ${p.load.toFixed(1)})`;
  for (let round = 0; round < rounds; round++) {
    idle.push(await phase(collection, embeddings));
    console.log(`  round ${round + 1}: idle ${show(idle.at(-1)!)}`);
    for (let k = 0; k < variants.length; k++) {
      const v = (k + round) % variants.length;
      // A breath between phases, so one backup's tail does not fall into the next phase.
      await sleep(2000);
      const measured = await phase(collection, embeddings, backupWith(variants[v]!.options));
      during[v]!.push(measured);
      const pacing = (measured.backup as { pacing?: { adaptive?: boolean } } | undefined)?.pacing;
      console.log(`    ${variants[v]!.label}: ${show(measured)}${pacing?.adaptive ? `; pacing ${JSON.stringify(pacing)}` : ""}`);
    }
  }

  const idleP95 = mid(idle.map((p) => p.p95));
  const fullRate = mid(during[0]!.map((p) => rate(p.backup!)));
  const width = Math.max(22, ...variants.map((v) => v.label.length + 2));
  console.log(`\nquery latency under maintenance: ${QUERIES_PER_SECOND} queries/s against ${CASE.records} x ${CASE.dimension}, medians of ${rounds} alternating rounds`);
  // Besides the ratio of medians, the median of each round's own ratio (its phase against that round's idle and its
  // unthrottled backup): on a shared machine the background drifts between rounds more than within one.
  console.log(
    `${"".padEnd(width)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}${"p95 vs idle".padStart(13)}${"per round".padStart(11)}${"backup rec/s".padStart(14)}${"vs unthrottled".padStart(16)}${"per round".padStart(11)}${"load".padStart(7)}`,
  );
  console.log(
    `${"idle".padEnd(width)}${mid(idle.map((p) => p.p50)).toFixed(1).padStart(9)}${idleP95.toFixed(1).padStart(9)}${"1.00x".padStart(13)}${"".padStart(11)}${"".padStart(14)}${"".padStart(16)}${"".padStart(11)}${mid(idle.map((p) => p.load)).toFixed(1).padStart(7)}`,
  );
  variants.forEach((variant, v) => {
    const phases = during[v]!;
    const p95 = mid(phases.map((p) => p.p95));
    const speed = mid(phases.map((p) => rate(p.backup!)));
    const roundP95 = mid(phases.map((p, r) => p.p95 / idle[r]!.p95));
    const roundSpeed = mid(phases.map((p, r) => rate(p.backup!) / rate(during[0]![r]!.backup!)));
    console.log(
      `${variant.label.padEnd(width)}${mid(phases.map((p) => p.p50)).toFixed(1).padStart(9)}${p95.toFixed(1).padStart(9)}${`${(p95 / idleP95).toFixed(2)}x`.padStart(13)}${`${roundP95.toFixed(2)}x`.padStart(11)}${speed.toFixed(0).padStart(14)}${`${((speed / fullRate) * 100).toFixed(0)}%`.padStart(16)}${`${(roundSpeed * 100).toFixed(0)}%`.padStart(11)}${mid(phases.map((p) => p.load)).toFixed(1).padStart(7)}`,
    );
  });
  console.log("goal: adaptive p95 ≤ 1.30x idle while its backup runs at ≥ 40% of the unthrottled speed");
}
