import { performance } from "node:perf_hooks";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { BackupWriter } from "../storage/backup-format/backup-writer.js";
import { COMPRESSIONS, zstdAvailable } from "../storage/backup-format/compression.js";
import { ContentWriter } from "../storage/backup-format/content-writer.js";
import { wrongKey } from "../storage/backup-format/encryption.js";
import { storeKeyId } from "../storage/backup-format/repository-header.js";
import { backupFolder, newBackupId } from "../storage/backup-format/layout.js";
import { collectionEntry, DEDUPED_FORMAT_VERSION, FORMAT_VERSION, manifestFeatures, manifestHeader } from "../storage/backup-format/manifest.js";
import { applyPrune, planPrune } from "../storage/retention/backup-pruning.js";
import type { ObjectStore } from "../storage/objects/object-store.js";
import { backupLease, keepPolicy } from "./backup-fields.js";
import { failpoint } from "./failpoints.js";
import { holdWriterLeases, watchLease } from "./lease.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";
import { pacingFields, pagedReading, startPacing } from "./pacing-fields.js";
import type { Pacer, PacingReport } from "../storage/chroma/pacing.js";

const d = DEFAULTS.backup;

export const backupPayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    /** Retention applied right after a successful backup (a schedule entry's `keep`). */
    keep: keepPolicy.optional(),
    /** Records per read; absent: DEFAULTS.backup's, or DEFAULTS.pacing's for a paced backup (see pagedReading). */
    pageSize: z.number().int().min(1).max(100_000).optional(),
    readAhead: z.number().int().min(0).max(8).optional(),
    chunkRecords: z.number().int().min(1).default(d.chunkRecords),
    chunkBytes: z.number().int().min(1024).default(d.chunkBytes),
    compression: z
      .enum(COMPRESSIONS)
      .default(d.compression)
      .refine((c) => c !== "zstd" || zstdAvailable, { message: `zstd needs Node.js 22.15+ (this is ${process.version}); use gzip` }),
    /** Chunks stored once per collection, in packs, and shared by its backups (format 4); false: a full copy (format 2). */
    dedupe: z.boolean().default(d.dedupe),
    /** With dedupe, the size at which a pack is uploaded. */
    packBytes: z.number().int().min(1024).default(d.packBytes),
    ...pacingFields,
  })
  .strict();

export interface BackupResult {
  backupId: string;
  collection: string;
  records: number;
  /** What the backup takes on the store, counting chunks it shares with other backups (its logical size). */
  bytes: number;
  /** What this run wrote: with dedupe, only chunks the store did not hold yet, and the manifest. */
  uploadedBytes: number;
  /** Chunks the store already held, listed by this backup without uploading them again. */
  reusedChunks: number;
  chunks: number;
  durationMs: number;
  /** False when the collection's count changed while it was read. */
  consistent: boolean;
  /** Records listed, then deleted before their page was fetched: not in the backup, and not an error. */
  deletedWhileReading: number;
  warnings: string[];
  /** Set when a running backup of the same collection made this one stand down (nothing was written). */
  skipped?: string;
  pruned?: { deleted: string[]; leftovers: string[]; bytesFreed: number };
  /** How the backup kept to its rate limit or spared the collection's queries (adaptive). */
  pacing?: PacingReport;
}

/**
 * Streams a collection page by page into checksummed chunks (ids listed in windows, records fetched by id: linear in
 * the collection's size), reading the next pages while the last one is encoded and uploaded, and writes the manifest
 * last. One backup of a collection at a time: a second one stands down.
 */
