import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { startLocalChroma, type LocalChroma } from "../src/storage/chroma/local-server.js";
import { deleteKeysUnder } from "../test/helpers/redis-keys.js";

/** One measured row: what ran, how many units of work, and how long it took. */
export interface Figure {
  name: string;
  units: number;
  unit: string;
  ms: number;
}

export async function measure(name: string, units: number, unit: string, run: () => Promise<void>): Promise<Figure> {
  const started = performance.now();
  await run();
  return { name, units, unit, ms: performance.now() - started };
}

/** Prints figures side by side with the first one as the baseline. */
export function printTable(title: string, figures: Figure[]): void {
  const base = figures[0];
  if (!base) return;
  const rate = (f: Figure) => (f.units / f.ms) * 1000;
  console.log(`\n${title}`);
  console.log(`${"".padEnd(34)}${"units".padStart(8)}${"ms".padStart(10)}${"per second".padStart(14)}${"vs baseline".padStart(13)}`);
  for (const f of figures) {
    console.log(
      `${f.name.padEnd(34)}${String(f.units).padStart(8)}${f.ms.toFixed(1).padStart(10)}${rate(f).toFixed(0).padStart(14)}${`${(rate(f) / rate(base)).toFixed(2)}x`.padStart(13)}`,
    );
  }
}

/**
 * A Chroma and a Redis prefix for one bench run; `close` removes both. With `chromaDir`, Chroma keeps its data there
 * and `close` leaves it, so a later run finds the collections it seeded (seeding a million records takes a while).
 */
export async function benchServices(options: { chromaDir?: string | undefined } = {}): Promise<{
  chroma: LocalChroma;
  redisUrl: string;
  prefix: string;
  dir: string;
  close(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), "vk-bench-"));
  const chromaDir = options.chromaDir ? resolve(options.chromaDir) : join(dir, "chroma");
  mkdirSync(chromaDir, { recursive: true });
  const chroma = await startLocalChroma({ path: chromaDir });
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const prefix = `vkbench-${process.pid}`;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await chroma.stop();
      rmSync(dir, { recursive: true, force: true });
      await deleteKeysUnder(redisUrl, prefix);
    })());
  // A bench stopped with Ctrl-C or kill never reaches its caller's `finally`: without this its folder (the seeded
  // Chroma's data, the backups, often gigabytes) stayed in the temp dir after every interrupted run.
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(signal, () => void close().finally(() => process.exit(code)));
  }
  return { chroma, redisUrl, prefix, dir, close };
}
