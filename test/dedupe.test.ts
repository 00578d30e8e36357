import { beforeAll, describe, expect, it } from "vitest";
import { archive } from "../src/jobs/archive.js";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import { prune } from "../src/jobs/prune.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { createHash } from "node:crypto";
import { readChunk } from "../src/storage/backup-format/backup-reader.js";
import { completeBackups, readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { soleBytes, storedChunks } from "../src/storage/backup-format/content-store.js";
import { backupFolder, chunksFolder, MANIFEST, newBackupId, packsFolder } from "../src/storage/backup-format/layout.js";
import { serializeManifest, type Manifest, type PackedChunk } from "../src/storage/backup-format/manifest.js";
import { storedPacks } from "../src/storage/backup-format/packs.js";
import type { ObjectStore } from "../src/storage/objects/object-store.js";
import { createRichCollection, RICH_DIMENSION, snapshotOf, STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, jobContext, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();

/** A format 4 chunk's stored bytes, read out of its pack (a plain store: as the writer compressed them). */
async function packedBytes(store: ObjectStore, manifest: Manifest, chunk: PackedChunk): Promise<Buffer> {
  return store.getRange(packsFolder(manifest.collection.name) + manifest.packs![chunk.pack]!.name, chunk.offset, chunk.bytes);
}

const packed = (manifest: Manifest) => manifest.chunks as PackedChunk[];

describe.each(STORES)("deduplicated backups (format 4) on $name", ({ open }) => {
  const source = uniqueName("dedupe");
  const { store } = open();
  // Lease lifetime 0: chunks a test just wrote are old enough for a prune with no grace period.
  const ctx = () => jobContext({ chroma, backupStore: store, locks: new LocalLocks(0) });
  // Small packs: a backup of these few records writes several, so a prune has packs to keep and packs to sweep.
  const run = (extra = {}) => backup.process(backup.payload.parse({ collection: source, pageSize: 7, dedupe: true, packBytes: 64 * 1024, ...extra }), ctx());
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

  it("stores each chunk once, named by its SHA-256, in packs, and reuses it: an unchanged collection uploads only a manifest", async () => {
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
    expect(manifest.formatVersion).toBe(4);
    // Fewer packs than chunks, each stored at its listed size and named by the SHA-256 of its bytes.
    const stored = await storedPacks(store, source);
    expect(manifest.packs!.length).toBeGreaterThan(1);
    expect(manifest.packs!.length).toBeLessThan(manifest.chunks.length);
    for (const pack of manifest.packs!) {
      expect(stored.get(pack.name)?.size).toBe(pack.bytes);
      expect(createHash("sha256").update(await store.get(packsFolder(source) + pack.name)).digest("hex")).toBe(pack.name);
    }
    // A first backup's chunks lie end to end in its packs; each is the SHA-256 its key says.
    for (const chunk of packed(manifest)) {
      expect(createHash("sha256").update(await packedBytes(store, manifest, chunk)).digest("hex")).toBe(chunk.key);
    }
    const ends = new Map<number, number>();
    for (const chunk of packed(manifest)) {
      expect(chunk.offset).toBe(ends.get(chunk.pack) ?? 0);
      ends.set(chunk.pack, chunk.offset + chunk.bytes);
    }
    for (const [index, end] of ends) expect(end).toBe(manifest.packs![index]!.bytes);
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

  it("prune after deleting the middle of the chain sweeps only packs no kept backup needs; the rest stay restorable", async () => {
    const other = uniqueName("dedupe_other");
    await createRichCollection(chroma, other, 12);
    await backup.process(backup.payload.parse({ collection: other, dedupe: true }), ctx());
    const otherPacks = [...(await storedPacks(store, other)).keys()].sort();

    // The middle two go; a pack a manifest-less crash left behind goes too (unreferenced).
    const middle = [chain[1]!.result.backupId, chain[2]!.result.backupId];
    const orphan = "0".repeat(64);
    await store.put(packsFolder(source) + orphan, Buffer.from("left by a killed backup"));
    for (const id of middle) await store.delete([backupFolder(source, id) + MANIFEST]);
    const before = await storedPacks(store, source);
    const kept = [chain[0]!, chain[3]!].map((c) => c.result.backupId);
    const listed = new Set<string>();
    // Bytes of each kept pack that a kept manifest lists (a chunk at one offset counted once).
    const usedAt = new Map<string, Map<number, number>>();
    for (const id of kept) {
      const manifest = await readManifest(store, source, id);
      for (const pack of manifest.packs!) listed.add(pack.name);
      for (const chunk of packed(manifest)) {
        const name = manifest.packs![chunk.pack]!.name;
        usedAt.set(name, (usedAt.get(name) ?? new Map<number, number>()).set(chunk.offset, chunk.bytes));
      }
    }
    const unused = [...listed].reduce((n, name) => n + before.get(name)!.size - [...usedAt.get(name)!.values()].reduce((m, b) => m + b, 0), 0);
    const unlisted = [...before.keys()].filter((k) => !listed.has(k));
    expect(unlisted).toContain(orphan);

    const payload = { collection: source, keep: { last: 10 }, leftoverGraceHours: 0 };
    const dry = await prune.process(prune.payload.parse({ ...payload, dryRun: true }), ctx());
    expect(dry).toMatchObject({ dryRun: true, chunksSwept: unlisted.length });
    // The third backup's version of a record changed again in the fourth: in a pack kept whole for its other chunks.
    expect(dry.unusedBytesInKeptPacks).toBeGreaterThan(0);
    expect(dry.unusedBytesInKeptPacks).toBe(unused);
    expect(dry.bytesFreed).toBe(unlisted.reduce((n, k) => n + before.get(k)!.size, 0));
    expect((await storedPacks(store, source)).size).toBe(before.size);

    const done = await prune.process(prune.payload.parse(payload), ctx());
    expect(done).toMatchObject({ chunksSwept: unlisted.length, bytesFreed: dry.bytesFreed });
    expect([...(await storedPacks(store, source)).keys()].sort()).toEqual([...listed].sort());
    expect([...(await storedPacks(store, other)).keys()].sort()).toEqual(otherPacks);
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
    const [a] = manifest.chunks;
    const restoreInto = async () => {
      const target = uniqueName("dedupe_never");
      const attempt = restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), ctx());
      return { target, attempt };
    };

    // One byte of chunk a changed inside its pack (same size): only the check of its content against its name can tell.
    const packKey = packsFolder(victim) + manifest.packs![(a as PackedChunk).pack]!.name;
    const pack = await store.get(packKey);
    const altered = Buffer.from(pack);
    altered[(a as PackedChunk).offset + (a!.bytes >> 1)]! ^= 0x20;
    await store.put(packKey, altered);
    const swapped = await restoreInto();
    await expect(swapped.attempt).rejects.toThrow(new RegExp(`chunk ${a!.key} \\(pack [0-9a-f]{64}, byte \\d+\\) of backup ${made.backupId}.*SHA-256`));
    expect(await chroma.listCollectionNames()).not.toContain(swapped.target);

    // Cut short: the chunks at its end are named, whether their range starts inside the pack or past its end.
    await store.put(packKey, pack.subarray(0, (a as PackedChunk).offset + 1));
    const cut = await restoreInto();
    await expect(cut.attempt).rejects.toThrow(new RegExp(`chunk [0-9a-f]{64} .*of backup ${made.backupId} .*is cut short: pack ${packKey} in .* ends before`));
    expect(await chroma.listCollectionNames()).not.toContain(cut.target);
    const tail = manifest.chunks.find((c) => (c as PackedChunk).pack === (a as PackedChunk).pack && (c as PackedChunk).offset > (a as PackedChunk).offset);
    expect(tail).toBeDefined();
    await expect(readChunk(store, manifest, tail!)).rejects.toThrow(new RegExp(`chunk ${tail!.key} .*is cut short`));

    await store.delete([packKey]);
    const missing = await restoreInto();
    await expect(missing.attempt).rejects.toThrow(new RegExp(`chunk ${a!.key} .*of backup ${made.backupId} .*is missing: pack ${packKey} is not in`));
    expect(await chroma.listCollectionNames()).not.toContain(missing.target);
    await store.put(packKey, pack);

    const key = backupFolder(victim, made.backupId) + MANIFEST;
    const text = await store.get(key);
    await store.put(key, text.subarray(0, text.length - 40));
    const truncated = await restoreInto();
    await expect(truncated.attempt).rejects.toThrow(new RegExp(`manifest of backup ${made.backupId} is truncated`));
    expect(await chroma.listCollectionNames()).not.toContain(truncated.target);
  });

  it("archives to the object store share the machinery: packed chunks, kept by prune's mark, restorable", async () => {
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
    expect((await readManifest(store, name, backupId)).formatVersion).toBe(4);
    await backup.process(backup.payload.parse({ collection: name, dedupe: true }), ctx());
    const swept = await prune.process(prune.payload.parse({ collection: name, keep: { last: 1 }, leftoverGraceHours: 0 }), ctx());
    expect(swept.chunksSwept).toBe(0);
    const back = uniqueName("dedupe_archive_back");
    await restore.process(restore.payload.parse({ collection: back, backupId }), ctx());
    expect((await snapshotOf(chroma, back)).rows).toEqual(before.rows.filter((r) => Number(r.id.slice(4)) < 20));
  });

  it("a format 3 backup (chunks stored one per object) still lists, verifies and restores; prune sweeps its chunks once it goes", async () => {
    // Made from a format 4 backup of the chain: each chunk's bytes under its name in the chunks folder, as format 3 had them.
    const { result, snapshot } = chain[3]!;
    const v4 = await readManifest(store, source, result.backupId);
    for (const chunk of packed(v4)) await store.put(chunksFolder(source) + chunk.key, await packedBytes(store, v4, chunk));
    const backupId = newBackupId(new Date(Date.parse(v4.startedAt) - 1000));
    const { packs: _packs, checksum: _checksum, ...rest } = v4;
    const v3 = { ...rest, formatVersion: 3 as const, backupId, chunks: packed(v4).map(({ key, records, bytes }) => ({ key, records, bytes })) };
    await store.put(backupFolder(source, backupId) + MANIFEST, serializeManifest(v3));

    const { backups, damaged } = await completeBackups(store, source);
    expect(damaged).toEqual([]);
    expect(backups.find((b) => b.backupId === backupId)?.manifest.formatVersion).toBe(3);
    expect(await verify.process(verify.payload.parse({ collection: source, backupId }), ctx())).toMatchObject({ recordsChecked: snapshot.rows.length });
    const target = uniqueName("dedupe_v3_back");
    await restore.process(restore.payload.parse({ collection: target, backupId }), ctx());
    expect((await snapshotOf(chroma, target)).rows).toEqual(snapshot.rows);

    const chunks = (await storedChunks(store, source)).size;
    expect(chunks).toBeGreaterThan(0);
    const kept = await prune.process(prune.payload.parse({ collection: source, keep: { last: 10 }, leftoverGraceHours: 0 }), ctx());
    expect(kept.chunksSwept).toBe(0);
    await store.delete([backupFolder(source, backupId) + MANIFEST]);
    const swept = await prune.process(prune.payload.parse({ collection: source, keep: { last: 10 }, leftoverGraceHours: 0 }), ctx());
    expect(swept.chunksSwept).toBe(chunks);
    expect((await storedChunks(store, source)).size).toBe(0);
  });
});
