import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import { restore } from "../src/jobs/restore.js";
import { createLogger } from "../src/logging.js";
import { LocalLocks } from "../src/queues/locks.js";
import { ChromaStore } from "../src/storage/chroma.js";
import { FsStore } from "../src/storage/fs-store.js";
import type { ObjectStore } from "../src/storage/object-store.js";
import type { benchServices } from "./bench-kit.js";
import { dropCollections, seed } from "./backup-bench.js";
import { recordBatch } from "./records.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

const RECORDS = 100_000;
const DIMENSION = 384;

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

/**
 * Deduplicated backups of one 100,000 × 384 collection through a chain of changes: what each backup uploads against
 * the first one's bytes, and the speed of a deduplicating backup against a plain full one (format 2).
 */
export async function benchDedupe(services: Services, extraStores: { name: string; store: (dir: string) => ObjectStore }[] = []): Promise<void> {
  const url = services.chroma.url;
  const name = "bench_dedupe";
  const started = Date.now();
  await seed(url, name, RECORDS, DIMENSION);
  console.log(`\nseeded ${RECORDS} x ${DIMENSION} dims in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const chroma = new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
  const ctx = (store: ObjectStore) => ({
    logger: createLogger("silent"),
    chroma,
    backupStore: store,
    locks: new LocalLocks(),
    runner: "bench",
    followUp: async () => undefined,
    signal: new AbortController().signal,
    progress: async () => undefined,
  });
  const run = async (store: ObjectStore, dedupe: boolean): Promise<BackupResult & { ms: number }> => {
    const t = performance.now();
    const result = await backup.process(backup.payload.parse({ collection: name, dedupe }), ctx(store));
    return { ...result, ms: performance.now() - t };
  };
  const plainStore = new FsStore(join(services.dir, "dedupe_plain"));
  const dedupeStore = new FsStore(join(services.dir, "dedupe_shared"));
  // Plain and deduplicating full backups alternate twice (the machine is shared: single runs vary); each its best.
  const plains = [await run(plainStore, false)];
  const firsts = [await run(new FsStore(join(services.dir, "dedupe_first0")), true)];
  plains.push(await run(plainStore, false));
  const first = await run(dedupeStore, true);
  firsts.push(first);
  const extras: { name: string; result: BackupResult & { ms: number } }[] = [];
  for (const extra of extraStores) extras.push({ name: extra.name, result: await run(extra.store(join(services.dir, `dedupe_${extra.name}`)), true) });
  const unchanged = await run(dedupeStore, true);

  const collection = await chroma.openCollection(name);
  const updated = pick(RECORDS / 100, RECORDS, 11);
  const fresh = recordBatch(RECORDS * 3, updated.length, DIMENSION);
  const updateIds = updated.map((i) => recordBatch(i, 1, 0).ids[0]!);
  for (let i = 0; i < updateIds.length; i += 500) {
    await collection.update({ ids: updateIds.slice(i, i + 500), embeddings: fresh.embeddings.slice(i, i + 500) });
  }
  const afterUpdate = await run(dedupeStore, true);
  for (let start = RECORDS; start < RECORDS * 1.05; start += 1000) await collection.add(recordBatch(start, 1000, DIMENSION));
  const afterAppend = await run(dedupeStore, true);
  const deleteIds = pick(RECORDS / 100, RECORDS, 23).map((i) => recordBatch(i, 1, 0).ids[0]!);
  for (let i = 0; i < deleteIds.length; i += 500) await collection.delete({ ids: deleteIds.slice(i, i + 500) });
  const afterDelete = await run(dedupeStore, true);

  const best = (runs: { records: number; ms: number }[]) => Math.max(...runs.map((r) => (r.records / r.ms) * 1000));
  const plainRate = best(plains);
  const pct = (r: BackupResult) => `${((r.uploadedBytes / first.bytes) * 100).toFixed(2)}%`;
  const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  console.log(`deduplicated backups of ${RECORDS} x ${DIMENSION} (first backup: ${mb(first.bytes)} in ${first.chunks} chunks)`);
  console.log(`${"".padEnd(40)}${"uploaded".padStart(11)}${"of first".padStart(10)}${"reused".padStart(8)}${"goal".padStart(8)}`);
  const line = (label: string, r: BackupResult, goal: string) =>
    console.log(`${label.padEnd(40)}${mb(r.uploadedBytes).padStart(11)}${pct(r).padStart(10)}${String(r.reusedChunks).padStart(8)}${goal.padStart(8)}`);
  line("first (full) backup", first, "");
  line("second backup, unchanged", unchanged, "≤ 2%");
  line("after updating 1% at random", afterUpdate, "≤ 15%");
  line("after appending 5%", afterAppend, "≤ 10%");
  line("after deleting 1% at random", afterDelete, "≤ 15%");
  console.log(`backup speed (best of 2 each; goal ≥ 0.90x of a plain full backup)`);
  console.log(`  plain full backup (format 2)        ${plainRate.toFixed(0).padStart(8)} records/s  1.00x  (runs ${plains.map((r) => ((r.records / r.ms) * 1000).toFixed(0)).join(", ")})`);
  console.log(`  deduplicating full backup           ${best(firsts).toFixed(0).padStart(8)} records/s  ${(best(firsts) / plainRate).toFixed(2)}x  (runs ${firsts.map((r) => ((r.records / r.ms) * 1000).toFixed(0)).join(", ")})`);
  for (const extra of extras) {
    const rate = (extra.result.records / extra.result.ms) * 1000;
    console.log(`  ${`deduplicating, ${extra.name}`.padEnd(36)}${rate.toFixed(0).padStart(8)} records/s  ${(rate / plainRate).toFixed(2)}x`);
  }
  const timeRestore = async (store: ObjectStore, backupId: string, target: string) => {
    const t = performance.now();
    await restore.process(restore.payload.parse({ collection: target, backupId }), ctx(store));
    const ms = performance.now() - t;
    await dropCollections(url, [target]);
    return ms;
  };
  const plainAfter = await run(plainStore, false);
  const restoreFull = await timeRestore(plainStore, plainAfter.backupId, `${name}_full_restored`);
  const restoreIncremental = await timeRestore(dedupeStore, afterDelete.backupId, `${name}_incr_restored`);

  await dropCollections(url, [name]);
  console.log(`restore: full (format 2) ${(restoreFull / 1000).toFixed(1)} s, incremental (format 3, after the chain) ${(restoreIncremental / 1000).toFixed(1)} s`);
}
