// `npm test`: runs the suite once per Chroma server of the matrix (VK_TEST_CHROMA), one after the other so the two
// runs never compete for the machine, then prints one closing line per server. Arguments go to vitest as they are
// (`npm test -- test/backup.test.ts`). VK_TEST_CHROMA=1.0.5 or =current runs just that one.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ALL = ["1.0.5", "current"];
const chosen = process.env.VK_TEST_CHROMA;
if (chosen && !ALL.includes(chosen)) {
  console.error(`test-matrix: VK_TEST_CHROMA must be one of ${ALL.join(", ")} (got "${chosen}"); unset it to run both`);
  process.exit(2);
}
const servers = chosen ? [chosen] : ALL;

const vitest = join(ROOT, "node_modules", "vitest", "vitest.mjs");
const results = [];
for (const server of servers) {
  console.log(`\n=== Chroma ${server}: vitest run ${process.argv.slice(2).join(" ")}`.trimEnd());
  const started = Date.now();
  const run = spawnSync(process.execPath, [vitest, "run", ...process.argv.slice(2)], {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...process.env, VK_TEST_CHROMA: server },
  });
  results.push({ server, status: run.status ?? 1, seconds: (Date.now() - started) / 1000 });
}

console.log("");
for (const r of results) {
  console.log(`Chroma ${r.server.padEnd(7)} ${r.status === 0 ? "passed" : `FAILED (exit ${r.status})`} in ${r.seconds.toFixed(0)} s`);
}
process.exit(results.some((r) => r.status !== 0) ? 1 : 0);
