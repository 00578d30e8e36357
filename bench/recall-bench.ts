import { ChromaClient } from "chromadb";
import type { RecallResult } from "../src/jobs/recall.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import type { benchServices } from "./bench-kit.js";
import { runVariant } from "./backup-bench.js";
import { acceptedBatch, recordBatch } from "./records.js";
import { nameOf, seedTo, type ScaleCase } from "./scale-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

const CASE: ScaleCase = { records: 50_000, dimension: 384 };
const QUERIES = 100;
const K = 10;

/** The bench records' index from their id (`v1_doc<i/10>_<i%10>`). */
const indexOf = (id: string) => {
  const match = /^v1_doc(\d+)_(\d)$/.exec(id);
  if (!match) throw new Error(`not a bench id: ${id}`);
  return Number(match[1]) * 10 + Number(match[2]);
};

/**
 * Exact neighbours computed apart from vectorkeeper: the seeded records are generated again batch by batch (as the
 * seed made them), squared L2 over their float32 values, every candidate of a batch sorted, the best k kept.
 */
async function independentExact(client: ChromaClient, queryIds: string[]): Promise<Map<string, Set<string>>> {
  const batch = await acceptedBatch(client, CASE.dimension);
  const wanted = new Map(queryIds.map((id) => [indexOf(id), id]));
  const queries = new Map<string, number[]>();
  const eachBatch = (visit: (ids: string[], embeddings: number[][]) => void) => {
    for (let start = 0; start < CASE.records; start += batch) {
      const records = recordBatch(start, Math.min(batch, CASE.records - start), CASE.dimension);
      visit(records.ids, records.embeddings.map((e) => e.map(Math.fround)));
    }
  };
  eachBatch((ids, embeddings) => ids.forEach((id, i) => wanted.has(indexOf(id)) && queries.set(id, embeddings[i]!)));
  const best = new Map(queryIds.map((id) => [id, [] as { id: string; d: number }[]]));
  eachBatch((ids, embeddings) => {
    for (const [queryId, q] of queries) {
      const candidates = best.get(queryId)!;
      ids.forEach((id, i) => {
        if (id === queryId) return;
        const e = embeddings[i]!;
        let d = 0;
        for (let j = 0; j < q.length; j++) d += (e[j]! - q[j]!) ** 2;
        candidates.push({ id, d });
      });
      candidates.sort((a, b) => a.d - b.d);
      candidates.length = Math.min(candidates.length, K);
    }
  });
  return new Map([...best].map(([id, list]) => [id, new Set(list.map((c) => c.id))]));
}

/**
 * Measured recall on 50,000 × 384: the recall job (100 queries) against one linear raw read of the same collection in
 * the same run (goal: at most 2× its time), and its per-query recall@10 against an exact search done here apart from
 * vectorkeeper's code, with the index asked again by this process (goal: agreement on every query).
 */
export async function benchRecall(services: Services): Promise<void> {
  const url = services.chroma.url;
  await seedTo(url, CASE);
  const name = nameOf(CASE);
  const read = await runVariant(["linear-raw-read", url, name]);
  const measured = await runVariant(["recall", url, name, String(QUERIES)]);
  if (measured.error || read.error) throw new Error(`recall bench failed: ${measured.error ?? read.error}`);
  const result = measured.recall as RecallResult;

  const store = new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
  const collection = await store.openCollection(name);
  const truth = await independentExact(store.client, result.perQuery.map((q) => q.id));
  let agree = 0;
  for (const q of result.perQuery) {
    const [embedding] = (await collection.get({ ids: [q.id], include: ["embeddings"] })).embeddings;
    const answer = await collection.query({ queryEmbeddings: [embedding!], nResults: K + 1 });
    const found = answer.ids[0]!.filter((id) => id !== q.id).slice(0, K);
    const expected = found.filter((id) => truth.get(q.id)!.has(id)).length / K;
    if (Math.abs(expected - q.recall) < 1e-9) agree++;
    else console.log(`  query ${q.id}: vectorkeeper says ${q.recall}, the independent check ${expected}`);
  }
  const ratio = measured.ms! / read.ms!;
  console.log(`\nrecall@${K} of ${CASE.records} x ${CASE.dimension} dims, ${result.queries} queries (baseline: one linear raw read)`);
  console.log(`  linear raw read            ${(read.ms! / 1000).toFixed(1)} s, peak RSS ${read.peakRssMb.toFixed(0)} MB`);
  console.log(
    `  vectorkeeper recall job    ${(measured.ms! / 1000).toFixed(1)} s = ${ratio.toFixed(2)}x the read (exact search ${(result.exactMs / 1000).toFixed(1)} s), peak RSS ${measured.peakRssMb.toFixed(0)} MB`,
  );
  console.log(`  recall@${K} ${result.recall} at ef_search ${result.efSearch}; query latency p50 ${result.p50Ms} ms, p95 ${result.p95Ms} ms`);
  console.log(`  goals: ≤ 2x the read: ${ratio <= 2 ? "met" : "NOT met"}; agrees with the independent exact search on ${agree} of ${result.perQuery.length} queries`);
}
