import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ChromaClient } from "chromadb";
import { acceptedBatch, recordBatch } from "./records.js";
import type { benchServices } from "./bench-kit.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

export interface Outcome {
  records?: number;
  ms?: number;
  bytes?: number;
  peakRssMb: number;
  backupId?: string;
  error?: string;
  /** A variant's own result (the recall job's). */
  recall?: unknown;
  /** What a backup's pacing did (adaptive, rate limit). */
  pacing?: unknown;
  /** A backup's: what it wrote, the chunks it reused, the chunks it lists. */
  uploadedBytes?: number;
  reusedChunks?: number;
  chunks?: number;
}

const VARIANT = fileURLToPath(new URL("./variant.js", import.meta.url));
const ROUNDS = 3;

/** The run with the median rate. */
export function median(outcomes: Outcome[]): Outcome {
  return [...outcomes].sort((a, b) => rate(a) - rate(b))[Math.floor(outcomes.length / 2)]!;
}
const DIMENSION = 384;

/**
 * vectorkeeper's own variants run with the Node flags its CLI, `npm start` and Docker image use; the baselines run
 * with Node's defaults, as an operator's script would.
 */
const PRODUCT_NODE_FLAGS = ["--max-semi-space-size=4"];
const PRODUCT_VARIANTS = new Set(["backup", "restore", "expire", "reindex"]);

export function runVariant(args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const flags = PRODUCT_VARIANTS.has(args[0] ?? "") ? PRODUCT_NODE_FLAGS : [];
    const child = spawn(process.execPath, [...flags, VARIANT, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", () => {
      try {
        resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as Outcome);
      } catch {
        reject(new Error(`variant ${args[0]} printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}

export async function seed(url: string, name: string, count: number, dimension = DIMENSION): Promise<void> {
  const u = new URL(url);
  const client = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  const collection = await client.createCollection({ name, embeddingFunction: null });
  const batch = await acceptedBatch(client, dimension);
  for (let start = 0; start < count; start += batch) await collection.add(recordBatch(start, Math.min(batch, count - start), dimension));
}

export async function dropCollections(url: string, names: string[]): Promise<void> {
  const u = new URL(url);
  const client = new ChromaClient({ host: u.hostname, port: Number(u.port) });
  for (const name of names) await client.deleteCollection({ name }).catch(() => undefined);
}

export const HEADER = `${"".padEnd(36)} ${"records/s".padStart(10)} ${"vs base".padStart(9)} ${"peak RSS".padStart(10)} ${"written".padStart(11)} ${"vs JSON".padStart(9)}`;

export const rate = (o: Outcome) => (o.records && o.ms ? (o.records / o.ms) * 1000 : 0);
const cell = (text: string, width: number) => text.padStart(width);

export function row(name: string, o: Outcome, base: Outcome, bytesBase?: Outcome): string {
  if (o.error) return `${name.padEnd(36)}  failed: ${o.error} (peak RSS ${o.peakRssMb.toFixed(0)} MB)`;
  const bytes = o.bytes === undefined ? "" : `${(o.bytes / 1024 / 1024).toFixed(1)} MB`;
  const share = o.bytes !== undefined && bytesBase?.bytes ? `${((o.bytes / bytesBase.bytes) * 100).toFixed(0)}%` : "";
  return [
    name.padEnd(36),
    cell(rate(o).toFixed(0), 10),
    cell(`${(rate(o) / rate(base)).toFixed(2)}x`, 9),
    cell(`${o.peakRssMb.toFixed(0)} MB`, 10),
    cell(bytes, 11),
    cell(share, 9),
  ].join(" ");
}

/**
 * Backup and restore against their limits, at each size: a raw paged read (the fastest a backup can read), the
 * classic recipe (one get() of everything, JSON files), vectorkeeper's backup; then a plain batched add of the
 * same records against vectorkeeper's restore. Each variant runs in its own process, so peak RSS is its own.
 */
export async function benchBackup(services: Services, sizes: number[]): Promise<void> {
  const url = services.chroma.url;
  for (const size of sizes) {
    const name = `bench_${size}`;
    const started = Date.now();
    await seed(url, name, size);
    console.log(`\nseeded ${size} x ${DIMENSION} dims in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const backupDir = join(services.dir, `backups_${size}`);
    // Raw read and backup alternate three times and each reports its median run: on two cores the Chroma server and
    // the client compete, and single runs differ by 10%. The classic recipe runs last: its one huge get() leaves the
    // server's memory inflated for whoever follows.
    const raws: Outcome[] = [];
    const rawsAhead: Outcome[] = [];
    const backups: Outcome[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      raws.push(await runVariant(["raw-read", url, name]));
      rawsAhead.push(await runVariant(["raw-read-ahead", url, name]));
      backups.push(await runVariant(["backup", url, name, join(backupDir, String(round))]));
    }
    const raw = median(raws);
    const rawAhead = median(rawsAhead);
    const ours = { ...median(backups), peakRssMb: Math.max(...backups.map((b) => b.peakRssMb)) };
    const classic = await runVariant(["classic", url, name, join(services.dir, `classic_${size}`)]);
    // Plain add and restore alternate too; each writes a fresh collection, dropped before the next round.
    const plains: Outcome[] = [];
    const restores: Outcome[] = [];
    const last = backups.at(-1);
    for (let round = 0; round < ROUNDS; round++) {
      plains.push(await runVariant(["plain-add", url, `${name}_plain${round}`, String(size), String(DIMENSION)]));
      restores.push(
        last?.backupId
          ? await runVariant(["restore", url, `${name}_restored${round}`, join(backupDir, String(ROUNDS - 1)), last.backupId])
          : { peakRssMb: 0, error: "no backup" },
      );
      await dropCollections(url, [`${name}_plain${round}`, `${name}_restored${round}`]);
    }
    const plain = median(plains);
    const restored = { ...median(restores), peakRssMb: Math.max(...restores.map((o) => o.peakRssMb)) };
    const header = HEADER;
    console.log(`backup of ${size} records (baseline: raw paged read)`);
    console.log(header);
    console.log(row(`raw paged get (limit), median of ${ROUNDS}`, raw, raw));
    console.log(row(`raw paged get, 2 pages ahead, median`, rawAhead, raw));
    console.log(row("classic get() + JSON files", classic, raw, classic));
    console.log(row(`vectorkeeper backup, median of ${ROUNDS}`, ours, raw, classic));
    console.log(`  (single runs: raw ${raws.map((o) => rate(o).toFixed(0)).join(", ")}; raw ahead ${rawsAhead.map((o) => rate(o).toFixed(0)).join(", ")}; backup ${backups.map((o) => rate(o).toFixed(0)).join(", ")} records/s; backup peak RSS is the highest of its runs)`);
    console.log(`restore of ${size} records (baseline: plain batched add)`);
    console.log(header);
    console.log(row(`plain batched add (limit), median of ${ROUNDS}`, plain, plain));
    console.log(row(`vectorkeeper restore, median of ${ROUNDS}`, restored, plain));
    console.log(`  (single runs: add ${plains.map((o) => rate(o).toFixed(0)).join(", ")}; restore ${restores.map((o) => rate(o).toFixed(0)).join(", ")} records/s)`);
  }
}
