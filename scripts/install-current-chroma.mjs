// Makes the current Chroma bindings (`chroma-current` in package.json) runnable. They need glibc 2.38+; where the
// system has less (Debian 12 has 2.36), this unpacks Debian 13 (trixie)'s libc6, libstdc++6 and libgcc-s1 into
// .cache/glibc-trixie, and src/storage/chroma/local-binding.ts runs that server's node under the unpacked loader.
// The system's own libraries and apt state stay untouched: apt runs with its own source list, lists and cache.
// Idempotent: once the stamp matches, it returns at once. Run by the test setup whenever it
// starts the current server (VK_TEST_CHROMA=current, one of the two runs of `npm test`), so CI needs no step of its own.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
// The same folder name is in src/storage/chroma/local-binding.ts.
const RUNTIME = join(ROOT, ".cache", "glibc-trixie");
const PACKAGES = ["libc6", "libstdc++6", "libgcc-s1"];
const SUITE = "trixie";
const STAMP = join(RUNTIME, "installed.json");
const MIN_GLIBC = [2, 38];

function fail(message) {
  console.error(`install-current-chroma: ${message}`);
  process.exit(1);
}

function glibcRuntime() {
  const header = /** @type {{ glibcVersionRuntime?: string }} */ (process.report.getReport().header);
  return header.glibcVersionRuntime;
}

function needsRuntime() {
  if (process.platform !== "linux" || process.arch !== "x64") return false;
  const version = glibcRuntime();
  if (!version) return false; // musl: the gnu binding is not installed there at all
  const [major, minor] = version.split(".").map(Number);
  return major < MIN_GLIBC[0] || (major === MIN_GLIBC[0] && minor < MIN_GLIBC[1]);
}

/** The system's own Debian mirror (first non-security URI of its apt sources), so no outside host is assumed. */
function debianMirror() {
  const texts = [];
  const collect = (file) => {
    try {
      texts.push(readFileSync(file, "utf8"));
    } catch {
      // absent: fine
    }
  };
  collect("/etc/apt/sources.list");
  try {
    for (const name of readdirSync("/etc/apt/sources.list.d")) {
      if (name.endsWith(".list") || name.endsWith(".sources")) collect(join("/etc/apt/sources.list.d", name));
    }
  } catch {
    // no sources.list.d
  }
  const uris = [];
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const deb822 = /^URIs:\s*(\S+)/i.exec(line.trim());
      const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/.exec(line.trim());
      const uri = deb822?.[1] ?? oneLine?.[1];
      if (uri && /debian/.test(uri) && !/security/.test(uri)) uris.push(uri);
    }
  }
  return uris[0] ?? "http://deb.debian.org/debian";
}

function isCurrent() {
  if (!existsSync(STAMP)) return false;
  try {
    const stamp = JSON.parse(readFileSync(STAMP, "utf8"));
    return stamp.suite === SUITE && JSON.stringify(stamp.packages) === JSON.stringify(PACKAGES);
  } catch {
    return false;
  }
}

function install() {
  if (!existsSync("/usr/bin/apt-get") || !existsSync("/usr/bin/dpkg")) {
    fail(`glibc ${glibcRuntime()} is older than ${MIN_GLIBC.join(".")} and apt-get/dpkg are missing: run on Debian/Ubuntu or set VK_TEST_CHROMA=1.0.5`);
  }
  mkdirSync(join(ROOT, ".cache"), { recursive: true });
  const work = mkdtempSync(join(ROOT, ".cache", "glibc-trixie-work-"));
  try {
    const lists = join(work, "lists");
    const cache = join(work, "cache");
    const debs = join(work, "debs");
    const unpacked = join(work, "root");
    for (const dir of [join(lists, "partial"), join(cache, "archives", "partial"), debs, unpacked]) mkdirSync(dir, { recursive: true });
    const sourceList = join(work, "sources.list");
    const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    const signedBy = existsSync(keyring) ? `[signed-by=${keyring}] ` : "";
    writeFileSync(sourceList, `deb ${signedBy}${debianMirror()} ${SUITE} main\n`);
    const aptOptions = [
      `-o=Dir::Etc::sourcelist=${sourceList}`,
      "-o=Dir::Etc::sourceparts=-",
      `-o=Dir::State::Lists=${lists}`,
      `-o=Dir::Cache=${cache}`,
      "-o=APT::Get::List-Cleanup=0",
      // Downloads land in our own folder, which apt's unprivileged _apt user may not be able to write.
      "-o=APT::Sandbox::User=root",
      "-qq",
    ];
    const run = (args, cwd) => {
      try {
        execFileSync("apt-get", [...aptOptions, ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] });
      } catch (error) {
        const stderr = String(/** @type {{ stderr?: Buffer }} */ (error).stderr ?? "").trim().split("\n").slice(-2).join(" | ");
        fail(`apt-get ${args[0]} (${SUITE}) failed: ${stderr || String(error)}`);
      }
    };
    run(["update"], work);
    run(["download", ...PACKAGES], debs);
    for (const deb of readdirSync(debs).filter((f) => f.endsWith(".deb"))) {
      execFileSync("dpkg", ["-x", join(debs, deb), unpacked]);
    }
    if (!existsSync(join(unpacked, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))) fail("the unpacked libc6 has no loader at usr/lib/x86_64-linux-gnu");
    writeFileSync(join(unpacked, "installed.json"), `${JSON.stringify({ suite: SUITE, packages: PACKAGES, debs: readdirSync(debs).sort() })}\n`);
    // Swap in whole, so a crash never leaves a half-unpacked runtime that looks installed.
    rmSync(RUNTIME, { recursive: true, force: true });
    renameSync(unpacked, RUNTIME);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (!needsRuntime()) process.exit(0);
if (!isCurrent()) {
  const started = Date.now();
  install();
  console.error(`install-current-chroma: Debian ${SUITE} glibc for Chroma unpacked into .cache/glibc-trixie in ${Date.now() - started} ms`);
}
