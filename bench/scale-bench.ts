import { rmSync } from "node:fs";
import { join } from "node:path";
import { ChromaClient } from "chromadb";
import type { benchServices } from "./bench-kit.js";
import { dropCollections, HEADER, median, rate, row, runVariant, type Outcome } from "./backup-bench.js";
import { acceptedBatch, recordBatch } from "./records.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

/** One collection of the scale run. */
export interface ScaleCase {
  records: number;
  dimension: number;
}

/** A million records at 16 dimensions (seeded in minutes), 50,000 at the same width to compare the time per record, at 384 and at 1536. */
export const SCALE_CASES: ScaleCase[] = [
  { records: 1_000_000, dimension: 16 },
  { records: 50_000, dimension: 16 },
  { records: 50_000, dimension: 384 },
  { records: 50_000, dimension: 1536 },
];

/** `1000000x16,50000x384` as cases. */
export function parseScaleCases(text: string): ScaleCase[] {
  return text.split(",").map((part) => {
    const match = /^(\d+)x(\d+)$/.exec(part.trim());
    if (!match) throw new Error(`--scale-cases: "${part}" is not RECORDSxDIMENSION (e.g. 1000000x16)`);
    return { records: Number(match[1]), dimension: Number(match[2]) };
  });
}

export const nameOf = (c: ScaleCase) => `scale_${c.records}x${c.dimension}`;

/**
 * Creates the collection, or tops up one a previous run left (records are rebuilt from their index, so an interrupted
 * seed resumes where it stopped and a kept Chroma directory is seeded once).
 */
