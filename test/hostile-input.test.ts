import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/config-error.js";
import { loadConfig } from "../src/config/env.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { runCli } from "./helpers/cli.js";
import { configError } from "./helpers/config-error.js";
import { testEnv } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

/** A file:// store holding one folder, with a sibling folder outside it that a walk could reach. */
function storeDir(): { root: string; outside: string } {
  const base = tempDir("hostile");
  const root = join(base, "store");
  const outside = join(base, "outside");
  mkdirSync(join(root, "coll"), { recursive: true });
  mkdirSync(join(outside, "20261123T030000123Z-3f9a1c"), { recursive: true });
  writeFileSync(join(outside, "20261123T030000123Z-3f9a1c", "manifest.json"), "{}");
  return { root, outside };
}

const oneLineFailure = (run: { code: number | null; stderr: string }, code: number) => {
  expect(run.code).toBe(code);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
  expect(run.stderr).not.toMatch(/ENAMETOOLONG|scandir|\n\s+at /);
};

describe("names from the command line", () => {
  it("refuses `backups list --collection ../…` before touching the store", async () => {
    const { root } = storeDir();
    const run = await runCli(["backups", "list", "--collection", "../outside", "--json"], testEnv({ BACKUP_URL: `file://${root}` }));
    oneLineFailure(run, 2);
    expect(run.stderr).toContain("--collection");
    expect(JSON.parse(run.stdout)).toMatchObject({ error: expect.stringContaining("--collection") });
  });

  it("gives one line, not ENAMETOOLONG, for 300-character names in list, prune and verify", async () => {
    const { root } = storeDir();
    const env = testEnv({ BACKUP_URL: `file://${root}` });
    const long = `c${"x".repeat(298)}c`;
    for (const args of [
      ["backups", "list", "--collection", long],
      ["backups", "prune", "--collection", long, "--keep-last", "1"],
      ["run", "verify", "--collection", long, "--backup-id", "20261123T030000123Z-3f9a1c"],
    ]) {
      const run = await runCli(args, env);
      oneLineFailure(run, 2);
      expect(run.stderr).toMatch(/300 bytes, longer than a file name may be \(255\)/);
    }
  });

  it("keeps file:// keys inside the store's root", async () => {
    const { root } = storeDir();
    const store = new FsStore(root);
    const listed = async (prefix: string) => {
      const keys: string[] = [];
      for await (const object of store.list(prefix)) keys.push(object.key);
      return keys;
    };
    await expect(listed("../outside/")).rejects.toThrow(ConfigError);
    await expect(store.get("../outside/20261123T030000123Z-3f9a1c/manifest.json")).rejects.toThrow(ConfigError);
    await expect(store.put("coll/../../escaped", Buffer.from("x"))).rejects.toThrow(ConfigError);
    await expect(store.delete(["/etc/hostname"])).rejects.toThrow(ConfigError);
    expect(await listed("coll/")).toEqual([]);
  });
});

describe("the schedule file", () => {
  it("rejects a megabyte-long timezone at once", () => {
    const started = performance.now();
    const message = configError(() => parseScheduleYaml(`timezone: ${"A".repeat(1 << 20)}\njobs: []\n`, "tz.yaml"));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(message).toMatch(/tz\.yaml.*timezone: is not an IANA time zone \(at most 64 characters\)/);
    expect(message.length).toBeLessThan(400);
  });

  it("refuses a YAML alias bomb in one line naming the file", () => {
    const names = "abcdefghij";
    let yaml = "a: &a [x, x, x, x, x, x, x, x, x]\n";
    for (let i = 1; i < names.length; i++) {
      const prev = `*${names[i - 1]}`;
      yaml += `${names[i]}: &${names[i]} [${Array(9).fill(prev).join(", ")}]\n`;
    }
    const message = configError(() => parseScheduleYaml(yaml, "bomb.yaml"));
    expect(message).toMatch(/^schedule \(bomb\.yaml\): refused: .*alias/);
    expect(message).not.toContain("\n");
  });

  it("refuses a __proto__ key in an entry by name instead of dropping it", () => {
    const message = configError(() =>
      parseScheduleYaml(`jobs:\n  - kind: probe\n    cron: "* * * * *"\n    collections: ["*"]\n    __proto__: { alertAfterFailures: 2 }\n`, "p.yaml"),
    );
    expect(message).toContain("p.yaml");
    expect(message).toContain("jobs[0].__proto__");
  });
});

describe("the environment", () => {
  it("refuses a relative file://dir BACKUP_URL at config time with the fix", () => {
    const message = configError(() => loadConfig({ BACKUP_URL: "file://relative/dir" }));
    expect(message).toMatch(/BACKUP_URL: .*file:\/\/\.\/dir/);
    for (const url of ["file://./data/backups", "file://../up", "file:///abs/dir", "file://localhost/abs/dir"]) {
      expect(loadConfig({ BACKUP_URL: url }).backupUrl).toBe(url);
    }
  });

  it("refuses absurd concurrency with the bound", () => {
    expect(configError(() => loadConfig({ VK_CONCURRENCY: "backup=99999999999999999999" }))).toMatch(/N from 1 to 1000/);
    expect(configError(() => loadConfig({ VK_CONCURRENCY: "backup=1001" }))).toMatch(/N from 1 to 1000/);
    expect(loadConfig({ VK_CONCURRENCY: "probe=1000" }).worker.concurrency.probe).toBe(1000);
  });
});
