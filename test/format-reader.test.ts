import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createRichCollection, RICH_DIMENSION, snapshotOf } from "./helpers/backup-fixtures.js";
import { runCli } from "./helpers/cli.js";
import { listBackups, readBackup } from "./helpers/independent-reader.js";
import { chromaStore, testEnv, uniqueName } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();

/** docs/format.md against the code: backups made by the real CLI, read by a reader that knows only the document. */
describe("docs/format.md", () => {
  const collection = uniqueName("fmt");
  const root = tempDir("format");
  const backupIds: Record<string, string> = {};

  beforeAll(async () => {
    await createRichCollection(chroma, collection);
    for (const compression of ["gzip", "none"]) {
      const result = await runCli(
        ["run", "backup", "--collection", collection, "--compression", compression, "--chunk-records", "9", "--json"],
        testEnv({ BACKUP_URL: `file://${root}` }),
      );
      expect(result.stderr).toBe("");
      backupIds[compression] = (JSON.parse(result.stdout) as { backupId: string }).backupId;
    }
    // Format 4 (§7), in small packs so the chunks are spread over several.
    const deduped = await runCli(["run", "backup", "--collection", collection, "--dedupe", "--pack-bytes", "65536", "--json"], testEnv({ BACKUP_URL: `file://${root}` }));
    expect(deduped.stderr).toBe("");
    backupIds.dedupe = (JSON.parse(deduped.stdout) as { backupId: string }).backupId;
  });

  it("a deduplicated backup (format 4: chunks in packs) decodes to the collection's records, embeddings bit for bit", async () => {
    const backupId = backupIds.dedupe!;
    expect(listBackups(root)).toContainEqual({ collection, backupId });
    const { manifest, records } = readBackup(root, collection, backupId);
    expect(manifest).toMatchObject({ formatVersion: 4, compression: "gzip", dimension: RICH_DIMENSION, records: 40 });
    expect((manifest.packs as unknown[]).length).toBeGreaterThan(1);
    const expected = (await snapshotOf(chroma, collection)).rows;
    expect([...records].sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual(expected);
  });

  it.each(["gzip", "none"])("a %s backup decodes to the collection's records, embeddings bit for bit", async (compression) => {
    const backupId = backupIds[compression]!;
    expect(listBackups(root)).toContainEqual({ collection, backupId });
    const { manifest, records } = readBackup(root, collection, backupId);
    expect(manifest).toMatchObject({ compression, dimension: RICH_DIMENSION, records: 40, purpose: "backup" });
    expect((manifest.chunks as unknown[]).length).toBe(5);
    const expected = (await snapshotOf(chroma, collection)).rows;
    const read = [...records].sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(read).toEqual(expected);
  });

  it("the documented checksum rule catches an edited manifest", () => {
    const path = join(root, collection, backupIds.gzip!, "manifest.json");
    const original = readFileSync(path, "utf8");
    writeFileSync(path, original.replace('"records": 40', '"records": 41'));
    try {
      expect(() => readBackup(root, collection, backupIds.gzip!)).toThrow(/checksum/);
    } finally {
      writeFileSync(path, original);
    }
  });
});
