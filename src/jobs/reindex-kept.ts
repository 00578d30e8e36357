import type { Collection } from "chromadb";
import { z } from "zod";
import type { Logger } from "../logging.js";
import { redactUrlsIn } from "../redact.js";
import { deleteBlob, readBlob, writeBlob } from "../storage/chroma/blob-collection.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { CollectionNotFoundError } from "../storage/chroma/store-errors.js";
import { CollectionSync, type SyncPassOptions } from "../storage/chroma/collection-sync.js";
import { RECORD_FIELDS } from "../storage/chroma/linear-read.js";
import { columnsFromGet, sameRecord } from "../storage/chroma/records.js";
import type { WriteLimits } from "../storage/chroma/writer.js";
import { failpoint } from "./failpoints.js";
import { carriedRecordName, keptCollections, orphanedRecords } from "./reindex-swap.js";

/*
 * Writes made to a kept collection after its reconcile (by clients that still hold its id) are carried into the
 * collection they were reconciled into before the kept one is dropped or rolled back to: the reconcile's last pass
 * leaves a record of what it carried over (a content hash per id), and one more pass against that record finds what
 * was written, changed or deleted there since. Where that cannot be done without guessing, the kept collection stays.
 */

/** Writes made to kept collections after their reconcile, found before each was dropped or rolled back to. */
export interface KeptWrites {
  /** Records written there since, carried into the collection they were reconciled into. */
  written: number;
  /** Records deleted there since, deleted from it too. */
  deleted: number;
  /** Records new, changed or deleted there since that could not be carried over and were dropped (`--drop-changed`). */
  discarded: number;
}

/** A kept collection left in place because what was written to it could not be carried over. */
export interface KeptBack {
  kept: string;
  /** One line: why, and how to go on. */
  reason: string;
}

/** What settling kept collections needs from the run. */
export interface KeptRun {
  chroma: ChromaStore;
  logger: Logger;
  /** The collection under its name. */
  name: string;
  limits: WriteLimits;
  /** How the carrying pass reads and writes (an upsert pass). */
  pass: SyncPassOptions;
  /** --drop-changed: drop (or roll back to) a kept collection even when what was written to it cannot be carried. */
  force: boolean;
  /** Added up over the run. */
  writes: KeptWrites;
}

/**
 * Records what the reconcile `sync` (from the collection now kept as `keptAs` into the one now under the name) last
 * carried over. A failure is logged, not thrown: the swap is done, and a kept collection without a record is compared
 * with the live one before it is dropped instead.
 */
export async function recordReconcile(chroma: ChromaStore, name: string, keptAs: string, sync: CollectionSync, logger: Logger): Promise<void> {
  try {
    await writeBlob(chroma, carriedRecordName(name, keptAs), { keptId: sync.source.id, liveId: sync.target.id }, sync.snapshot());
  } catch (error) {
    logger.error({ collection: name, keptAs, err: error }, "could not record what the reconcile carried over; before it is dropped, the kept collection is compared with the live one instead");
  }
}

/** Forgets the record of a kept collection that is dropped or put back under the name. */
export const forgetReconcile = (chroma: ChromaStore, name: string, kept: string) => deleteBlob(chroma, carriedRecordName(name, kept));

/** The collection with `id` among the one under the name and those kept aside (but `except`). */
async function collectionWithId(chroma: ChromaStore, name: string, id: string, except: string): Promise<Collection | undefined> {
  for (const candidate of [name, ...(await keptCollections(chroma, name)).map((k) => k.name).filter((n) => n !== except)]) {
    try {
      const collection = await chroma.openCollection(candidate);
      if (collection.id === id) return collection;
    } catch (error) {
      if (!(error instanceof CollectionNotFoundError)) throw error;
    }
  }
  return undefined;
}

