import { beforeAll, describe, expect, it } from "vitest";
import { archive } from "../src/jobs/archive.js";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import { prune } from "../src/jobs/prune.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { completeBackups, readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { soleBytes, storedChunks } from "../src/storage/backup-format/content-store.js";
import { backupFolder, chunksFolder, MANIFEST } from "../src/storage/backup-format/layout.js";
import { createRichCollection, RICH_DIMENSION, snapshotOf, STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, jobContext, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();

describe.each(STORES)("deduplicated backups (format 3) on $name", ({ open }) => {
  const source = uniqueName("dedupe");
  const { store } = open();
  // Lease lifetime 0: chunks a test just wrote are old enough for a prune with no grace period.
  const ctx = () => jobContext({ chroma, backupStore: store, locks: new LocalLocks(0) });
  const run = (extra = {}) => backup.process(backup.payload.parse({ collection: source, pageSize: 7, dedupe: true, ...extra }), ctx());
  const chain: { result: BackupResult; snapshot: Awaited<ReturnType<typeof snapshotOf>> }[] = [];

  beforeAll(async () => {
    const collection = await createRichCollection(chroma, source, 90);
    const take = async () => chain.push({ result: await run(), snapshot: await snapshotOf(chroma, source) });
    await take();
    await take(); // unchanged
    // Updates, inserts and deletes between backups: only the chunks around them change.
    await collection.update({
      ids: [chain[0]!.snapshot.rows[10]!.id, chain[0]!.snapshot.rows[50]!.id],
      embeddings: vectors(2, RICH_DIMENSION, 42),
      documents: ["changed one", "changed two"],
    });
    const fresh = vectors(4, RICH_DIMENSION, 99);
    await collection.add({ ids: fresh.map((_, i) => `appended-${i}`), embeddings: fresh, documents: fresh.map((_, i) => `new ${i}`) });
    await take();
    await collection.delete({ ids: [chain[0]!.snapshot.rows[30]!.id, chain[0]!.snapshot.rows[70]!.id] });
    // Changed again: the third backup's version of this record's chunk is in no other backup.
    await collection.update({ ids: [chain[0]!.snapshot.rows[10]!.id], embeddings: vectors(1, RICH_DIMENSION, 43), documents: ["changed again"] });
    await take();
  }, 180_000);

  it("stores each chunk once under its SHA-256 and reuses it: an unchanged collection uploads only a manifest", async () => {
    const [first, unchanged, edited, deleted] = chain.map((c) => c.result);
    expect(first).toMatchObject({ records: 90, reusedChunks: 0, consistent: true });
    expect(first!.chunks).toBeGreaterThan(5);
    expect(first!.uploadedBytes).toBe(first!.bytes);
    const manifestBytes = (await store.get(backupFolder(source, unchanged!.backupId) + MANIFEST)).length;
    expect(unchanged).toMatchObject({ records: 90, reusedChunks: unchanged!.chunks, uploadedBytes: manifestBytes });
    expect(unchanged!.uploadedBytes).toBeLessThan(first!.bytes * 0.02);
    // Two updates, four appended records, two deletes: most chunks are the same objects as before.
    for (const later of [edited!, deleted!]) {
      expect(later.reusedChunks).toBeGreaterThan(later.chunks / 2);
      expect(later.uploadedBytes).toBeLessThan(first!.bytes * 0.6);
    }
    const manifest = await readManifest(store, source, first!.backupId);
    expect(manifest.formatVersion).toBe(3);
    const stored = await storedChunks(store, source);
    for (const chunk of manifest.chunks) expect(stored.get(chunk.key)?.size).toBe(chunk.bytes);
    const { createHash } = await import("node:crypto");
    const body = await store.get(chunksFolder(source) + manifest.chunks[0]!.key);
    expect(createHash("sha256").update(body).digest("hex")).toBe(manifest.chunks[0]!.key);
  });

  it("restores every backup of the chain equal to the collection at its time, bit for bit", async () => {
    for (const { result, snapshot } of chain) {
      const target = uniqueName("dedupe_restored");
      await restore.process(restore.payload.parse({ collection: target, backupId: result.backupId }), ctx());
      const after = await snapshotOf(chroma, target);
      expect(after.rows).toEqual(snapshot.rows);
      expect(after.metadata).toEqual(snapshot.metadata);
    }
    const verified = await verify.process(verify.payload.parse({ collection: source, backupId: chain[3]!.result.backupId }), ctx());
    expect(verified).toMatchObject({ recordsChecked: 92 });
  });

  it("lists each backup's logical size and what it alone holds", async () => {
    const { backups } = await completeBackups(store, source);
    const sole = soleBytes(backups);
    const unchanged = backups.find((b) => b.backupId === chain[1]!.result.backupId)!;
    // The unchanged backup shares every chunk with the first: alone it holds only its manifest.
    expect(unchanged.bytes).toBe(chain[1]!.result.bytes);
    expect(sole.get(unchanged.backupId)).toBe((await store.get(backupFolder(source, unchanged.backupId) + MANIFEST)).length);
    expect(sole.get(chain[3]!.result.backupId)).toBeLessThan(chain[3]!.result.bytes / 2);
  });

  it("prune after deleting the middle of the chain sweeps only chunks no kept backup lists; the rest stay restorable", async () => {
    const other = uniqueName("dedupe_other");
    await createRichCollection(chroma, other, 12);
    await backup.process(backup.payload.parse({ collection: other, dedupe: true }), ctx());
    const otherChunks = [...(await storedChunks(store, other)).keys()].sort();

    // The middle two go; a third backup's chunk bytes a manifest-less crash left behind goes too (unreferenced).
    const middle = [chain[1]!.result.backupId, chain[2]!.result.backupId];
    const orphan = "0".repeat(64);
    await store.put(chunksFolder(source) + orphan, Buffer.from("left by a killed backup"));
    for (const id of middle) await store.delete([backupFolder(source, id) + MANIFEST]);
    const before = await storedChunks(store, source);
    const kept = [chain[0]!, chain[3]!].map((c) => c.result.backupId);
    const listed = new Set<string>();
    for (const id of kept) for (const chunk of (await readManifest(store, source, id)).chunks) listed.add(chunk.key);
    const unlisted = [...before.keys()].filter((k) => !listed.has(k));
    expect(unlisted.length).toBeGreaterThan(1);

    const payload = { collection: source, keep: { last: 10 }, leftoverGraceHours: 0 };
    const dry = await prune.process(prune.payload.parse({ ...payload, dryRun: true }), ctx());
    expect(dry).toMatchObject({ dryRun: true, chunksSwept: unlisted.length });
    expect(dry.bytesFreed).toBe(unlisted.reduce((n, k) => n + before.get(k)!.size, 0));
    expect((await storedChunks(store, source)).size).toBe(before.size);

    const done = await prune.process(prune.payload.parse(payload), ctx());
    expect(done).toMatchObject({ chunksSwept: unlisted.length, bytesFreed: dry.bytesFreed });
    expect([...(await storedChunks(store, source)).keys()].sort()).toEqual([...listed].sort());
    expect([...(await storedChunks(store, other)).keys()].sort()).toEqual(otherChunks);
    for (const c of [chain[0]!, chain[3]!]) {
      const target = uniqueName("dedupe_after_prune");
      await restore.process(restore.payload.parse({ collection: target, backupId: c.result.backupId }), ctx());
      expect((await snapshotOf(chroma, target)).rows).toEqual(c.snapshot.rows);
    }
  });

  it("a missing chunk or one whose content does not match its name fails the restore naming it, writing nothing", async () => {
    const victim = uniqueName("dedupe_victim");
    await createRichCollection(chroma, victim, 20);
    const made = await backup.process(backup.payload.parse({ collection: victim, dedupe: true }), ctx());
    const manifest = await readManifest(store, victim, made.backupId);
    const [a, b] = manifest.chunks;
    const restoreInto = async () => {
      const target = uniqueName("dedupe_never");
      const attempt = restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), ctx());
      return { target, attempt };
    };

    const bodyA = await store.get(chunksFolder(victim) + a!.key);
    const bodyB = await store.get(chunksFolder(victim) + b!.key);
    await store.put(chunksFolder(victim) + a!.key, bodyB);
    const swapped = await restoreInto();
    await expect(swapped.attempt).rejects.toThrow(new RegExp(`chunk ${a!.key} of backup ${made.backupId}.*(bytes|SHA-256)`));
    expect(await chroma.listCollectionNames()).not.toContain(swapped.target);

    await store.delete([chunksFolder(victim) + a!.key]);
    const missing = await restoreInto();
    await expect(missing.attempt).rejects.toThrow(new RegExp(`chunk ${a!.key} of backup ${made.backupId} .*is missing`));
    expect(await chroma.listCollectionNames()).not.toContain(missing.target);
    await store.put(chunksFolder(victim) + a!.key, bodyA);

    const key = backupFolder(victim, made.backupId) + MANIFEST;
    const text = await store.get(key);
    await store.put(key, text.subarray(0, text.length - 40));
    const truncated = await restoreInto();
    await expect(truncated.attempt).rejects.toThrow(new RegExp(`manifest of backup ${made.backupId} is truncated`));
    expect(await chroma.listCollectionNames()).not.toContain(truncated.target);
  });

  it("archives to the object store share the machinery: stored chunks, kept by prune's mark, restorable", async () => {
    const name = uniqueName("dedupe_archive");
    const collection = await chroma.client.createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: "l2" } } });
    const old = Date.now() - 90 * 86_400_000;
    await collection.add({
      ids: Array.from({ length: 30 }, (_, i) => `rec-${i}`),
      embeddings: vectors(30, 8, 3),
      metadatas: Array.from({ length: 30 }, (_, i) => ({ _created_at: i < 20 ? old : Date.now(), n: i })),
    });
    const before = await snapshotOf(chroma, name);
    const result = await archive.process(archive.payload.parse({ collection: name, olderThanDays: 30, to: "object-store", dedupe: true }), ctx());
    const backupId = result.target.split(":")[1]!;
    expect((await readManifest(store, name, backupId)).formatVersion).toBe(3);
    await backup.process(backup.payload.parse({ collection: name, dedupe: true }), ctx());
    const swept = await prune.process(prune.payload.parse({ collection: name, keep: { last: 1 }, leftoverGraceHours: 0 }), ctx());
    expect(swept.chunksSwept).toBe(0);
    const back = uniqueName("dedupe_archive_back");
    await restore.process(restore.payload.parse({ collection: back, backupId }), ctx());
    expect((await snapshotOf(chroma, back)).rows).toEqual(before.rows.filter((r) => Number(r.id.slice(4)) < 20));
  });
});
