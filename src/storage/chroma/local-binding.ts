import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../../config/config-error.js";

/**
 * The Chroma servers the project runs from npm bindings: `1.0.5` (alias `chroma-local`, runs on glibc 2.36) and
 * `current` (alias `chroma-current`, bindings 1.3.4 = server 1.4.4, needs glibc 2.38+).
 */
export const LOCAL_CHROMA_SERVERS = ["1.0.5", "current"] as const;
export type LocalChromaServer = (typeof LOCAL_CHROMA_SERVERS)[number];

/** How to start a binding: `command ...prefixArgs -e <script> <binding> ...`. */
export interface ChromaLaunch {
  command: string;
  prefixArgs: string[];
  binding: string;
}

const ALIASES: Record<LocalChromaServer, string> = { "1.0.5": "chroma-local", current: "chroma-current" };
const MIN_GLIBC = [2, 38] as const;

/** The binding to load: the server's alias, else the platform's own package; resolved from this package, not the cwd. */
function bindingPath(server: LocalChromaServer): string {
  const require = createRequire(import.meta.url);
  const libc = process.platform === "linux" ? "-gnu" : process.platform === "win32" ? "-msvc" : "";
  for (const name of [ALIASES[server], `chromadb-js-bindings-${process.platform}-${process.arch}${libc}`]) {
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

function glibcTooOld(): boolean {
  if (process.platform !== "linux" || process.arch !== "x64") return false;
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  const glibc = report.header?.glibcVersionRuntime;
  if (!glibc) return false;
  const [major = 0, minor = 0] = glibc.split(".").map(Number);
  return major < MIN_GLIBC[0] || (major === MIN_GLIBC[0] && minor < MIN_GLIBC[1]);
}

/** The folder holding package.json, from src/storage/chroma or dist/src/storage/chroma alike. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("vectorkeeper's package.json not found above src/storage/chroma/local-binding");
    dir = parent;
  }
  return dir;
}

export function chromaLaunch(server: LocalChromaServer): ChromaLaunch {
  const binding = bindingPath(server);
  if (server === "1.0.5" || !glibcTooOld()) return { command: process.execPath, prefixArgs: [], binding };
  // Debian 13's glibc, unpacked by scripts/install-current-chroma.mjs (same folder name there). Under this loader
  // node must be named by full path; only the Chroma child runs under it, never this process.
  const lib = join(packageRoot(), ".cache", "glibc-trixie", "usr", "lib", "x86_64-linux-gnu");
  const loader = join(lib, "ld-linux-x86-64.so.2");
  if (!existsSync(loader)) {
    throw new ConfigError(
      "the current Chroma bindings need glibc 2.38+ and this system has less: run `node scripts/install-current-chroma.mjs` " +
        "(unpacks Debian 13's glibc into .cache/), or use the 1.0.5 server",
    );
  }
  return { command: loader, prefixArgs: ["--library-path", lib, process.execPath], binding };
}
