import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULTS } from "../src/config/defaults.js";
import { openRepository } from "../src/storage/backup-format/repository-header.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import type { benchServices } from "./bench-kit.js";
import { dropCollections, median, rate, runVariant, seed, type Outcome } from "./backup-bench.js";
import { recordBatch } from "./records.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

const RECORDS = 100_000;
const DIMENSION = 384;
/** The encrypted variants' passphrase: a bench value, not a secret. */
const PASSPHRASE = "a bench passphrase, not a secret";

/** Deterministic picks of `count` distinct record numbers below `size` (a fixed-seed shuffle's head). */
function pick(count: number, size: number, seed: number): number[] {
  let state = seed >>> 0 || 1;
  const chosen = new Set<number>();
  while (chosen.size < count) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    chosen.add(state % size);
  }
  return [...chosen];
}

/** Options of the dedupe bench. */
export interface DedupeBenchOptions {
  /** Rounds of the plain / deduplicating / encrypted full backups, alternating. */
  rounds: number;
  /** Rounds of the full and incremental restores, alternating (0: no restore; a restore of 100,000 records takes minutes). */
  restoreRounds: number;
}

/**
 * Deduplicated backups of one 100,000 × 384 collection through a chain of changes: what each backup uploads against
 * the first one's bytes; the speed and peak RSS of a deduplicating (and an encrypted) full backup against a plain full
 * one (format 2), and of restoring an incremental backup against a full one. Every backup and restore runs in a
 * process of its own (its peak RSS is its own), the variants alternating round by round; medians are reported.
 */
