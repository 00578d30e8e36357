import type { benchServices } from "./bench-kit.js";
import { HEADER, row, runVariant, seed } from "./backup-bench.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

/**
 * Expire 50,000 expired records out of 100,000 (every other one), against one plain `delete({ where })` on an
 * identical collection: the server-side limit. 64-dim embeddings: deleting costs the same whatever their width, and
 * seeding two collections stays quick.
 */
export async function benchExpire(services: Services, size = 100_000): Promise<void> {
  const url = services.chroma.url;
  await seed(url, "expire_plain", size, 64);
  await seed(url, "expire_ours", size, 64);
  const plain = await runVariant(["plain-delete", url, "expire_plain"]);
  const ours = await runVariant(["expire", url, "expire_ours", services.dir]);
  console.log(`\nexpire of ${size / 2} expired records out of ${size} (baseline: one plain delete({ where }))`);
  console.log(HEADER);
  console.log(row("plain delete({ where })", plain, plain));
  console.log(row("vectorkeeper expire (batched)", ours, plain));
}
