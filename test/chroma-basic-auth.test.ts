import { closeSync, openSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupResult } from "../src/jobs/backup.js";
import { chromaEndpoint } from "../src/config/chroma-endpoint.js";
import { createLogger } from "../src/logging.js";
import { LatencyProbe } from "../src/storage/chroma/latency-probe.js";
import { Pacer } from "../src/storage/chroma/pacing.js";
import { runCli } from "./helpers/cli.js";
import { configError } from "./helpers/config-error.js";
import { contents } from "./helpers/collection-contents.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, seedCollection, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { tempDir, tempFile } from "./helpers/temp-dir.js";

// A Chroma behind a gateway that serves it under /chroma and wants HTTP Basic auth, with the user and password in
// CHROMA_URL. The proxy refuses (401) any request without exactly the right header, so every request vectorkeeper
// makes (the chromadb client's, the bulk reader's, the REST calls', the latency probe's) must carry it.
const PREFIX = "/chroma";
const SECRET = "Zq7s3cretPW";
/** Characters a URL must percent-encode (`@ : / % # ?`), and one outside ASCII: decoding must give these back. */
const USER = "ops@team";
const PASSWORD = `p:w/d% ö#?&${SECRET}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
let proxy: HttpFaultProxy;
let authUrl: string;

beforeAll(async () => {
  proxy = await startHttpFaultProxy(chromaUrl(), { pathPrefix: PREFIX, basicAuth: { user: USER, password: PASSWORD } });
  const url = new URL(`${proxy.url}${PREFIX}`);
  url.username = encodeURIComponent(USER);
  url.password = encodeURIComponent(PASSWORD);
  authUrl = url.href;
});
afterAll(() => proxy.close());

/** What must never appear in output: the password as written, percent-encoded, or inside the header. */
function expectNoSecret(text: string): void {
  expect(text).not.toContain(SECRET);
  expect(text).not.toContain(basic(USER, PASSWORD).slice("Basic ".length));
}

describe("credentials in CHROMA_URL", () => {
  it("become Authorization: Basic of the percent-decoded user and password, and leave the URL", () => {
    expect(chromaEndpoint(authUrl)).toEqual({
      base: `${proxy.url}${PREFIX}`,
      headers: { authorization: basic(USER, PASSWORD) },
      where: `${proxy.url.replace("//", "//***@")}${PREFIX}`,
    });
    // A raw @ in the password: the last @ ends the user info.
    expect(chromaEndpoint("https://ops:p@ss@gateway.example/chroma/")).toEqual({
      base: "https://gateway.example/chroma/",
      headers: { authorization: basic("ops", "p@ss") },
      where: "https://***@gateway.example/chroma/",
    });
    // A user alone (a token as the user name) is sent with an empty password, as curl does.
    expect(chromaEndpoint("https://TOKEN@gateway.example").headers).toEqual({ authorization: basic("TOKEN", "") });
    expect(chromaEndpoint("http://127.0.0.1:8000", "tok").headers).toEqual({ authorization: "Bearer tok", "x-chroma-token": "tok" });
    expect(configError(() => chromaEndpoint(authUrl, "tok"))).toMatch(/^CHROMA_URL: its user:password .* and CHROMA_TOKEN .*cannot both be set/);
  });

  it("reach a gateway with Basic auth on every path: a backup (adaptive, so the probe thread queries too), a probe and a restore from the CLI", async () => {
    const source = uniqueName("basic_src");
    const target = uniqueName("basic_dst");
    const direct = chromaStore();
    await seedCollection(direct, source, 300, 16);
    const env = testEnv({ CHROMA_URL: authUrl, BACKUP_URL: `file://${tempDir("basic")}`, LOG_LEVEL: "debug" });
    const seen = proxy.requests.length;

    const backup = await runCli(["run", "backup", "--collection", source, "--chunk-records", "100", "--adaptive", "--json"], env);
    expect(backup.code, backup.stderr).toBe(0);
    const made = JSON.parse(backup.stdout) as BackupResult;
    expect(made).toMatchObject({ collection: source, records: 300 });
    // The latency probe's thread measured the idle latency: its queries were let through.
    expect(backup.stderr).toContain("adaptive pacing: idle query latency measured");
    const backupRequests = proxy.requests.slice(seen);

    const probe = await runCli(["run", "probe", "--collection", source, "--json"], env);
    expect(probe.code, probe.stderr).toBe(0);
    expect(JSON.parse(probe.stdout)).toMatchObject({ collection: source, ok: true, count: 300, dimension: 16 });

    const restore = await runCli(["restore", made.backupId, "--to", target, "--json"], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(JSON.parse(restore.stdout)).toMatchObject({ collection: target, records: 300 });
    expect(await contents(direct, target)).toEqual(await contents(direct, source));

    const requests = proxy.requests.slice(seen);
    expect(requests.filter((request) => request.refused)).toEqual([]);
    expect(requests.filter((request) => !request.path.startsWith(`${PREFIX}/`))).toEqual([]);
    // Every path went through the gateway: the bulk reader's get, the probe thread's query, REST and client calls.
    expect(backupRequests.filter((request) => request.path.endsWith("/get")).length).toBeGreaterThanOrEqual(3);
    expect(backupRequests.filter((request) => request.path.endsWith("/query")).length).toBeGreaterThanOrEqual(2);
    expect(requests.some((request) => request.path.endsWith("/api/v2/pre-flight-checks"))).toBe(true);
    expect(requests.some((request) => request.method === "POST" && /\/collections$/.test(request.path))).toBe(true);
    for (const run of [backup, probe, restore]) expectNoSecret(run.stdout + run.stderr);

    await direct.deleteCollection(source);
    await direct.deleteCollection(target);
  });

  it("are what the gateway checks: without them, or with a wrong password, requests are refused", async () => {
    const name = uniqueName("basic_probe");
    const direct = chromaStore();
    await seedCollection(direct, name, 20, 8);
    const store = chromaStore(authUrl);
    const collection = await store.openCollection(name);
    const query = store.queryRequest(collection, vectors(20, 8)[3]!, 1, 10_000);

    const probe = new LatencyProbe(query);
    expect(await probe.measure(3)).toHaveLength(3);
    expect(probe.firstError).toBeUndefined();
    await probe.close();

    const bare = new LatencyProbe({ ...query, headers: {} });
    expect(await bare.measure(2)).toEqual([]);
    expect(bare.firstError).toBe("status 401");
    expect(bare.firstStatus).toBe(401);
    await bare.close();

    // Adaptive pacing whose probe is refused warns naming the variables to fix, and the job goes on at its rate limit.
    const file = tempFile("basic-log", "log.ndjson");
    const fd = openSync(file, "w");
    const bareStore = chromaStore(`${proxy.url}${PREFIX}`);
    const pacer = await Pacer.start({ adaptive: true, latencyFactor: 2 }, { chroma: store, collection }, createLogger("warn", fd));
    pacer.close();
    const refusedProbe = await Pacer.start(
      { adaptive: true, latencyFactor: 2 },
      { chroma: bareStore, collection },
      createLogger("warn", fd),
    );
    refusedProbe.close();
    closeSync(fd);
    const warnings = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as { msg: string; reason?: string });
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: "adaptive pacing: the probe query failed, so only the rate limit applies",
        reason: `Chroma at ${proxy.url}${PREFIX} refused the credentials (401); check the user:password in CHROMA_URL or CHROMA_TOKEN`,
      }),
    ]);

    const wrong = new URL(authUrl);
    wrong.password = "wrong";
    const refused = await runCli(["run", "probe", "--collection", name, "--json"], testEnv({ CHROMA_URL: wrong.href }));
    expect(refused.code, refused.stderr + refused.stdout).toBe(2);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/Chroma at http:\/\/\*\*\*@127\.0\.0\.1:\d+\/chroma refused the credentials \(401\)/);
    expectNoSecret(refused.stdout + refused.stderr);
    await direct.deleteCollection(name);
  });

  it("beside CHROMA_TOKEN stop the CLI at config time in one line naming both", async () => {
    const run = await runCli(["run", "probe", "--collection", "any", "--json"], testEnv({ CHROMA_URL: authUrl, CHROMA_TOKEN: `tok${SECRET}` }));
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/CHROMA_URL: its user:password .*CHROMA_TOKEN/);
    expectNoSecret(run.stdout + run.stderr);
  });
});
