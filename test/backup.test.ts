import { execFileSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { IntegrityError } from "../src/errors.js";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import type { Progress } from "../src/jobs/job-context.js";
import { prune } from "../src/jobs/prune.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { completeBackups, readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { decodeChunk } from "../src/storage/backup-format/chunk-codec.js";
import { backupFolder, MANIFEST } from "../src/storage/backup-format/layout.js";
import { FORMAT_VERSION } from "../src/storage/backup-format/manifest.js";
import { createRichCollection, RICH_CONFIG, RICH_DIMENSION, RICH_METADATA, snapshotOf, STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, jobContext, uniqueName } from "./helpers/services.js";

const chroma = chromaStore();

describe.each(STORES)("backups on $name", ({ open }) => {
  const source = uniqueName("rich");
  const { store } = open();
  const ctx = (overrides = {}) => jobContext({ chroma, backupStore: store, ...overrides });
  let first: BackupResult;

  beforeAll(async () => {
    await createRichCollection(chroma, source);
    // Small pages and chunks, so pages split across chunks and the collection spans several of them.
    first = await backup.process(backup.payload.parse({ collection: source, pageSize: 6, chunkRecords: 9 }), ctx());
  });

  it("writes checksummed chunks and a manifest describing the collection", async () => {
    expect(first).toMatchObject({ collection: source, records: 40, chunks: 5, consistent: true, warnings: [] });
    const manifest = await readManifest(store, source, first.backupId);
    expect(manifest.dimension).toBe(RICH_DIMENSION);
    expect(manifest.chunks.map((c) => c.records)).toEqual([9, 9, 9, 9, 4]);
    expect(manifest.collection.metadata).toEqual(RICH_METADATA);
    expect(manifest.collection.configuration).toMatchObject({ hnsw: RICH_CONFIG });
    const stored = await store.get(backupFolder(source, first.backupId) + manifest.chunks[0]!.key);
    expect(stored.length).toBe(manifest.chunks[0]!.bytes);
    // Text and embeddings are separate gzip members; the system's gzip reads them back as one chunk.
    const unzipped = execFileSync("gzip", ["-dc"], { input: stored });
    expect(decodeChunk(unzipped, "chunk 0").ids).toHaveLength(9);
    // Binary float32: far below the ~20 bytes a float takes as JSON text.
    expect(first.bytes).toBeLessThan(40 * RICH_DIMENSION * 4 * 1.1 + 8000);
  });

  it("restores into a new collection equal to the source: documents, metadata, configuration, embeddings bit for bit", async () => {
    const target = uniqueName("restored");
    const progress: Progress[] = [];
    const result = await restore.process(
      restore.payload.parse({ collection: target, backupId: first.backupId }),
      ctx({ progress: async (p: Progress) => void progress.push(p) }),
    );
    expect(result).toMatchObject({ collection: target, source, records: 40, replaced: false });
    const [before, after] = await Promise.all([snapshotOf(chroma, source), snapshotOf(chroma, target)]);
    expect(after.rows).toEqual(before.rows);
    expect(after.rows.filter((r) => r.document === null)).toHaveLength(20);
    expect(after.rows.filter((r) => r.metadata === null)).toHaveLength(20);
    expect(after.metadata).toEqual(RICH_METADATA);
    expect(after.hnsw).toEqual(before.hnsw);
    expect(progress.at(-1)).toEqual({ done: 40, total: 40, unit: "records" });
  });

  it("refuses a non-empty target unless told to replace it, then swaps it out", async () => {
    const target = uniqueName("occupied");
    await chroma.client.createCollection({ name: target, embeddingFunction: null }).then((c) =>
      c.add({ ids: ["old"], embeddings: [new Array<number>(RICH_DIMENSION).fill(1)] }),
    );
    await expect(restore.process(restore.payload.parse({ collection: target, backupId: first.backupId }), ctx())).rejects.toThrow(
      /already holds 1 records.*--replace/,
    );
    expect(await (await chroma.openCollection(target)).count()).toBe(1);
    const result = await restore.process(restore.payload.parse({ collection: target, backupId: first.backupId, replace: true }), ctx());
    expect(result.replaced).toBe(true);
    const restored = await snapshotOf(chroma, target);
    expect(restored.rows.map((r) => r.id)).not.toContain("old");
    expect(restored.rows).toHaveLength(40);
    expect((await chroma.listCollectionNames()).filter((n) => n.startsWith(`${target}__`))).toEqual([]);
  });

  it("verify checks all chunks or a sample", async () => {
    const all = await verify.process(verify.payload.parse({ collection: source, backupId: first.backupId }), ctx());
    expect(all).toMatchObject({ chunksChecked: 5, chunksTotal: 5, recordsChecked: 40, ok: true });
    const some = await verify.process(verify.payload.parse({ collection: source, samplePercent: 20 }), ctx());
    expect(some.chunksChecked).toBe(1);
  });

  it("a flipped byte in one chunk fails verify naming it and stops restore before any write", async () => {
    const copy = await backup.process(backup.payload.parse({ collection: source, chunkRecords: 9 }), ctx());
    const manifest = await readManifest(store, source, copy.backupId);
    const key = backupFolder(source, copy.backupId) + manifest.chunks[3]!.key;
    const bytes = await store.get(key);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await store.put(key, bytes);

    const failure = verify.process(verify.payload.parse({ collection: source, backupId: copy.backupId }), ctx());
    await expect(failure).rejects.toThrow(IntegrityError);
    await expect(failure).rejects.toThrow(`chunk ${manifest.chunks[3]!.key} of backup ${copy.backupId}`);

    const target = uniqueName("never");
    const before = await chroma.listCollectionNames();
    await expect(restore.process(restore.payload.parse({ collection: target, backupId: copy.backupId }), ctx())).rejects.toThrow(
      /fails its SHA-256 check/,
    );
    expect(await chroma.listCollectionNames()).toEqual(before);
  });

  it("a chunk damaged after the check stops the restore mid-way and leaves no collection behind", async () => {
    const copy = await backup.process(backup.payload.parse({ collection: source, chunkRecords: 9 }), ctx());
    const manifest = await readManifest(store, source, copy.backupId);
    const key = backupFolder(source, copy.backupId) + manifest.chunks.at(-1)!.key;
    const damage = async (p: Progress) => {
      if (p.unit !== "chunks verified" || p.done !== p.total) return;
      const bytes = await store.get(key);
      bytes[0]! ^= 0xff;
      await store.put(key, bytes);
    };
    const target = uniqueName("halfway");
    const before = await chroma.listCollectionNames();
    const written: number[] = [];
    await expect(
      restore.process(
        // Batches of 5: earlier chunks are being written when the damaged one is read.
        restore.payload.parse({ collection: target, backupId: copy.backupId, batchSize: 5 }),
        ctx({ progress: async (p: Progress) => (p.unit === "records" ? void written.push(p.done) : damage(p)) }),
      ),
    ).rejects.toThrow(/fails its SHA-256 check/);
    expect(written.at(-1)).toBeGreaterThanOrEqual(25);
    expect(await chroma.listCollectionNames()).toEqual(before);
  });

  it("refuses a truncated, tampered or future-format manifest with one line naming the backup", async () => {
    const copy = await backup.process(backup.payload.parse({ collection: source }), ctx());
    const key = backupFolder(source, copy.backupId) + MANIFEST;
    const original = (await store.get(key)).toString("utf8");
    const attempt = () => readManifest(store, source, copy.backupId);

    await store.put(key, Buffer.from(original.slice(0, original.length / 2)));
    await expect(attempt()).rejects.toThrow(`manifest of backup ${copy.backupId} is truncated or not JSON`);
    await store.put(key, Buffer.from(original.replace('"records": 40', '"records": 41')));
    await expect(attempt()).rejects.toThrow(/fails its checksum|do not add up/);
    await store.put(key, Buffer.from(original.replace(`"formatVersion": ${FORMAT_VERSION}`, '"formatVersion": 9')));
    await expect(attempt()).rejects.toThrow(`backup ${copy.backupId} has format version 9; this vectorkeeper reads versions 1, 2, 3 and 4`);

    const listed = await completeBackups(store, source);
    expect(listed.backups.map((b) => b.backupId)).not.toContain(copy.backupId);
    expect(listed.damaged.map((d) => d.backupId)).toContain(copy.backupId);
    await store.put(key, Buffer.from(original));
  });

  it("stands down while another backup of the collection holds the lease", async () => {
    const locks = new LocalLocks();
    const held = await locks.tryAcquire(`backup:${source}`, "job 7");
    const result = await backup.process(backup.payload.parse({ collection: source }), ctx({ locks }));
    expect(result.skipped).toContain("already running (job 7)");
    await held.release();
  });

  it("prunes by retention, keeping the newest, and leaves an empty collection's backup valid", async () => {
    const plan = await prune.process(prune.payload.parse({ collection: source, keep: { last: 1 }, dryRun: true }), ctx());
    const listed = (await completeBackups(store, source)).backups;
    const before = listed.map((b) => b.backupId);
    expect(plan.deleted.length).toBe(before.length - 1);
    // What prune frees is what `backups list` (and each backup's result) says the deleted backups take: chunks and manifest.
    expect(plan.bytesFreed).toBe(listed.filter((b) => plan.deleted.includes(b.backupId)).reduce((n, b) => n + b.bytes, 0));
    expect((await completeBackups(store, source)).backups).toHaveLength(before.length);

    const done = await prune.process(prune.payload.parse({ collection: source, keep: { last: 1 } }), ctx());
    expect(done.bytesFreed).toBe(plan.bytesFreed);
    expect(done.kept.map((k) => k.backupId)).toEqual([before[0]]);
    expect((await completeBackups(store, source)).backups.map((b) => b.backupId)).toEqual([before[0]]);

    const empty = uniqueName("empty");
    await chroma.client.createCollection({ name: empty, embeddingFunction: null });
    const result = await backup.process(backup.payload.parse({ collection: empty }), ctx());
    expect(result).toMatchObject({ records: 0, chunks: 0 });
    const restored = await restore.process(restore.payload.parse({ collection: uniqueName("empty_copy"), backupId: result.backupId }), ctx());
    expect(restored.records).toBe(0);
  });
});
