import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, spawnCli, collect } from "./helpers/cli.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { startHttpFaultProxy, startTcpFaultProxy, type HttpFaultProxy, type TcpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, seedCollection, testEnv, uniqueName } from "./helpers/services.js";

/**
 * Chroma dies while a command waits on it: the command → a TCP proxy (which goes down) → an HTTP proxy (which holds
 * the chosen request, so the death falls mid-request) → the run's Chroma. The one-line error must name Chroma, its
 * URL and CHROMA_URL, not "socket hang up" or the client's "Failed to connect to chromadb … CORS_ALLOW_ORIGINS".
 */
const chroma = chromaStore();
const collection = uniqueName("origin");
const { env: storeEnv } = STORES[0]!.open();
let http: HttpFaultProxy;
const tcps: TcpFaultProxy[] = [];

beforeAll(async () => {
  await seedCollection(chroma, collection, 50, 8);
  const meta = await chroma.openCollection(collection);
  await meta.update({ ids: ["rec-0", "rec-1"], metadatas: [{ _expires_at: 1 }, { _expires_at: 1 }] });
  http = await startHttpFaultProxy(chromaUrl());
});
afterAll(async () => {
  await Promise.all(tcps.map((t) => t.close()));
  await http.close();
});

/** Runs the command; when a request matching `path` reaches Chroma's doorstep, Chroma "dies". */
async function chromaDiesDuring(args: string[], path: RegExp) {
  const target = new URL(http.url);
  const tcp = await startTcpFaultProxy({ host: target.hostname, port: Number(target.port) });
  tcps.push(tcp);
  const remove = http.inject({ method: "POST", path, fault: { kind: "stall" } });
  const seenBefore = http.requests.length;
  const child = spawnCli(args, testEnv({ ...storeEnv, CHROMA_URL: `http://${tcp.url}` }));
  const result = collect(child);
  const deadline = Date.now() + 60_000;
  while (!http.requests.slice(seenBefore).some((r) => r.fault === "stall")) {
    if (Date.now() > deadline) throw new Error(`no request matched ${path}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await tcp.down();
  const outcome = await result;
  remove();
  return { ...outcome, url: `http://${tcp.url}` };
}

const expectChromaNamed = (run: { code: number | null; stderr: string }, url: string) => {
  expect(run.code).toBe(1);
  const lines = run.stderr.trim().split("\n").filter((line) => !line.startsWith("{"));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`Chroma .*${url.replace(/[.]/g, "\\.")} \\(CHROMA_URL\\)`));
  expect(lines[0]).not.toMatch(/CORS|Failed to connect to chromadb/);
};

describe("Chroma failures name Chroma and its URL", () => {
  it("a backup whose read is cut says Chroma closed the connection, not 'socket hang up'", async () => {
    const run = await chromaDiesDuring(["run", "backup", "--collection", collection, "--json"], /\/get$/);
    expectChromaNamed(run, run.url);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: expect.stringContaining("CHROMA_URL") });
  });

  it("expire with Chroma gone mid-delete gives the usual 'does not answer' line", async () => {
    const run = await chromaDiesDuring(["run", "expire", "--collection", collection], /\/delete$/);
    expectChromaNamed(run, run.url);
    expect(run.stderr).toContain(`Chroma does not answer at ${run.url}`);
  });

  it("restore with Chroma gone mid-write gives the usual 'does not answer' line", async () => {
    const made = await runCli(["run", "backup", "--collection", collection, "--json"], testEnv(storeEnv));
    expect(made.code).toBe(0);
    const { backupId } = JSON.parse(made.stdout) as { backupId: string };
    const run = await chromaDiesDuring(["restore", backupId, "--to", uniqueName("origin_r")], /\/(add|upsert)$/);
    expectChromaNamed(run, run.url);
    expect(run.stderr).toContain(`Chroma does not answer at ${run.url}`);
  });
});