export async function benchDedupe(services: Services, options: DedupeBenchOptions): Promise<void> {
  const url = services.chroma.url;
  const name = "bench_dedupe";
  const started = Date.now();
  await seed(url, name, RECORDS, DIMENSION);
  console.log(`\nseeded ${RECORDS} x ${DIMENSION} dims in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const dir = (label: string) => join(services.dir, `dedupe_${label}`);
  const backupOf = (store: string, settings: object) => runVariant(["backup", url, name, dir(store), JSON.stringify(settings)]);
  const variants = [
    { label: "plain full backup (format 2)", settings: { dedupe: false } },
    { label: "deduplicating (format 4, packs)", settings: { dedupe: true } },
    { label: "deduplicating and encrypted", settings: { dedupe: true, passphrase: PASSPHRASE } },
  ];
  const runs: Outcome[][] = variants.map(() => []);
  const setUps: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    // A fresh store each round: every run is a first, full backup.
    for (const [i, variant] of variants.entries()) {
      if ("passphrase" in variant.settings) setUps.push(await setUpEncryptedStore(dir(`${i}_${round}`)));
      runs[i]!.push(await backupOf(`${i}_${round}`, variant.settings));
    }
  }
  const failed = runs.flat().find((o) => o.error);
  if (failed) throw new Error(`a backup failed: ${failed.error}`);

  // The chain continues in the last round's deduplicating store.
  const chainStore = `1_${options.rounds - 1}`;
  const first = runs[1]!.at(-1)!;
  const chain = (label: string) => backupOf(chainStore, { dedupe: true }).then((o) => ({ label, o }));
  const steps = [await chain("second backup, unchanged")];
  const collection = await new ChromaStore({ url, tenant: "default_tenant", database: "default_database" }).openCollection(name);
  const updated = pick(RECORDS / 100, RECORDS, 11);
  const fresh = recordBatch(RECORDS * 3, updated.length, DIMENSION);
  const updateIds = updated.map((i) => recordBatch(i, 1, 0).ids[0]!);
  for (let i = 0; i < updateIds.length; i += 500) {
    await collection.update({ ids: updateIds.slice(i, i + 500), embeddings: fresh.embeddings.slice(i, i + 500) });
  }
  steps.push(await chain("after updating 1% at random"));
  for (let start = RECORDS; start < RECORDS * 1.05; start += 1000) await collection.add(recordBatch(start, 1000, DIMENSION));
  steps.push(await chain("after appending 5%"));
  const deleteIds = pick(RECORDS / 100, RECORDS, 23).map((i) => recordBatch(i, 1, 0).ids[0]!);
  for (let i = 0; i < deleteIds.length; i += 500) await collection.delete({ ids: deleteIds.slice(i, i + 500) });
  steps.push(await chain("after deleting 1% at random"));

  const mb = (bytes = 0) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  const pct = (o: Outcome) => `${(((o.uploadedBytes ?? 0) / (first.bytes ?? 1)) * 100).toFixed(2)}%`;
  const goals = ["≤ 2%", "≤ 15%", "≤ 10%", "≤ 15%"];
  console.log(`deduplicated backups of ${RECORDS} x ${DIMENSION} (first backup: ${mb(first.bytes)} in ${first.chunks} chunks)`);
  console.log(`${"".padEnd(40)}${"uploaded".padStart(11)}${"of first".padStart(10)}${"reused".padStart(8)}${"goal".padStart(8)}`);
  const line = (label: string, o: Outcome, goal: string) =>
    console.log(`${label.padEnd(40)}${mb(o.uploadedBytes).padStart(11)}${pct(o).padStart(10)}${String(o.reusedChunks).padStart(8)}${goal.padStart(8)}`);
  line("first (full) backup", first, "");
  for (const [i, step] of steps.entries()) line(step.label, step.o, goals[i]!);

  const setUp = [...setUps].sort((a, b) => a - b)[Math.floor(setUps.length / 2)] ?? 0;
  console.log(
    `encrypted stores are set up before their timed backup, as only a store's first backup pays it: header write, scrypt and settle ${(setUp / 1000).toFixed(1)} s (median), not counted`,
  );
  const base = rate(median(runs[0]!));
  console.log(`full backups, median of ${options.rounds} alternating rounds (goal: ≥ 0.90x of plain, peak RSS unchanged); load average ${loadAverage()}`);
  for (const [i, variant] of variants.entries()) {
    const m = median(runs[i]!);
    const rss = runs[i]!.map((o) => o.peakRssMb).sort((a, b) => a - b)[Math.floor(options.rounds / 2)]!;
    console.log(
      `  ${variant.label.padEnd(32)}${rate(m).toFixed(0).padStart(8)} records/s ${`${(rate(m) / base).toFixed(2)}x`.padStart(6)}  peak RSS ${rss.toFixed(0)} MB (median)` +
        `  (runs ${runs[i]!.map((o) => rate(o).toFixed(0)).join(", ")} records/s; ${runs[i]!.map((o) => o.peakRssMb.toFixed(0)).join(", ")} MB)`,
    );
  }

  if (options.restoreRounds > 0) {
    // The same state both ways: a plain full backup of the collection as the chain left it, and the chain's last backup.
    const full = await backupOf("restore_full", { dedupe: false });
    const incremental = steps.at(-1)!.o;
    const restores: [Outcome[], Outcome[]] = [[], []];
    for (let round = 0; round < options.restoreRounds; round++) {
      for (const [i, [store, backupId]] of ([["restore_full", full.backupId], [chainStore, incremental.backupId]] as const).entries()) {
        const target = `${name}_restored_${i}_${round}`;
        restores[i]!.push(await runVariant(["restore", url, target, dir(store), backupId ?? ""]));
        await dropCollections(url, [target]);
      }
    }
    for (const outcome of restores.flat()) if (outcome.error) console.log(`a restore failed: ${outcome.error}`);
    const [fulls, incrementals] = restores.map((outcomes) => median(outcomes));
    const seconds = (o: Outcome) => `${((o.ms ?? 0) / 1000).toFixed(1)} s`;
    console.log(
      `restore of ${incremental.records} records, median of ${options.restoreRounds}: full (format 2) ${seconds(fulls!)}, peak RSS ${fulls!.peakRssMb.toFixed(0)} MB; ` +
        `incremental (deduplicated, after the chain) ${seconds(incrementals!)} (${(rate(incrementals!) / rate(fulls!)).toFixed(2)}x), peak RSS ${incrementals!.peakRssMb.toFixed(0)} MB` +
        ` (runs: full ${restores[0].map(seconds).join(", ")}; incremental ${restores[1].map(seconds).join(", ")})`,
    );
  }
  await dropCollections(url, [name]);
}

/**
 * Writes an encrypted store's header (scrypt, conditional create, the settle wait) and waits out the time a backup
 * reading a young header would wait again: what only the first backup into a store pays, every later one not.
 */
async function setUpEncryptedStore(dir: string): Promise<number> {
  const started = performance.now();
  await openRepository(new FsStore(dir), Buffer.from(PASSPHRASE));
  const ms = performance.now() - started;
  await sleep(DEFAULTS.backup.headerSettleMs + 1100);
  return ms;
}

/** The machine is shared: the load the figures were taken under, as a minute's load average. */
const loadAverage = () => loadavg()[0]!.toFixed(1);
