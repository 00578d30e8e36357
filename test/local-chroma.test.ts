import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { LocalChroma } from "../src/storage/chroma/local-server.js";
import { chromaLaunch } from "../src/storage/chroma/local-binding.js";
import { chromaStore, chromaUrl, seedCollection, startTestChroma, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const server = inject("chromaServer");
const collectionsUrl = (url: string) => `${url}/api/v2/tenants/default_tenant/databases/default_database/collections`;

describe(`the test matrix's Chroma (${server})`, () => {
  it("is the server VK_TEST_CHROMA names", async () => {
    // The binding reports its server release only on its command line; the HTTP version endpoint says "1.0.0" on both.
    const launch = chromaLaunch(server);
    const script = `require(process.argv[1]).cli(["chroma", "--version"])`;
    const version = execFileSync(launch.command, [...launch.prefixArgs, "-e", script, launch.binding], { encoding: "utf8" }).trim();
    expect(version).toBe(server === "current" ? "chroma 1.4.4" : "chroma 1.0.0");

    // And the run's server is that binding: only Chroma 1.2+ answers a collection with its index schema.
    const name = uniqueName("matrix");
    await seedCollection(chromaStore(), name, 3, 4);
    const response = await fetch(`${collectionsUrl(chromaUrl())}/${name}`);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.name).toBe(name);
    expect("schema" in body && body.schema !== null).toBe(server === "current");
  });
});

describe("stopping a local Chroma", () => {
  const dir = tempDir("stop");
  let local: LocalChroma | undefined;
  afterAll(async () => {
    await local?.stop();
  });

  it("ends the server within seconds and keeps what was written", async () => {
    local = await startTestChroma({ path: dir });
    const name = uniqueName("stop");
    await seedCollection(chromaStore(local.url), name, 25, 4);
    const started = Date.now();
    await local.stop();
    // Bindings 1.3.4 ignore SIGTERM for 20 s and more; stop() kills them after a short grace period.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(local.process.exitCode !== null || local.process.signalCode !== null).toBe(true);

    local = await startTestChroma({ path: dir });
    const collection = await chromaStore(local.url).client.getCollection({ name });
    expect(await collection.count()).toBe(25);
  });
});

describe("a local Chroma whose starter dies", () => {
  const dir = tempDir("orphan");
  let serverPid: number | undefined;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  afterAll(() => {
    if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, "SIGKILL");
  });

  it("goes with it, even when the starter is killed with SIGKILL", async () => {
    const module = fileURLToPath(new URL("../src/storage/chroma/local-server.ts", import.meta.url));
    const script =
      `const { startLocalChroma } = await import(${JSON.stringify(module)});` +
      `const c = await startLocalChroma({ path: ${JSON.stringify(dir)}, server: ${JSON.stringify(server)} });` +
      `console.log(JSON.stringify({ url: c.url, pid: c.process.pid })); setInterval(() => {}, 1000);`;
    const starter = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const [line] = (await once(createInterface({ input: starter.stdout }), "line")) as [string];
    const started = JSON.parse(line) as { url: string; pid: number };
    serverPid = started.pid;
    expect((await fetch(`${started.url}/api/v2/heartbeat`)).ok).toBe(true);

    starter.kill("SIGKILL");
    const deadline = Date.now() + 20_000;
    while (alive(started.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(alive(started.pid)).toBe(false);
    await expect(fetch(`${started.url}/api/v2/heartbeat`)).rejects.toThrow();
  });
});
