// `npm test`: runs the suite once per Chroma server of the matrix (VK_TEST_CHROMA), the two at once (see below),
// then prints one closing line per server. Arguments go to vitest as they are
// (`npm test -- test/backup.test.ts`).
//
// The files in SERVER_INDEPENDENT run in the `current` run only: what they prove does not depend on which Chroma
// answers (each entry says why), so a second run would only repeat it. A file belongs there only if it never talks
// to Chroma, or uses it as an incidental target (a probe to run, a small collection to back up) through paths that
// other files test on both servers; a file whose assertions could differ between servers stays out.
// VK_TEST_CHROMA=1.0.5 or =current runs just that server, with every file: choosing a server means testing it whole.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ALL = ["1.0.5", "current"];
/** The server that runs SERVER_INDEPENDENT: the release the compose file deploys. */
const ONE_SERVER = "current";

/** Test files whose outcome does not depend on the Chroma server, and why. */
const SERVER_INDEPENDENT = {
  // Never talk to Chroma.
  "test/build-if-changed.test.ts": "compiles a small project of its own with tsc",
  "test/chroma-writer.test.ts": "batch splitting, a pure function given the limits",
  "test/config.test.ts": "environment and schedule parsing; its CLI runs fail before any connection",
  "test/deploy.test.ts": "reads docker-compose.yaml and the files it mounts",
  "test/fault-proxy.test.ts": "the test proxies, against servers of the test's own",
  "test/hostile-input.test.ts": "input refused before any Chroma call",
  "test/read-ahead.test.ts": "a pure async helper",
  "test/retention.test.ts": "retention rules, pure functions",
  "test/s3-unfinished.test.ts": "an S3 listing served by the test",
  "test/secrets.test.ts": "redaction; Chroma URLs point at dead ports, the store is s3rver",
  "test/slot-retry.test.ts": "retry decisions on jobs in Redis",
  "test/throttled-log.test.ts": "a log limiter on a fake clock",
  "test/webhook-retry.test.ts": "webhook delivery to a receiver of the test's own",
  // Chroma only as an incidental target; what they assert is about something else.
  "test/cli-usage.test.ts": "flag parsing, messages and output layout; backup and restore themselves run on both servers in backup-cli, cli and restore-*",
  "test/dashboard-browser.test.ts": "the dashboard UI in Chromium; one probe of a 5-record collection",
  "test/locks.test.ts": "leases in Redis; the lost-lease backup reads 300 records as backup.test does on both servers",
  "test/prometheus-rules.test.ts": "metric names against the shipped rules; the jobs are probes of a 5-record collection",
  "test/redis-outage-logs.test.ts": "the daemons' logs while Redis is away; one probe after it returns",
  "test/scheduler-redis-cut.test.ts": "slot catch-up while Redis is away; Chroma only lists collection names",
  "test/scheduler.test.ts": "slot claims and catch-up in Redis; Chroma only lists collection names for globs, or is a dead port",
  "test/lease-busy.test.ts": "a lease held in Redis met from the CLI and the queue; the drill and archive run on both servers in drill and lifecycle",
  "test/shutdown.test.ts": "the worker's SIGTERM handling around a probe slowed by a latency proxy; probes run on both servers in probe and worker",
};

const chosen = process.env.VK_TEST_CHROMA;
if (chosen && !ALL.includes(chosen)) {
  console.error(`test-matrix: VK_TEST_CHROMA must be one of ${ALL.join(", ")} (got "${chosen}"); unset it to run both`);
  process.exit(2);
}
const stale = Object.keys(SERVER_INDEPENDENT).filter((file) => !existsSync(join(ROOT, file)));
if (stale.length > 0) {
  console.error(`test-matrix: SERVER_INDEPENDENT names files that do not exist: ${stale.join(", ")}; update the list`);
  process.exit(2);
}
const servers = chosen ? [chosen] : ALL;

const vitest = join(ROOT, "node_modules", "vitest", "vitest.mjs");

/** One server's run; with two at once, each line is prefixed with its server so the interleaved output stays readable. */
function runOn(server, prefixed) {
  const args = process.argv.slice(2);
  // The run without them may be left with no files when only such files were named: that is a pass.
  const skip = !chosen && server !== ONE_SERVER ? Object.keys(SERVER_INDEPENDENT) : [];
  const extra = skip.length > 0 ? [...skip.flatMap((file) => ["--exclude", file]), "--passWithNoTests"] : [];
  const note = skip.length > 0 ? ` (without the ${skip.length} server-independent files, which run on ${ONE_SERVER})` : "";
  console.log(`\n=== Chroma ${server}: vitest run ${args.join(" ")}`.trimEnd() + note);
  const started = Date.now();
  const child = spawn(process.execPath, [vitest, "run", ...args, ...extra], {
    cwd: ROOT,
    stdio: prefixed ? ["ignore", "pipe", "pipe"] : "inherit",
    env: { ...process.env, VK_TEST_CHROMA: server },
  });
  if (prefixed) {
    const tag = `[${server}] `.padEnd(10);
    for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
      createInterface({ input: from }).on("line", (line) => to.write(tag + line + "\n"));
    }
  }
  return new Promise((resolve) => {
    child.on("close", (code) => resolve({ server, status: code ?? 1, seconds: (Date.now() - started) / 1000 }));
  });
}

// The two servers run at once: a run spends most of its time waiting on servers and child processes (load about 1.3
// on 2 cores with one run), so a second beside it nearly halves the wall time. Each has its own Chroma, BullMQ
// prefix, ports and compiled CLI. VK_TEST_SEQUENTIAL=1 runs them one after the other.
const sequential = process.env.VK_TEST_SEQUENTIAL === "1" || servers.length === 1;
const results = [];
if (sequential) {
  for (const server of servers) results.push(await runOn(server, false));
} else {
  results.push(...(await Promise.all(servers.map((server) => runOn(server, true)))));
}

console.log("");
for (const r of results) {
  console.log(`Chroma ${r.server.padEnd(7)} ${r.status === 0 ? "passed" : `FAILED (exit ${r.status})`} in ${r.seconds.toFixed(0)} s`);
}
process.exit(results.some((r) => r.status !== 0) ? 1 : 0);
