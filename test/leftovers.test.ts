import { mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { prune } from "../src/jobs/prune.js";
import { newBackupId } from "../src/storage/backup-format/layout.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { collect, runCli, spawnCliWithFileLimit } from "./helpers/cli.js";
import { chromaStore, jobContext, seedCollection, testEnv, uniqueName } from "./helpers/services.js";

// The partial of issue 10 on a full disk: each failed write left a `chunk-….vkc.gz.<hex>.partial` file that neither
// the backup's cleanup nor `prune --grace-hours 0` ever removed.
const chroma = chromaStore();
const collection = uniqueName("leftovers");

beforeAll(() => seedCollection(chroma, collection, 400, 128));

const partialsUnder = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".partial"));

describe("writes that fail part way", () => {
  it("a backup on a full disk fails with one line naming the store and object, and leaves no .partial behind", async () => {
    const { env: storeEnv } = STORES[0]!.open();
    const root = fileURLToPath(storeEnv.BACKUP_URL!);
    // 64 KiB: each chunk of 200 records of 128 floats is larger, so its write fails part way.
    const run = await collect(spawnCliWithFileLimit(["run", "backup", "--collection", collection, "--chunk-records", "200"], testEnv(storeEnv), 128));
    expect(run.code).toBe(1);
    const lines = run.stderr.trim().split("\n").filter((line) => !line.startsWith("{"));
    expect(lines).toEqual([expect.stringMatching(new RegExp(`could not write ${collection}/\\S+/chunk-00000\\d\\.vkc\\.gz to file://\\S+: EFBIG`))]);
    expect(partialsUnder(root)).toEqual([]);
    const listed = await runCli(["backups", "list", "--collection", collection, "--json"], testEnv(storeEnv));
    expect(JSON.parse(listed.stdout)).toMatchObject({ backups: [] });
  });

  it("prune collects .partial files a crash left once they are old enough, and leaves young ones alone", async () => {
    const { env: storeEnv } = STORES[0]!.open();
    const root = fileURLToPath(storeEnv.BACKUP_URL!);
    const folder = join(root, collection, newBackupId(new Date(Date.now() - 3_600_000)));
    mkdirSync(folder, { recursive: true });
    // What a kill mid-write leaves: the temp file of a chunk, never renamed into place.
    const old = join(folder, "chunk-000000.vkc.gz.0a1b2c3d4e5f.partial");
    const young = join(folder, "chunk-000001.vkc.gz.f5e4d3c2b1a0.partial");
    writeFileSync(old, Buffer.alloc(4096, 1));
    writeFileSync(young, Buffer.alloc(4096, 2));
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(old, hourAgo, hourAgo);

    const ctx = jobContext({ chroma, backupStore: new FsStore(root) });
    const payload = prune.payload.parse({ collection, keep: { last: 3 }, leftoverGraceHours: 0.5 });
    const dry = await prune.process({ ...payload, dryRun: true }, ctx);
    expect(dry.unfinishedCollected).toHaveLength(1);
    expect(partialsUnder(root)).toHaveLength(2);

    const result = await prune.process(payload, ctx);
    expect(result.unfinishedCollected).toEqual([expect.stringMatching(/chunk-000000\.vkc\.gz\.0a1b2c3d4e5f\.partial$/)]);
    expect(partialsUnder(root).map((e) => e.name)).toEqual(["chunk-000001.vkc.gz.f5e4d3c2b1a0.partial"]);
  });
});
