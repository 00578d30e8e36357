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

/**
 * Query latency under maintenance: a steady stream of user queries (20 a second) against 100,000 × 384 records, idle,
 * during an unthrottled backup and during an adaptive one; each backup runs in a process of its own, as a worker
 * would. The three alternate `rounds` times (the two backups swap order each round) and the table shows medians.
 * Goal: adaptive keeps p95 ≤ 1.3× idle while the backup runs at ≥ 40% of its unthrottled speed.
 */
export async function benchMaintenance(services: Services, rounds: number): Promise<void> {
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
  const results: { idle: Phase[]; full: Phase[]; adaptive: Phase[] } = { idle: [], full: [], adaptive: [] };
  for (let round = 0; round < rounds; round++) {
    results.idle.push(await phase(collection, embeddings));
    const order = round % 2 === 0 ? (["full", "adaptive"] as const) : (["adaptive", "full"] as const);
    for (const kind of order) {
      // A breath between phases, so one backup's tail does not fall into the next phase.
      await sleep(2000);
      results[kind].push(await phase(collection, embeddings, backupWith(kind === "adaptive" ? { adaptive: true } : {})));
    }
    const show = (p: Phase) =>
      `p50 ${p.p50.toFixed(1)} ms, p95 ${p.p95.toFixed(1)} ms${p.backup ? `, backup ${rate(p.backup).toFixed(0)} records/s` : ""} (load ${p.load.toFixed(1)})`;
    console.log(`  round ${round + 1}: idle ${show(results.idle.at(-1)!)}; unthrottled ${show(results.full.at(-1)!)}; adaptive ${show(results.adaptive.at(-1)!)}`);
    const pacing = (results.adaptive.at(-1)!.backup as { pacing?: unknown } | undefined)?.pacing;
    if (pacing) console.log(`    adaptive pacing: ${JSON.stringify(pacing)}`);
  }

  const idle = { p50: mid(results.idle.map((p) => p.p50)), p95: mid(results.idle.map((p) => p.p95)), load: mid(results.idle.map((p) => p.load)) };
  const fullRate = mid(results.full.map((p) => rate(p.backup!)));
  console.log(`\nquery latency under maintenance: ${QUERIES_PER_SECOND} queries/s against ${CASE.records} x ${CASE.dimension}, medians of ${rounds} alternating rounds`);
  console.log(`${"".padEnd(22)}${"p50 ms".padStart(9)}${"p95 ms".padStart(9)}${"p95 vs idle".padStart(13)}${"backup rec/s".padStart(14)}${"vs unthrottled".padStart(16)}${"load".padStart(7)}`);
  console.log(`${"idle".padEnd(22)}${idle.p50.toFixed(1).padStart(9)}${idle.p95.toFixed(1).padStart(9)}${"1.00x".padStart(13)}${"".padStart(14)}${"".padStart(16)}${idle.load.toFixed(1).padStart(7)}`);
  for (const [label, phases] of [
    ["unthrottled backup", results.full],
    ["adaptive backup", results.adaptive],
  ] as const) {
    const p95 = mid(phases.map((p) => p.p95));
    const speed = mid(phases.map((p) => rate(p.backup!)));
    console.log(
      `${label.padEnd(22)}${mid(phases.map((p) => p.p50)).toFixed(1).padStart(9)}${p95.toFixed(1).padStart(9)}${`${(p95 / idle.p95).toFixed(2)}x`.padStart(13)}${speed.toFixed(0).padStart(14)}${`${((speed / fullRate) * 100).toFixed(0)}%`.padStart(16)}${mid(phases.map((p) => p.load)).toFixed(1).padStart(7)}`,
    );
  }
  console.log("goal: adaptive p95 ≤ 1.30x idle while its backup runs at ≥ 40% of the unthrottled speed");
}
