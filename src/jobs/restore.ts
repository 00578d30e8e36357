import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Collection } from "chromadb";
import { z } from "zod";
import { ConfigError } from "../config/config-error.js";
import { DEFAULTS } from "../config/defaults.js";
import { findBackup } from "../storage/backup-format/backup-catalog.js";
import { readChunks } from "../storage/backup-format/backup-reader.js";
import type { Manifest } from "../storage/backup-format/manifest.js";
import type { Logger } from "../logging.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { FEATURE_LABELS } from "../storage/chroma/features.js";
import { BatchedWriter } from "../storage/chroma/writer.js";
import { backupIdField } from "./backup-fields.js";
import { deleteTemporaries } from "../storage/chroma/temporaries.js";
import { failpoint } from "./failpoints.js";
import { holdLease } from "./lease.js";
import { defineJob } from "./job-context.js";
import { collectionName } from "./payload-fields.js";

export const restorePayload = z
  .object({
    /** The collection to restore into. */
    collection: collectionName,
    backupId: backupIdField,
    /** Replace a target that already holds records (it is swapped out only once the restore is complete). */
    replace: z.boolean().default(false),
    /**
     * Records per write, at most the server's maximum batch size, which is the default: restores of 50,000 records ran
     * markedly faster in writes of the maximum (5461 here) than in writes of 1000, at ~100 MB more memory. Whatever
     * the count, a write never carries more than the server's request-body cap (VK_CHROMA_MAX_REQUEST_BYTES).
     */
    batchSize: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

export interface RestoreResult {
  backupId: string;
  collection: string;
  source: string;
  records: number;
  chunks: number;
  /** True when an existing collection was replaced. */
  replaced: boolean;
  durationMs: number;
}

const STAGING = "__vkrestore_";
const OLD = "__vkold_";

/**
 * Finds what earlier restores into `target` left behind and puts things right: an old collection moved aside whose
 * swap never completed goes back under the target's name (when the name is free), one whose swap did complete is
 * deleted, and staging collections are deleted.
 */
async function recoverSwapLeftovers(chroma: ChromaStore, target: string, logger: Logger): Promise<void> {
  const names = await chroma.listCollectionNames();
  let targetExists = names.includes(target);
  for (const name of names.filter((n) => n.startsWith(`${target}${OLD}`))) {
    if (!targetExists) {
      await (await chroma.openCollection(name)).modify({ name: target });
      targetExists = true;
      logger.warn({ collection: target, from: name }, "an interrupted restore had moved the collection aside: put back under its name");
    } else {
      await chroma.deleteCollection(name);
      logger.info({ collection: target, leftover: name }, "deleted the old collection a completed restore left behind");
    }
  }
  await deleteTemporaries(chroma, `${target}${STAGING}`, logger, "the staging collection of an interrupted restore");
}

/**
 * Gives the staging collection the target's name. With `old`, the target is first renamed aside; if the swap then
 * fails, it is put back under its name before the error goes on, so the target never ends up missing. An old
 * collection that cannot be deleted afterwards is left for the next restore of the target to collect.
 */
async function swapIn(chroma: ChromaStore, staging: Collection, target: string, old: string | undefined, logger: Logger): Promise<void> {
  if (!old) return void (await staging.modify({ name: target }));
  const current = await chroma.openCollection(target);
  await current.modify({ name: old });
  try {
    await staging.modify({ name: target });
  } catch (error) {
    await current.modify({ name: target }).catch((rollback: unknown) => {
      logger.error({ collection: target, movedTo: old, err: rollback }, "could not put the old collection back; the next restore of it will");
    });
    throw error;
  }
  await chroma.deleteCollection(old).catch((error: unknown) => {
    logger.warn({ collection: target, leftover: old, err: error }, "could not delete the replaced collection; the next restore of it will");
  });
}

/** Refuses, before anything is created or written, a backup that uses what the target server cannot hold. */
async function refuseWhatServerCannotHold(chroma: ChromaStore, manifest: Manifest, logger: Logger): Promise<void> {
  const missing = await chroma.missingFeatures(manifest.features);
  if (missing === undefined) {
    logger.warn({ features: manifest.features }, `${chroma.description} describes no API: whether it can hold what the backup uses shows only as it is written`);
  } else if (missing.length > 0) {
    throw new ConfigError(
      `backup ${manifest.backupId} holds ${missing.map((f) => FEATURE_LABELS[f]).join(" and ")}, which ${chroma.description} cannot hold: restore it into a Chroma server that has ${missing.length > 1 ? "them" : "it"}`,
    );
  }
}

/**
 * Restores in three steps, so that nothing half-restored ever carries the target's name:
 * 0. check that the target server can hold what the backup uses (schema, array metadata, URIs: the manifest lists them);
 * 1. verify every chunk (size, SHA-256, decoding, record count) before writing anything;
 * 2. write into a staging collection created with the original metadata and schema (or configuration), checking each chunk
 *    again as it is read (it could have changed since step 1), then confirm the record count;
 * 3. swap: the old target (with --replace) is renamed aside, the staging collection takes the name, the old one
 *    is deleted; a failed swap puts the old one back, and the next restore of the target cleans up after a crash.
 */
export const restore = defineJob({
  kind: "restore",
  payload: restorePayload,
  async process(payload, ctx): Promise<RestoreResult> {
    const started = performance.now();
    const { chroma, backupStore, logger } = ctx;
    const target = payload.collection;
    const lease = await holdLease(ctx, `restore:${target}`, `a restore into ${target}`);
    try {
      const manifest = await findBackup(backupStore, payload.backupId);
      await refuseWhatServerCannotHold(chroma, manifest, logger);
      // What a crashed or failed swap of this target left: we hold the restore lease, so none of it is in use.
      await recoverSwapLeftovers(chroma, target, logger);
      const exists = await chroma.exists(target);
      if (exists && !payload.replace) {
        const count = await (await chroma.openCollection(target)).count();
        if (count > 0) {
          throw new ConfigError(
            `collection ${target} already holds ${count} records: restore into a new name, or pass --replace to swap it out once the restore is complete`,
          );
        }
      }
      const total = manifest.records;
      const chunks = manifest.chunks;

      const ahead = DEFAULTS.backup.chunkReadAhead;
      let checked = 0;
      for await (const read of readChunks(backupStore, manifest, { ahead, signal: lease.signal })) {
        if ("problem" in read) throw read.problem;
        await ctx.progress({ done: ++checked, total: chunks.length, unit: "chunks verified" });
      }

      const suffix = randomBytes(4).toString("hex");
      const staging = `${target}${STAGING}${suffix}`;
      const limits = await chroma.writeLimits(payload.batchSize);
      const collection = await chroma.createLike(staging, manifest.collection);
      const writer = new BatchedWriter(collection, { limits, mode: "add" }, manifest.dimension ?? 0);
      try {
        // Chunks are gathered into full batches; the next chunks download and decode while Chroma indexes the batch
        // before.
        for await (const read of readChunks(backupStore, manifest, { ahead, signal: lease.signal })) {
          if ("problem" in read) throw read.problem;
          await ctx.pace?.take(read.columns.ids.length, lease.signal);
          await writer.add(read.columns);
          await ctx.progress({ done: writer.written, total, unit: "records", note: ctx.pace?.note });
        }
        await writer.finish();
        await ctx.progress({ done: writer.written, total, unit: "records" });
        const count = await collection.count();
        if (count !== total) throw new Error(`restored ${count} records into ${staging}, the backup holds ${total}`);

        await failpoint("restore:before-swap");
        await lease.confirm();
        await swapIn(chroma, collection, target, exists ? `${target}${OLD}${suffix}` : undefined, logger);
      } catch (error) {
        // A write still in flight would otherwise land in a collection being deleted.
        await writer.abandon();
        await chroma.deleteCollection(staging).catch(() => undefined);
        throw error;
      }
      logger.info({ backupId: manifest.backupId, target, records: total }, "restore complete");
      // A restored collection's index is cold: warm it before users hit it.
      if (total > 0) await ctx.followUp("warm", { collection: target });
      return {
        backupId: manifest.backupId,
        collection: target,
        source: manifest.collection.name,
        records: total,
        chunks: chunks.length,
        replaced: exists,
        durationMs: Math.round(performance.now() - started),
      };
    } finally {
      await lease.release();
    }
  },
});
