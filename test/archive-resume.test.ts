import { describe, expect, it } from "vitest";
import type { ArchiveResult } from "../src/jobs/archive.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { readChunk } from "../src/storage/backup-format/backup-reader.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { cliKilledAt, runCli } from "./helpers/cli.js";
import { chromaStore, testEnv, uniqueName, vectors } from "./helpers/services.js";

// The partial of issue 10: an archive to the object store interrupted after its manifest (before the source's
// records were deleted) was followed by a rerun that archived the same records a second time.
const chroma = chromaStore();
const DAY = 86_400_000;

describe("archive to the object store, interrupted after its manifest", () => {
  it("a rerun finishes the first archive's deletes instead of archiving the same records twice", async () => {
    const name = uniqueName("archive_resume");
    const now = Date.now();
    const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
    await collection.add({
      ids: [...Array.from({ length: 25 }, (_, i) => `old-${i}`), ...Array.from({ length: 5 }, (_, i) => `new-${i}`)],
      embeddings: vectors(30, 8, 5),
      metadatas: [
        ...Array.from({ length: 25 }, (_, i) => ({ _created_at: now - (40 + i) * DAY })),
        ...Array.from({ length: 5 }, (_, i) => ({ _created_at: now - i * DAY })),
      ],
    });
    const { store, env: storeEnv } = STORES[0]!.open();
    const env = testEnv(storeEnv);
    const args = ["run", "archive", "--collection", name, "--older-than-days", "30", "--to", "object-store"];

    await cliKilledAt(args, env, "archive:after-manifest");
    // The archive is written; the source still holds every record.
    expect(await collection.count()).toBe(30);

    const rerun = await runCli([...args, "--json"], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout) as ArchiveResult).toMatchObject({ archived: 0 });

    const remaining = (await collection.get({ include: [] })).ids.sort();
    expect(remaining).toEqual(Array.from({ length: 5 }, (_, i) => `new-${i}`).sort());
    // Every archived record is in exactly one archive.
    const archived: string[] = [];
    for (const { manifest } of (await completeBackups(store, name)).backups) {
      for (const chunk of manifest.chunks) archived.push(...(await readChunk(store, manifest, chunk)).ids);
    }
    expect(archived.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `old-${i}`).sort());
  });
});