/** Records of `kept` that the collection under the name lacks or holds otherwise (one read of `kept`). */
async function differingFromLive(k: KeptRun, kept: Collection): Promise<number> {
  const live = await k.chroma.openCollection(k.name);
  let differing = 0;
  for await (const page of k.chroma.readPages(kept, { ...k.pass, include: RECORD_FIELDS })) {
    await k.pass.pacer?.take(page.ids.length, k.pass.signal);
    const there = columnsFromGet(await live.get({ ids: page.ids, include: [...RECORD_FIELDS] }));
    const at = new Map(there.ids.map((id, j) => [id, j]));
    for (let i = 0; i < page.ids.length; i++) {
      const j = at.get(page.ids[i]!);
      if (j === undefined || !sameRecord(page, i, there, j)) differing++;
    }
  }
  return differing;
}

const howToGoOn = (name: string, kept: string) =>
  `${kept} stays: copy what you need from it into ${name}, then run the reindex again with --drop-changed`;

/** The collection metadata a reconcile's record is written with (recordReconcile); read back from Chroma, so checked. */
const recordIds = z.object({ keptId: z.string().min(1), liveId: z.string().min(1) });

/** What is known of `kept`'s last reconcile: its record (and the sync it resumes), none, or a damaged one. */
type Reconciled = { kind: "missing" } | { kind: "damaged"; why: string } | { kind: "ok"; liveId: string; resume: (target: Collection) => CollectionSync };

async function reconciled(k: KeptRun, kept: Collection): Promise<Reconciled> {
  const read = await readBlob(k.chroma, carriedRecordName(k.name, kept.name));
  if (read.kind !== "ok") return read;
  const ids = recordIds.safeParse(read.metadata);
  if (!ids.success) return { kind: "damaged", why: `metadata ${ids.error.issues[0]?.path.join(".") ?? "?"}: ${ids.error.issues[0]?.message ?? "not as written"}` };
  if (ids.data.keptId !== kept.id) return { kind: "damaged", why: `it was written for collection id ${ids.data.keptId}, not ${kept.id}` };
  try {
    // Parsed once here, so a table of another format is found before anything is carried.
    CollectionSync.resume(k.chroma, kept, kept, k.limits, read.bytes);
  } catch (error) {
    return { kind: "damaged", why: error instanceof Error ? error.message : String(error) };
  }
  return { kind: "ok", liveId: ids.data.liveId, resume: (target) => CollectionSync.resume(k.chroma, kept, target, k.limits, read.bytes) };
}

/**
 * Carries into the collection they were reconciled into the writes made to `kept` since its reconcile, then records
 * what it carried in place of the reconcile's record (so a settle run again, after a failure before the drop, carries
 * only what was written since, not these again over newer writes through the name). Returns why not, in one line,
 * when that would be a guess: that collection is neither under the name nor kept aside any more (rolled back past,
 * replaced by a restore, deleted), or `kept` has no record of its reconcile (kept by an interrupted reindex or an
 * older vectorkeeper) or a damaged one, and holds records the live collection lacks or holds otherwise. With `force`
 * those records are counted as discarded instead.
 */