export const backup = defineJob({
  kind: "backup",
  payload: backupPayload,
  async process(payload, ctx): Promise<BackupResult> {
    const started = performance.now();
    const { chroma, backupStore, logger } = ctx;
    const name = payload.collection;
    const lease = await ctx.locks.tryAcquire(backupLease(name), ctx.runner);
    if (!lease.acquired) {
      const reason = `a backup of ${name}, or a prune sweeping its packs, is already running (${lease.heldBy}); this one stands down`;
      logger.warn(reason);
      return { backupId: "", collection: name, records: 0, bytes: 0, uploadedBytes: 0, reusedChunks: 0, chunks: 0, durationMs: 0, consistent: true, deletedWhileReading: 0, warnings: [], skipped: reason };
    }
    const held = watchLease(ctx, backupLease(name), lease);
    const backupId = newBackupId();
    const folder = backupFolder(name, backupId);
    const writer = payload.dedupe
      ? new ContentWriter(
          backupStore,
          name,
          backupId,
          payload.compression,
          { meanRecords: d.dedupeMeanRecords, maxRecords: Math.min(d.dedupeMaxRecords, payload.chunkRecords), maxBytes: payload.chunkBytes },
          { packBytes: payload.packBytes, encoders: d.dedupeEncoders, packUploads: d.packUploads },
        )
      : new BackupWriter(backupStore, folder, payload.compression, { records: payload.chunkRecords, bytes: payload.chunkBytes });
    let pacer: Pacer | undefined;
    try {
      await refusePlainWrites(backupStore);
      const collection = await chroma.openCollection(name);
      pacer = await startPacing(payload, collection, ctx);
      const saved = collectionEntry(await chroma.describeCollection(name));
      const startedAt = new Date().toISOString();
      const countBefore = await collection.count();
      let dimension: number | null = null;
      let read = 0;
      const tally = { listed: 0, gone: 0 };
      await ctx.progress({ done: 0, total: countBefore, unit: "records" });
      const reading = { ...pagedReading(payload, d), signal: held.signal, tally };
      for await (const page of chroma.readPages(collection, reading)) {
        await pacer.take(page.ids.length, held.signal);
        dimension ??= page.dimension;
        await writer.add(page);
        // Crash tests stop here with the first page's chunks uploaded or on their way, the rest unread.
        if (read === 0) await failpoint("backup:after-first-page");
        read += page.ids.length;
        await ctx.progress({ done: read, total: Math.max(countBefore, read), unit: "records", note: pacer.note });
      }
      pacer.close();
      await failpoint("backup:before-manifest");
      const countAfter = await collection.count();
      const consistent = countBefore === countAfter && read === countAfter;
      const manifest = await writer.finish(async (chunks) => {
        // Here, after the last upload and the listing that confirms the chunks: a run that lost its lease meanwhile
        // must not write a manifest beside its retry's.
        await lease.confirm();
        return {
          ...manifestHeader(backupId, "backup", payload.dedupe ? DEDUPED_FORMAT_VERSION : FORMAT_VERSION),
          collection: saved,
          features: manifestFeatures(saved, writer.features),
          dimension,
          records: read,
          countBefore,
          countAfter,
          consistent,
          deletedWhileReading: tally.gone,
          compression: payload.compression,
          chunks,
          startedAt,
          finishedAt: new Date().toISOString(),
          durationMs: Math.round(performance.now() - started),
        };
      });
      const warnings: string[] = consistent
        ? []
        : [
            `${name} changed while it was read (${countBefore} records before, ${countAfter} after, ${read} read, ${tally.gone} deleted between listing and reading): the backup may miss or repeat records`,
          ];
      for (const warning of warnings) logger.warn({ backupId }, warning);
      if ("warnings" in writer) {
        for (const warning of writer.warnings) logger.warn({ backupId }, warning);
        warnings.push(...writer.warnings);
      }

      const result: BackupResult = {
        backupId,
        collection: name,
        records: read,
        bytes: writer.bytes,
        uploadedBytes: writer.uploadedBytes,
        reusedChunks: writer.reusedChunks,
        chunks: manifest.chunks.length,
        durationMs: Math.round(performance.now() - started),
        consistent,
        deletedWhileReading: tally.gone,
        warnings,
        pacing: pacer.report(),
      };
      if (payload.keep) {
        // This backup holds the collection's backup lease; an archive running into the store holds the other.
        const writers = await holdWriterLeases(ctx, name, { held: backupLease(name) });
        try {
          const plan = await planPrune(backupStore, name, payload.keep, {
            graceMs: d.leftoverGraceHours * 3_600_000,
            minAgeMs: ctx.locks.ttlMs,
            runningWriter: writers.busy,
          });
          await writers.confirm();
          await lease.confirm();
          const bytesFreed = await applyPrune(backupStore, plan);
          result.pruned = { deleted: plan.remove.map((e) => e.backupId), leftovers: plan.leftovers.map((f) => f.backupId), bytesFreed };
          if (plan.sweepSkipped) logger.warn({ backupId }, `prune after the backup: ${plan.sweepSkipped}; nothing shared swept`);
        } finally {
          await writers.release();
        }
      }
      logger.info({ backupId, records: read, bytes: writer.bytes, uploadedBytes: result.uploadedBytes, chunks: manifest.chunks.length }, "backup complete");
      return result;
    } catch (error) {
      // Best effort: take back what this run uploaded. What a crash leaves behind, prune collects after the grace period.
      await writer.abandon();
      await discardFolder(backupStore, folder).catch(() => undefined);
      await backupStore.collectUnfinished(folder, new Date()).catch(() => undefined);
      throw error;
    } finally {
      pacer?.close();
      await lease.release();
    }
  },
});

/** One store holds one key: a backup without VK_BACKUP_KEY_FILE must not put plain objects into an encrypted store. */
async function refusePlainWrites(store: ObjectStore): Promise<void> {
  if (store.contentName) return;
  // Best effort: an unreachable store fails the backup's own writes with the better message.
  const keyId = await storeKeyId(store).catch(() => undefined);
  if (keyId !== undefined) throw wrongKey(keyId, undefined);
}

async function discardFolder(store: ObjectStore, folder: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of store.list(folder)) keys.push(object.key);
  await store.delete(keys);
}