export async function seedTo(url: string, c: ScaleCase): Promise<void> {
  const u = new URL(url);
  const client = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  const collection = await client.getOrCreateCollection({ name: nameOf(c), embeddingFunction: null });
  const have = await collection.count();
  if (have > c.records) throw new Error(`${nameOf(c)} holds ${have} records, more than ${c.records}: delete it or use another --chroma-dir`);
  if (have === c.records) return void console.log(`\n${nameOf(c)}: ${have} records already seeded`);
  const batch = await acceptedBatch(client, c.dimension);
  const started = Date.now();
  let reported = have;
  for (let start = have; start < c.records; start += batch) {
    await collection.add(recordBatch(start, Math.min(batch, c.records - start), c.dimension));
    if (start - reported >= 100_000) {
      reported = start;
      console.log(`  seeding ${nameOf(c)}: ${start} records, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  }
  console.log(`\nseeded ${nameOf(c)} from ${have} to ${c.records} records in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

const microsPerRecord = (o: Outcome) => (o.records && o.ms ? (o.ms * 1000) / o.records : Number.NaN);
const withPeak = (runs: Outcome[]): Outcome => ({ ...median(runs), peakRssMb: Math.max(...runs.map((o) => o.peakRssMb)) });

/**
 * The scale run: at each size, vectorkeeper's backup against the linear raw read (ids listed in windows, records
 * fetched by id 500 at a time, one request after another: the read any linear backup must at least match), the two
 * alternating `rounds` times, medians shown, peak RSS the highest of the runs. At 50,000 × 1536, restore against a
 * plain add in the largest batches the server accepts. Then the goals: backup ≥ 0.9× the linear read at 1M and at
 * 50k × 384, peak RSS ≤ 200 MB everywhere, time per record at 1M within 1.2× of that at 50k (same width).
 */
export async function benchScale(services: Services, cases: ScaleCase[], rounds: number, restores = true): Promise<void> {
  const url = services.chroma.url;
  const results = new Map<string, { read: Outcome; backup: Outcome }>();
  for (const c of cases) {
    await seedTo(url, c);
    const name = nameOf(c);
    const reads: Outcome[] = [];
    const backups: Outcome[] = [];
    for (let round = 0; round < rounds; round++) {
      reads.push(await runVariant(["linear-raw-read", url, name]));
      // Only the last round's backup is kept (for the restore); a million records' backups add up.
      rmSync(join(services.dir, name), { recursive: true, force: true });
      backups.push(await runVariant(["backup", url, name, join(services.dir, name)]));
    }
    const read = withPeak(reads);
    const backup = withPeak(backups);
    results.set(name, { read, backup });
    console.log(`\nbackup of ${c.records} x ${c.dimension} dims (baseline: linear raw read, no read-ahead)`);
    console.log(HEADER);
    console.log(row(`linear raw read, median of ${rounds}`, read, read));
    console.log(row(`vectorkeeper backup, median of ${rounds}`, backup, read));
    console.log(`  (single runs: read ${reads.map((o) => rate(o).toFixed(0)).join(", ")}; backup ${backups.map((o) => rate(o).toFixed(0)).join(", ")} records/s; peak RSS ${backups.map((o) => o.peakRssMb.toFixed(0)).join(", ")} MB)`);

    if (restores && c.dimension === 1536 && backups.at(-1)?.backupId) {
      const plains: Outcome[] = [];
      const restores: Outcome[] = [];
      for (let round = 0; round < rounds; round++) {
        plains.push(await runVariant(["plain-add", url, `${name}_plain${round}`, String(c.records), String(c.dimension)]));
        restores.push(await runVariant(["restore", url, `${name}_restored${round}`, join(services.dir, name), backups.at(-1)!.backupId!]));
        // Each round as it ends: at 1536 dimensions a round takes minutes on a loaded machine.
        const [p, r] = [plains.at(-1)!, restores.at(-1)!];
        console.log(`  round ${round + 1}: add ${rate(p).toFixed(0)} records/s (${p.peakRssMb.toFixed(0)} MB), restore ${r.error ? `failed: ${r.error}` : `${rate(r).toFixed(0)} records/s`} (${r.peakRssMb.toFixed(0)} MB)`);
        await dropCollections(url, [`${name}_plain${round}`, `${name}_restored${round}`]);
      }
      const plain = median(plains);
      const restored = withPeak(restores);
      console.log(`restore of ${c.records} x ${c.dimension} dims (baseline: plain add in the largest batches the server accepts)`);
      console.log(HEADER);
      console.log(row(`plain add, median of ${rounds}`, plain, plain));
      console.log(row(`vectorkeeper restore, median of ${rounds}`, restored, plain));
      console.log(`  (single runs: add ${plains.map((o) => rate(o).toFixed(0)).join(", ")}; restore ${restores.map((o) => (o.error ? "failed" : rate(o).toFixed(0))).join(", ")} records/s)`);
    }
  }

  console.log("\nscale goals");
  for (const c of cases) {
    const r = results.get(nameOf(c));
    if (!r) continue;
    const ratio = rate(r.backup) / rate(r.read);
    console.log(
      `  ${nameOf(c).padEnd(22)} backup ${(ratio).toFixed(2)}x the linear read; ${microsPerRecord(r.backup).toFixed(1)} µs/record; peak RSS ${r.backup.peakRssMb.toFixed(0)} MB (read ${r.read.peakRssMb.toFixed(0)} MB)`,
    );
  }
  const widths = new Set(cases.map((c) => c.dimension));
  for (const dimension of widths) {
    const sizes = cases.filter((c) => c.dimension === dimension).sort((a, b) => a.records - b.records);
    const [small, large] = [sizes[0], sizes.at(-1)];
    if (!small || !large || small === large) continue;
    const [s, l] = [results.get(nameOf(small))?.backup, results.get(nameOf(large))?.backup];
    if (!s || !l) continue;
    console.log(
      `  time per record at ${large.records} vs ${small.records} (x ${dimension}): ${microsPerRecord(l).toFixed(1)} vs ${microsPerRecord(s).toFixed(1)} µs = ${(microsPerRecord(l) / microsPerRecord(s)).toFixed(2)}x`,
    );
  }
}