export async function settleKept(k: KeptRun, kept: string): Promise<string | undefined> {
  const { chroma, logger, name } = k;
  const keptCollection = await chroma.openCollection(kept);
  const record = await reconciled(k, keptCollection);
  let changed: number;
  let reason: (changed: number) => string;
  if (record.kind === "ok") {
    const into = await collectionWithId(chroma, name, record.liveId, kept);
    if (into) {
      const sync = record.resume(into);
      const { written, deleted } = await sync.pass(k.pass);
      k.writes.written += written;
      k.writes.deleted += deleted;
      if (written + deleted > 0) {
        await writeBlob(chroma, carriedRecordName(name, kept), { keptId: keptCollection.id, liveId: into.id }, sync.snapshot());
        logger.warn({ collection: name, kept, into: into.name, written, deleted }, "carried writes made to a kept collection after its reconcile (by clients holding its id) into the collection they were reconciled into");
      }
      return undefined;
    }
    changed = await record.resume(keptCollection).changesInSource(k.pass);
    reason = (n) =>
      `reindex: ${n} records of ${kept} were written or deleted after its last reconcile, but the collection they were reconciled into (id ${record.liveId}) is neither ${name} nor kept aside any more (rolled back past, replaced by a restore, or deleted), so where they belong is a guess; ${howToGoOn(name, kept)}`;
  } else {
    changed = await differingFromLive(k, keptCollection);
    const why =
      record.kind === "damaged"
        ? `the record of its last reconcile (${carriedRecordName(name, kept)}) is damaged (${record.why.split("\n")[0]})`
        : "there is no record of its last reconcile (kept by an interrupted reindex, or by an older vectorkeeper)";
    reason = (n) => `reindex: ${n} records of ${kept} are not in ${name} as they are there, and ${why} to tell writes made to it since from writes made through the name; ${howToGoOn(name, kept)}`;
  }
  if (changed === 0) return undefined;
  if (!k.force) return reason(changed);
  k.writes.discarded += changed;
  logger.warn({ collection: name, kept, discarded: changed }, "--drop-changed: records written to a kept collection that could not be carried over are given up with it");
  return undefined;
}

const firstLine = (error: unknown) => redactUrlsIn((error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "");

/**
 * Drops the kept collections `chosen` picks, oldest first (one kept before another reconciled into it carries its
 * writes there, and that one's on into the live collection), each once the writes made to it since its reconcile are
 * carried over; those where that cannot be done stay, each with its reason (logged). Records of collections no longer
 * kept are deleted too. Never throws: it runs after a swap too, and a job failed there would be retried, building
 * again or undoing a rollback; a collection it could not settle or drop (Chroma failing) stays in `keptBack`.
 */
export async function dropKept(k: KeptRun, chosen: (kept: { name: string; keptAt: number }) => boolean): Promise<{ dropped: string[]; keptBack: KeptBack[] }> {
  const { chroma, logger, name } = k;
  const dropped: string[] = [];
  const keptBack: KeptBack[] = [];
  let kept: { name: string; keptAt: number }[];
  try {
    kept = (await keptCollections(chroma, name)).reverse();
  } catch (error) {
    const reason = `reindex: could not list the collections kept aside for ${name} (${firstLine(error)}); none was dropped, the next reindex of ${name} tries again`;
    logger.error({ collection: name, err: error }, reason);
    return { dropped, keptBack: [{ kept: `${name}__vkreindex_old_*`, reason }] };
  }
  for (const one of kept) {
    if (!chosen(one)) continue;
    try {
      const reason = await settleKept(k, one.name);
      if (reason) {
        logger.warn({ collection: name, kept: one.name }, reason);
        keptBack.push({ kept: one.name, reason });
        continue;
      }
      await failpoint("reindex:settled");
      // The record goes first: a delete broken off part way (its records deleted a batch at a time, see
      // deleteCollection) must not leave a record against which the emptied collection reads as every record deleted.
      await forgetReconcile(chroma, name, one.name);
      await chroma.deleteCollection(one.name);
      dropped.push(one.name);
      logger.info({ collection: name, dropped: one.name }, "deleted a collection a reindex had kept aside");
    } catch (error) {
      const reason = `reindex: could not carry over the writes made to ${one.name} or drop it (${firstLine(error)}); it stays, and the next reindex of ${name} tries again`;
      logger.error({ collection: name, kept: one.name, err: error }, reason);
      keptBack.push({ kept: one.name, reason });
    }
  }
  try {
    for (const orphan of await orphanedRecords(chroma, name)) await chroma.deleteCollection(orphan);
  } catch (error) {
    logger.warn({ collection: name, err: error }, "could not delete the records of collections no longer kept aside; the next reindex tries again");
  }
  return { dropped, keptBack };
}
