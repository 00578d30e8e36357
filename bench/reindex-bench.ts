import type { ReindexResult } from "../src/jobs/reindex.js";
import { carriedRecordName } from "../src/jobs/reindex-swap.js";
import type { benchServices } from "./bench-kit.js";
import { dropCollections, HEADER, median, rate, row, runVariant, type Outcome } from "./backup-bench.js";
import { nameOf, seedTo, type ScaleCase } from "./scale-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

const DIMENSION = 384;

/**
 * Records per write for both: on a loaded 2-core machine one write of the server's maximum (5,461 records of 384
 * dimensions) took over the 120 s a Chroma call may take.
 */
const BATCH = 1000;

const withPeak = (runs: Outcome[]): Outcome => ({ ...median(runs), peakRssMb: Math.max(...runs.map((o) => o.peakRssMb)) });

/**
 * Reindex of 100,000 × 384 (a rebuild with the collection's own settings: copy, catch-up pass, recall of both indexes
 * on 100 queries, warm, swap, reconcile) against a plain copy of the same collection in the same run: the linear read
 * and Chroma's add in the largest batches a request may carry, one write in flight while the next page is read. The
 * two alternate `rounds` times; medians shown. Goal: reindex ≥ 0.8× the plain copy.
 */
export async function benchReindex(services: Services, rounds: number, records = 100_000): Promise<void> {
  const CASE: ScaleCase = { records, dimension: DIMENSION };
  const url = services.chroma.url;
  await seedTo(url, CASE);
  const name = nameOf(CASE);
  const copies: Outcome[] = [];
  const reindexes: Outcome[] = [];
  for (let round = 0; round < rounds; round++) {
    // An interrupted run may have left its copy.
    await dropCollections(url, [`${name}_copy`]);
    copies.push(await runVariant(["plain-copy", url, name, `${name}_copy`, String(BATCH)]));
    await dropCollections(url, [`${name}_copy`]);
    const outcome = await runVariant(["reindex", url, name, JSON.stringify({ batchSize: BATCH })]);
    reindexes.push(outcome);
    const result = outcome.recall as ReindexResult | undefined;
    // The collection set aside (and the record of its reconcile) is dropped outside the timing, as the copy is.
    if (result?.keptAs) await dropCollections(url, [result.keptAs, carriedRecordName(name, result.keptAs)]);
    const [c, r] = [copies.at(-1)!, outcome];
    console.log(
      `  round ${round + 1}: plain copy ${c.error ? `failed: ${c.error}` : `${rate(c).toFixed(0)} records/s`} (${c.peakRssMb.toFixed(0)} MB), reindex ${r.error ? `failed: ${r.error}` : `${rate(r).toFixed(0)} records/s`} (${r.peakRssMb.toFixed(0)} MB; phases ms ${JSON.stringify(result?.phasesMs ?? {})})`,
    );
  }
  const copy = withPeak(copies);
  const ours = withPeak(reindexes);
  const result = ours.recall as ReindexResult | undefined;
  console.log(`\nreindex of ${CASE.records} x ${CASE.dimension} dims (baseline: plain copy = linear read + batched add; writes of ${BATCH} records)`);
  console.log(HEADER);
  console.log(row(`plain copy, median of ${rounds}`, copy, copy));
  console.log(row(`vectorkeeper reindex, median of ${rounds}`, ours, copy));
  console.log(`  (single runs: copy ${copies.map((o) => rate(o).toFixed(0)).join(", ")}; reindex ${reindexes.map((o) => (o.error ? "failed" : rate(o).toFixed(0))).join(", ")} records/s)`);
  if (result) {
    console.log(
      `  median reindex: phases (ms) ${JSON.stringify(result.phasesMs)}, passes ${JSON.stringify(result.passes)}, reconciled ${JSON.stringify(result.reconciled)}, recall@${result.k} before ${result.recallBefore?.recall} (p50 ${result.recallBefore?.p50Ms} ms, p95 ${result.recallBefore?.p95Ms} ms), after ${result.recallAfter?.recall} (p50 ${result.recallAfter?.p50Ms} ms, p95 ${result.recallAfter?.p95Ms} ms), warm ${result.warm?.durationMs} ms`,
    );
  }
  if (copy.error || ours.error || !rate(copy)) return void console.log("  goal: reindex ≥ 0.8x the plain copy: not measured (a run failed)");
  const ratio = rate(ours) / rate(copy);
  console.log(`  goal: reindex ≥ 0.8x the plain copy: ${ratio.toFixed(2)}x, ${ratio >= 0.8 ? "met" : "NOT met"}`);
}
