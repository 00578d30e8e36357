import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import type { JobContext, Progress } from "../src/jobs/job-context.js";
import { prune, type PruneResult } from "../src/jobs/prune.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { STORES, testS3Store } from "./helpers/backup-fixtures.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, jobContext, seedCollection, uniqueName } from "./helpers/services.js";

// Failure 1 of issue 10: a prune run while a backup was being written deleted its chunks, and the backup then wrote
// its manifest and was listed as complete although it could not be restored.
const chroma = chromaStore();
const collection = uniqueName("prune_race");
const RECORDS = 400;

beforeAll(() => seedCollection(chroma, collection, RECORDS, 32));

/** A backup that, half way through, waits for a prune (grace 0) of the same collection run by `pruner`. */
async function backupWithPruneMidway(ctx: JobContext, pruner: JobContext): Promise<{ made: Promise<BackupResult>; pruned: Promise<PruneResult> }> {
  let resolvePruned: (result: PruneResult) => void = () => undefined;
  const pruned = new Promise<PruneResult>((resolve) => (resolvePruned = resolve));
  let ran = false;
  const progress = async (p: Progress) => {
    if (ran || p.done < 200) return;
    ran = true;
    // Let the chunk uploads in flight land, so the folder holds several chunks when prune looks.
    await new Promise((r) => setTimeout(r, 300));
    resolvePruned(await prune.process(prune.payload.parse({ collection, keep: { last: 50 }, leftoverGraceHours: 0 }), pruner));
  };
  const made = backup.process(backup.payload.parse({ collection, pageSize: 50, chunkRecords: 50 }), { ...ctx, progress });
  return { made, pruned };
}

describe.each(STORES)("prune during a running backup on $name", ({ open }) => {
  it("leaves the running backup's folder alone while its lease is held; the backup is listed and verifies", async () => {
    const { store } = open();
    const locks = new LocalLocks();
    const ctx = jobContext({ chroma, backupStore: store, locks, runner: "job 1" });
    const { made, pruned } = await backupWithPruneMidway(ctx, jobContext({ chroma, backupStore: store, locks, runner: "job 2" }));
    const result = await made;
    expect((await pruned).leftoversDeleted).toEqual([]);
    expect((await pruned).leftoversKept).toEqual([result.backupId]);
    expect(result).toMatchObject({ records: RECORDS, chunks: 8 });
    expect((await completeBackups(store, collection)).backups.map((b) => b.backupId)).toEqual([result.backupId]);
    const checked = await verify.process(verify.payload.parse({ collection, backupId: result.backupId }), ctx);
    expect(checked).toMatchObject({ ok: true, recordsChecked: RECORDS });
  });

  it("leaves a folder written within one lease lifetime alone even when it cannot see the lease", async () => {
    const { store } = open();
    const ctx = jobContext({ chroma, backupStore: store, locks: new LocalLocks(), runner: "job 1" });
    // Another process's locks: the backup's lease is invisible to this prune.
    const blind = jobContext({ chroma, backupStore: store, locks: new LocalLocks(), runner: "job 2" });
    const { made, pruned } = await backupWithPruneMidway(ctx, blind);
    const result = await made;
    expect((await pruned).leftoversDeleted).toEqual([]);
    const checked = await verify.process(verify.payload.parse({ collection, backupId: result.backupId }), ctx);
    expect(checked).toMatchObject({ ok: true, recordsChecked: RECORDS });
  });
});

describe("a backup whose chunk never reached the store", () => {
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    proxy = await startHttpFaultProxy(inject("s3Endpoint"));
  });
  afterAll(() => proxy.close());

  it("fails before writing a manifest, so nothing unrestorable is listed", async () => {
    const prefix = uniqueName("lost_chunk");
    const store = testS3Store(prefix, proxy.url);
    // The store answers 200 to the third chunk's upload and keeps nothing: a lost write.
    proxy.inject({ method: "PUT", path: /chunk-000002/, times: 1, fault: { kind: "status", status: 200, body: "" } });
    const ctx = jobContext({ chroma, backupStore: store });
    await expect(backup.process(backup.payload.parse({ collection, chunkRecords: 100 }), ctx)).rejects.toThrow(
      /chunk chunk-000002\.vkc\.gz of \S+ is missing in s3:\/\/vk-test\/\S+ at \S+ after its upload/,
    );
    expect(proxy.requests.some((r) => r.fault === "status")).toBe(true);
    expect((await completeBackups(store, collection)).backups).toEqual([]);
  });
});
