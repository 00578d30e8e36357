import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import type { JobContext, Progress } from "../src/jobs/job-context.js";
import { prune, type PruneResult } from "../src/jobs/prune.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { packsFolder } from "../src/storage/backup-format/layout.js";
import { storedPacks } from "../src/storage/backup-format/packs.js";
import { snapshotOf, STORES, testS3Store } from "./helpers/backup-fixtures.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, jobContext, seedCollection, uniqueName } from "./helpers/services.js";

// Review 4 of format 4: prune against writers that reuse packs (finding 2), a pack lost from the newest backup
// (finding 3), and a server that ignores Range (finding 5).
const chroma = chromaStore();
const RECORDS = 400;

const dedupeRun = (collection: string, ctx: JobContext, extra: Record<string, unknown> = {}) =>
  backup.process(backup.payload.parse({ collection, pageSize: 50, dedupe: true, packBytes: 16 * 1024, ...extra }), ctx);

async function restoredRows(backupId: string, ctx: JobContext) {
  const target = uniqueName("packs_restored");
  await restore.process(restore.payload.parse({ collection: target, backupId }), ctx);
  return (await snapshotOf(chroma, target)).rows;
}

describe.each(STORES)("prune and reused packs on $name", ({ open }) => {
  it("a prune while a backup holds the lease sweeps nothing; the backup, reusing packs of a backup that retention drops, restores bit for bit", async () => {
    const { store } = open();
    const collection = uniqueName("packs_race");
    await seedCollection(chroma, collection, RECORDS, 32);
    // Lease lifetime 0: packs just written are old enough for a prune with no grace period.
    const locks = new LocalLocks(0);
    const ctx = jobContext({ chroma, backupStore: store, locks, runner: "job 1" });
    const pruner = jobContext({ chroma, backupStore: store, locks, runner: "job 2" });
    const first = await dedupeRun(collection, ctx);
    // A full copy in between: the next deduplicated backup reuses from the first, which `last: 1` then drops.
    const full = await backup.process(backup.payload.parse({ collection }), ctx);
    const snapshot = await snapshotOf(chroma, collection);

    let pruned: Promise<PruneResult> | undefined;
    const progress = async (p: Progress) => {
      // By now the backup has read the first backup's manifest and listed chunks it reuses from its packs.
      if (pruned || p.done < 200) return;
      pruned = prune.process(prune.payload.parse({ collection, keep: { last: 1 }, leftoverGraceHours: 0 }), pruner);
      await pruned;
    };
    const third: BackupResult = await dedupeRun(collection, { ...ctx, progress });
    const during = await pruned!;
    expect(during.deleted).toEqual([first.backupId]);
    expect(during).toMatchObject({ chunksSwept: 0, sweepSkipped: `a backup of ${collection} (job 1) is running` });
    expect(third.reusedChunks).toBeGreaterThan(0);
    expect(third.reusedChunks).toBe(third.chunks);
    await expect(verify.process(verify.payload.parse({ collection, backupId: third.backupId }), ctx)).resolves.toMatchObject({ recordsChecked: RECORDS });

    // No writer now: the full copy goes, and the sweep keeps every pack the third backup lists.
    const after = await prune.process(prune.payload.parse({ collection, keep: { last: 1 }, leftoverGraceHours: 0 }), pruner);
    expect(after.deleted).toEqual([full.backupId]);
    expect(after.sweepSkipped).toBeUndefined();
    const listed = (await readManifest(store, collection, third.backupId)).packs!.map((p) => p.name).sort();
    expect([...(await storedPacks(store, collection)).keys()].sort()).toEqual(listed);
    expect(await restoredRows(third.backupId, ctx)).toEqual(snapshot.rows);
  });

  it("a backup started while a prune plans and sweeps stands down, naming the prune's run", async () => {
    const { store } = open();
    const collection = uniqueName("packs_pruning");
    await seedCollection(chroma, collection, 60, 8);
    const locks = new LocalLocks(0);
    await dedupeRun(collection, jobContext({ chroma, backupStore: store, locks, runner: "job 1" }));
    let started: Promise<BackupResult> | undefined;
    // The prune's first listing waits for a backup started right then, under the same leases.
    const paused = new Proxy(store, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (prop !== "list" || typeof value !== "function") return typeof value === "function" ? value.bind(target) : value;
        return async function* (prefix: string) {
          started ??= dedupeRun(collection, jobContext({ chroma, backupStore: store, locks, runner: "job 3" }));
          await started;
          yield* target.list(prefix);
        };
      },
    });
    const pruned = await prune.process(prune.payload.parse({ collection, keep: { last: 1 }, leftoverGraceHours: 0 }), jobContext({ chroma, backupStore: paused, locks, runner: "job 2" }));
    expect(pruned.sweepSkipped).toBeUndefined();
    expect((await started!).skipped).toBe(`a backup of ${collection}, or a prune sweeping its packs, is already running (job 2); this one stands down`);
  });

  it("a prune while an archive of the collection holds its lease sweeps nothing, and sweeps once it ends", async () => {
    const { store } = open();
    const collection = uniqueName("packs_archiving");
    await seedCollection(chroma, collection, 60, 8);
    const locks = new LocalLocks(0);
    const ctx = jobContext({ chroma, backupStore: store, locks, runner: "job 2" });
    await dedupeRun(collection, ctx);
    const orphan = "0".repeat(64);
    await store.put(packsFolder(collection) + orphan, Buffer.from("no manifest lists this"));
    const archiving = await locks.tryAcquire(`archive:${collection}`, "job 3");
    const payload = prune.payload.parse({ collection, keep: { last: 1 }, leftoverGraceHours: 0 });
    expect(await prune.process(payload, ctx)).toMatchObject({ chunksSwept: 0, sweepSkipped: `an archive of ${collection} (job 3) is running` });
    expect((await storedPacks(store, collection)).has(orphan)).toBe(true);
    await archiving.release();
    expect(await prune.process(payload, ctx)).toMatchObject({ chunksSwept: 1 });
    expect((await storedPacks(store, collection)).has(orphan)).toBe(false);
  });

  it("a pack missing from the newest backup: the next backup stores its chunks again and restores bit for bit (the old one fails verify naming the pack)", async () => {
    const { store } = open();
    const collection = uniqueName("packs_lost");
    await seedCollection(chroma, collection, RECORDS, 32);
    const ctx = jobContext({ chroma, backupStore: store, locks: new LocalLocks(0) });
    const damaged = await dedupeRun(collection, ctx);
    const packs = (await readManifest(store, collection, damaged.backupId)).packs!;
    expect(packs.length).toBeGreaterThan(2);
    const lost = packs[1]!.name;
    await store.delete([packsFolder(collection) + lost]);
    await expect(verify.process(verify.payload.parse({ collection, backupId: damaged.backupId }), ctx)).rejects.toThrow(new RegExp(`pack ${packsFolder(collection)}${lost} is not in`));

    const next = await dedupeRun(collection, ctx);
    expect(next.warnings).toEqual([expect.stringMatching(new RegExp(`^pack ${packsFolder(collection)}${lost} of backup ${damaged.backupId} is missing in .*: its chunks are stored again`))]);
    expect(next.reusedChunks).toBeGreaterThan(0);
    expect(next.reusedChunks).toBeLessThan(next.chunks);
    // Every pack the new manifest lists is stored at its size. (Chunks stored again in the same order make the same
    // pack, under the same name: then the old backup is whole again too.)
    const stored = await storedPacks(store, collection);
    for (const pack of (await readManifest(store, collection, next.backupId)).packs!) expect(stored.get(pack.name)?.size).toBe(pack.bytes);
    expect(await restoredRows(next.backupId, ctx)).toEqual((await snapshotOf(chroma, collection)).rows);
  });
});

describe("an S3 server that ignores Range", () => {
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    proxy = await startHttpFaultProxy(inject("s3Endpoint"));
  });
  afterAll(() => proxy.close());

  it("fails the restore in one line naming the pack and that the server ignored Range", async () => {
    const collection = uniqueName("packs_norange");
    await seedCollection(chroma, collection, 60, 8);
    const store = testS3Store(uniqueName("norange"), proxy.url);
    const ctx = jobContext({ chroma, backupStore: store });
    const made = await dedupeRun(collection, ctx);
    // A 200 with a body and no Content-Range: what a server or proxy that drops the Range header answers.
    proxy.inject({ method: "GET", path: /\/packs\//, fault: { kind: "status", status: 200, body: "the whole pack" } });
    const target = uniqueName("packs_never");
    const attempt = restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), ctx);
    await expect(attempt).rejects.toThrow(/ignored the Range of a read of \S+\/packs\/[0-9a-f]{64} \(asked bytes=0-\d+, answered the whole object, 14 bytes\)/);
    expect(proxy.requests.some((r) => r.fault === "status")).toBe(true);
  });
});
