import { describe, expect, it } from "vitest";
import type { BackupResult } from "../src/jobs/backup.js";
import { packsFolder } from "../src/storage/backup-format/layout.js";
import type { PackedChunk } from "../src/storage/backup-format/manifest.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { runCli } from "./helpers/cli.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, seedCollection, testEnv, uniqueName } from "./helpers/services.js";

const chroma = chromaStore();
const json = <T>(stdout: string) => JSON.parse(stdout) as T;

describe.each(STORES)("deduplicated backups from the command line on $name", ({ open }) => {
  it("reports uploadedBytes and reusedChunks, lists what each backup alone holds, and names a missing chunk in one line", async () => {
    const collection = uniqueName("cli_dedupe");
    await seedCollection(chroma, collection, 300, 256);
    const { store, env: storeEnv } = open();
    const env = testEnv(storeEnv);
    const first = json<BackupResult>((await runCli(["run", "backup", "--collection", collection, "--dedupe", "--json"], env)).stdout);
    const second = json<BackupResult>((await runCli(["run", "backup", "--collection", collection, "--dedupe", "--json"], env)).stdout);
    expect(first).toMatchObject({ records: 300, reusedChunks: 0, uploadedBytes: first.bytes });
    expect(second).toMatchObject({ records: 300, reusedChunks: second.chunks, bytes: first.bytes + (second.bytes - first.bytes) });
    expect(second.uploadedBytes).toBeLessThan(first.uploadedBytes * 0.1);

    const listed = json<{ backups: { backupId: string; bytes: number; ownBytes: number }[] }>(
      (await runCli(["backups", "list", "--collection", collection, "--json"], env)).stdout,
    ).backups;
    const newest = listed.find((b) => b.backupId === second.backupId)!;
    expect(newest.bytes).toBe(second.bytes);
    expect(newest.ownBytes).toBe(second.uploadedBytes);

    const manifest = await readManifest(store, collection, second.backupId);
    const chunk = manifest.chunks[1] as PackedChunk;
    const pack = manifest.packs![chunk.pack]!.name;
    await store.delete([packsFolder(collection) + pack]);
    const target = uniqueName("cli_dedupe_never");
    const restored = await runCli(["restore", second.backupId, "--to", target], env);
    expect(restored.code).not.toBe(0);
    const lines = restored.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`chunk [0-9a-f]{64} \\(pack ${pack}, byte \\d+\\) of backup ${second.backupId} .*is missing`));
    expect(await chroma.listCollectionNames()).not.toContain(target);
  }, 180_000);
});
