import type { Collection } from "chromadb";
import type { Logger } from "../logging.js";
import { deleteBlob, readBlob, writeBlob } from "../storage/chroma/blob-collection.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { CollectionNotFoundError } from "../storage/chroma/store-errors.js";
import { CollectionSync, type SyncPassOptions } from "../storage/chroma/collection-sync.js";
import { RECORD_FIELDS } from "../storage/chroma/linear-read.js";
import { columnsFromGet, sameRecord } from "../storage/chroma/records.js";
import type { WriteLimits } from "../storage/chroma/writer.js";
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

/**
 * Carries into the collection they were reconciled into the writes made to `kept` since its reconcile. Returns why
 * not, in one line, when that would be a guess: that collection is neither under the name nor kept aside any more
 * (rolled back past, replaced by a restore, deleted), or `kept` has no record of its reconcile (kept by an
 * interrupted reindex or an older vectorkeeper) and holds records the live collection lacks or holds otherwise. With
 * `force` those records are counted as discarded instead.
 */
export async function settleKept(k: KeptRun, kept: string): Promise<string | undefined> {
  const { chroma, logger, name } = k;
  const keptCollection = await chroma.openCollection(kept);
  const record = await readBlob(chroma, carriedRecordName(name, kept));
  const liveId = record?.metadata.liveId;
  let changed: number;
  let reason: (changed: number) => string;
  if (record && typeof liveId === "string" && record.metadata.keptId === keptCollection.id) {
    const into = await collectionWithId(chroma, name, liveId, kept);
    if (into) {
      const { written, deleted } = await CollectionSync.resume(chroma, keptCollection, into, k.limits, record.bytes).pass(k.pass);
      k.writes.written += written;
      k.writes.deleted += deleted;
      if (written + deleted > 0) {
        logger.warn({ collection: name, kept, into: into.name, written, deleted }, "carried writes made to a kept collection after its reconcile (by clients holding its id) into the collection they were reconciled into");
      }
      return undefined;
    }
    changed = await CollectionSync.resume(chroma, keptCollection, keptCollection, k.limits, record.bytes).changesInSource(k.pass);
    reason = (n) =>
      `reindex: ${n} records of ${kept} were written or deleted after its last reconcile, but the collection they were reconciled into (id ${liveId}) is neither ${name} nor kept aside any more (rolled back past, replaced by a restore, or deleted), so where they belong is a guess; ${howToGoOn(name, kept)}`;
  } else {
    changed = await differingFromLive(k, keptCollection);
    reason = (n) =>
      `reindex: ${n} records of ${kept} are not in ${name} as they are there, and there is no record of its last reconcile (kept by an interrupted reindex, or by an older vectorkeeper) to tell writes made to it since from writes made through the name; ${howToGoOn(name, kept)}`;
  }
  if (changed === 0) return undefined;
  if (!k.force) return reason(changed);
  k.writes.discarded += changed;
  logger.warn({ collection: name, kept, discarded: changed }, "--drop-changed: records written to a kept collection that could not be carried over are given up with it");
  return undefined;
}

/**
 * Drops the kept collections `chosen` picks, oldest first (one kept before another reconciled into it carries its
 * writes there, and that one's on into the live collection), each once the writes made to it since its reconcile are
 * carried over; those where that cannot be done stay, each with its reason (logged). Records of collections no longer
 * kept are deleted too.
 */
export async function dropKept(k: KeptRun, chosen: (kept: { name: string; keptAt: number }) => boolean): Promise<{ dropped: string[]; keptBack: KeptBack[] }> {
  const { chroma, logger, name } = k;
  const dropped: string[] = [];
  const keptBack: KeptBack[] = [];
  for (const kept of (await keptCollections(chroma, name)).reverse()) {
    if (!chosen(kept)) continue;
    const reason = await settleKept(k, kept.name);
    if (reason) {
      logger.warn({ collection: name, kept: kept.name }, reason);
      keptBack.push({ kept: kept.name, reason });
      continue;
    }
    await chroma.deleteCollection(kept.name);
    await forgetReconcile(chroma, name, kept.name);
    dropped.push(kept.name);
    logger.info({ collection: name, dropped: kept.name }, "deleted a collection a reindex had kept aside");
  }
  for (const orphan of await orphanedRecords(chroma, name)) await chroma.deleteCollection(orphan);
  return { dropped, keptBack };
}
