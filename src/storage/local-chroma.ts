import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { ConfigError } from "../config/config-error.js";

/**
 * Runs Chroma from its npm bindings in a child process. Newer linux-x64 bindings need glibc 2.38+, so the project pins
 * 1.0.5 under the alias `chroma-local`; elsewhere the platform's own binding package is tried.
 * The child keeps the server off this process's event loop, and killing it is how tests stop Chroma.
 */
const CHILD_SCRIPT = `require(process.argv[1]).cli(["chroma", "run", "--path", process.argv[2], "--port", process.argv[3]]);`;

/** The binding to load: the pinned alias, else the platform's own package; resolved from this package, not the cwd. */
function bindingPath(): string {
  const require = createRequire(import.meta.url);
  const libc = process.platform === "linux" ? "-gnu" : process.platform === "win32" ? "-msvc" : "";
  for (const name of ["chroma-local", `chromadb-js-bindings-${process.platform}-${process.arch}${libc}`]) {
    try {
      return require.resolve(name);
    } catch {
      // try the next one
    }
  }
  throw new ConfigError(
    "CHROMA_URL is unset and no Chroma binding is installed for this platform: set CHROMA_URL to a running Chroma " +
      "(e.g. `docker compose up -d chroma`, then CHROMA_URL=http://127.0.0.1:8000)",
  );
}

export interface LocalChroma {
  url: string;
  path: string;
  port: number;
  process: ChildProcess;
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
      const response = await fetch(`${url}/api/v2/heartbeat`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`local Chroma did not answer at ${url} within ${timeoutMs} ms`);
}

/** Starts Chroma on `path` (created if missing) and resolves once its heartbeat answers. */
export async function startLocalChroma(options: { path: string; port?: number; timeoutMs?: number }): Promise<LocalChroma> {
  const path = resolve(options.path);
  mkdirSync(path, { recursive: true });
  const port = await freePort(options.port);
  const child = spawn(process.execPath, ["-e", CHILD_SCRIPT, bindingPath(), path, String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
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
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForHeartbeat(url, child, () => output, options.timeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, path, port, process: child, stop };
}
