import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { inject } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** src/cli/main.ts compiled for this run by the global setup (compiled-cli.ts says why not tsx). */
const MAIN = inject("cliMain");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The real CLI in a child process (this checkout's sources), with exactly the given environment on top of PATH. */
export function spawnCli(args: string[], env: Record<string, string>, cwd: string = ROOT): ChildProcess {
  return spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * The real CLI with its file size limited (`ulimit -f`, in 512-byte blocks): writes past it fail with EFBIG part
 * way, as on a full disk, without needing a small file system (which only root could mount).
 */
export function spawnCliWithFileLimit(args: string[], env: Record<string, string>, blocks: number): ChildProcess {
  return spawn("/bin/sh", ["-c", `ulimit -f ${blocks} && exec "$0" "$@"`, process.execPath, MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return collect(spawnCli(args, env));
}

const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/**
 * The real CLI on a pseudo-terminal (util-linux `script`), for what it shows only on a TTY, such as progress lines.
 * stdout and stderr arrive interleaved in `stdout`, as a terminal shows them.
 */
export function runCliOnTty(args: string[], env: Record<string, string>): Promise<CliResult> {
  const command = [process.execPath, MAIN, ...args].map(shellQuote).join(" ");
  return collect(
    spawn("script", ["-qefc", command, "/dev/null"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", TERM: "xterm", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

/** The real CLI with stderr merged into stdout, so the order of log lines and printed output is kept as written. */
export function spawnCliMerged(args: string[], env: Record<string, string>, cwd: string = ROOT): ChildProcess {
  return spawn("sh", ["-c", 'exec "$@" 2>&1', "sh", process.execPath, MAIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * The real CLI started with `VK_FAILPOINT=point` (with `pause`, also `VK_FAILPOINT_PAUSE=1`: it waits there for
 * SIGUSR2); resolves once it reports reaching the failpoint, rejects with what it printed if it exits before.
 */
export async function cliAtFailpoint(
  args: string[],
  env: Record<string, string>,
  point: string,
  pause = false,
): Promise<{ child: ChildProcess; exited: Promise<CliResult> }> {
  const child = spawnCli(args, { ...env, VK_FAILPOINT: point, ...(pause ? { VK_FAILPOINT_PAUSE: "1" } : {}) });
  const exited = collect(child);
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes(`failpoint ${point} reached`)) resolve();
    });
    child.once("exit", () => reject(new Error(`${args.slice(0, 2).join(" ")} exited before its failpoint ${point}: ${err}`)));
  });
  return { child, exited };
}

/** The real CLI stopped dead (SIGKILL) at a failpoint: what a crash at that step leaves. */
export async function cliKilledAt(args: string[], env: Record<string, string>, point: string): Promise<CliResult> {
  const { child, exited } = await cliAtFailpoint(args, env, point);
  child.kill("SIGKILL");
  return exited;
}
