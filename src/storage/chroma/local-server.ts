import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { DEFAULTS } from "../../config/defaults.js";
import { chromaApiUrl } from "./api-url.js";
import { chromaLaunch, type LocalChromaServer } from "./local-binding.js";

/**
 * Runs Chroma from its npm bindings in a child process (which server: src/storage/chroma/local-binding.ts).
 * The child keeps the server off this process's event loop, and killing it is how tests stop Chroma.
 * The bindings' `cli` never returns and blocks its thread, so it runs on a worker thread while the child's main thread
 * watches its stdin, a pipe only this process holds: when this process dies, even by SIGKILL, the pipe ends and the
 * server goes with it instead of living on as an orphan.
 */
const CHILD_SCRIPT = `
const { Worker } = require("node:worker_threads");
const [binding, path, port] = process.argv.slice(1);
const serve = 'const { binding, path, port } = require("node:worker_threads").workerData;' +
  'require(binding).cli(["chroma", "run", "--path", path, "--port", port]);';
new Worker(serve, { eval: true, workerData: { binding, path, port } });
process.stdin.on("end", () => process.kill(process.pid, "SIGKILL")).resume();
`;

export interface LocalChroma {
  url: string;
  path: string;
  port: number;
  process: ChildProcess;
  server: LocalChromaServer;
  stop(): Promise<void>;
}

export async function freePort(preferred?: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | undefined>((resolvePort) => {
      const server = createServer();
      server.once("error", () => resolvePort(undefined));
      server.listen({ port, host: "127.0.0.1" }, () => {
        const address = server.address();
        server.close(() => resolvePort(typeof address === "object" && address ? address.port : undefined));
      });
    });
  if (preferred !== undefined) {
    const port = await tryPort(preferred);
    if (port !== undefined) return port;
  }
  const port = await tryPort(0);
  if (port === undefined) throw new Error("no free TCP port on 127.0.0.1");
  return port;
}

async function waitForHeartbeat(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      const text = output();
      throw new Error(`local Chroma exited with code ${child.exitCode}: ${text.trim().split("\n").slice(-3).join(" | ")}`);
    }
    try {
      const response = await fetch(chromaApiUrl(url, "api/v2/heartbeat"), { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`local Chroma did not answer at ${url} within ${timeoutMs} ms`);
}

/** Starts Chroma (1.0.5 unless `server` says otherwise) on `path` (created if missing); resolves once its heartbeat answers. */
export async function startLocalChroma(options: {
  path: string;
  port?: number;
  timeoutMs?: number;
  server?: LocalChromaServer;
}): Promise<LocalChroma> {
  const server = options.server ?? "1.0.5";
  const launch = chromaLaunch(server);
  const path = resolve(options.path);
  mkdirSync(path, { recursive: true });
  const port = await freePort(options.port);
  const child = spawn(launch.command, [...launch.prefixArgs, "-e", CHILD_SCRIPT, launch.binding, path, String(port)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), DEFAULTS.localChroma.stopGraceMs[server]);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForHeartbeat(url, child, () => output, options.timeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, path, port, process: child, server, stop };
}
