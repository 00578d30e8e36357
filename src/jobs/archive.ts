import { performance } from "node:perf_hooks";
import type { Collection, Where } from "chromadb";
import { z } from "zod";
import { ConfigError } from "../config/config-error.js";
import { IntegrityError } from "../errors.js";
import { DEFAULTS } from "../config/defaults.js";
import { readChunk } from "../storage/backup-format/backup-reader.js";
import { newestBackup } from "../storage/backup-format/backup-catalog.js";
import { BackupWriter } from "../storage/backup-format/backup-writer.js";
import { backupFolder, newBackupId } from "../storage/backup-format/layout.js";
import { collectionEntry, DEDUPED_FORMAT_VERSION, FORMAT_VERSION, manifestFeatures, manifestHeader } from "../storage/backup-format/manifest.js";
import { ContentWriter } from "../storage/backup-format/content-writer.js";
import { columnsFromGet, sameRecord } from "../storage/chroma/records.js";
import { writeRecords } from "../storage/chroma/writer.js";
import { countIds } from "../storage/chroma/linear-read.js";
import { failpoint } from "./failpoints.js";
import { archiveLease } from "./backup-fields.js";
import { holdLease } from "./lease.js";
import { defineJob, type JobContext } from "./job-context.js";
import { alertAfterFailures, collectionName, metadataField } from "./payload-fields.js";
import { isPaced, pacingFields, startPacing } from "./pacing-fields.js";
import type { Pacer, PacingReport } from "../storage/chroma/pacing.js";

const d = DEFAULTS.lifecycle;
export const OBJECT_STORE_TARGET = "object-store";

export const archivePayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    olderThanDays: z.number().positive({ message: "must be a number of days above 0" }),
    /** Target collection (`{name}` is the source's name), or `object-store` for the backup store. */
    to: z.string().min(1).default(d.archiveTarget),
    field: metadataField.default(d.createdField),
    dryRun: z.boolean().default(false),
    batchSize: z.number().int().min(1).max(5000).default(d.batchSize),
    /** With `to: object-store`: chunks stored once per collection, in packs shared with its deduplicated backups (format 4). */
    dedupe: z.boolean().default(DEFAULTS.backup.dedupe),
    ...pacingFields,
  })
  .strict();

type ArchivePayload = z.output<typeof archivePayload>;

export interface ArchiveResult {
  collection: string;
  archived: number;
  /** The target collection, or `object-store:<backupId>`. */
  target: string;
  dryRun: boolean;
  /** Into the object store: records listed, then gone (deleted, or no longer matching) before their page was read. */
  deletedWhileReading: number;
  cutoff: number;
  durationMs: number;
  /** How the passes (read, copy, delete) kept to the rate limit or spared the collection's queries (adaptive). */
  pacing: PacingReport;
}

const DAY_MS = 86_400_000;

/**
 * Into a collection, batch by batch: upsert the records (same ids, embeddings, documents, metadata) into the target,
 * read them back and confirm each one, and only then delete them from the source. A crash at any step loses nothing:
 * the next run finds the same records still matching in the source, upserts them again (a no-op) and finishes the
 * move, so no record ends up in both places.
 */
async function archiveToCollection(payload: ArchivePayload, where: Where, source: Collection, ctx: JobContext, pacer: Pacer): Promise<{ archived: number; target: string; deletedWhileReading?: number }> {
  const target = payload.to.replaceAll("{name}", payload.collection);
  const valid = collectionName.safeParse(target);
  if (!valid.success || target === payload.collection) {
    throw new ConfigError(`archive target "${target}" is not a usable collection name (to: "${payload.to}")`);
  }
  if (payload.dryRun) return { archived: await countIds(source, { where, signal: ctx.signal }), target };

  const destination = (await ctx.chroma.exists(target))
    ? await ctx.chroma.openCollection(target)
    : await ctx.chroma.createLike(target, collectionEntry(await ctx.chroma.describeCollection(payload.collection)));
  const limits = await ctx.chroma.writeLimits();
  let archived = 0;
  for (;;) {
    ctx.signal.throwIfAborted();
    const batch = columnsFromGet(
      await source.get({ where, limit: payload.batchSize, include: ["embeddings", "documents", "metadatas", "uris"] }),
    );
    if (batch.ids.length === 0) break;
    await pacer.take(batch.ids.length, ctx.signal);
    await writeRecords(destination, batch, { limits, mode: "upsert" });
    const copied = columnsFromGet(await destination.get({ ids: batch.ids, include: ["embeddings", "documents", "metadatas", "uris"] }));
    const byId = new Map(copied.ids.map((id, index) => [id, index]));
    for (let i = 0; i < batch.ids.length; i++) {
      const j = byId.get(batch.ids[i]!);
      if (j === undefined || !sameRecord(batch, i, copied, j)) {
        throw new IntegrityError(`archive of ${payload.collection}: record ${batch.ids[i]} did not arrive intact in ${target}; nothing deleted`);
      }
    }
    await failpoint("archive:after-copy");
    // The cutoff again: a record upserted since it was read (with a fresh creation time) stays, and keeps its new version.
    await source.delete({ ids: batch.ids, where });
    archived += batch.ids.length;
    await ctx.progress({ done: archived, unit: "records archived", note: pacer.note });
  }
  return { archived, target };
}

/**
 * Finishes the deletes of the newest earlier archive of the collection, which a crash (or a refused delete) after its
 * manifest may have left undone: otherwise this run would archive the same records a second time. Only the newest
 * needs a look, since each run settles the one before it under the same lease; and deletes go in chunk order, so the
 * records of its last chunk are the last to leave. Deletes are limited to that archive's own cutoff, so a record
 * added since under an archived id is not touched.
 */
async function settlePreviousArchive(collection: string, source: Collection, ctx: JobContext): Promise<void> {
  const previous = await newestBackup(ctx.backupStore, collection, "archive");
  const last = previous?.chunks.at(-1);
  if (!previous?.archived || !last) return;
  const where: Where = { [previous.archived.field]: { $lt: previous.archived.cutoff } };
  const lastIds = (await readChunk(ctx.backupStore, previous, last)).ids;
  if ((await source.get({ ids: lastIds, where, include: [] })).ids.length === 0) return;
  for (const chunk of previous.chunks) {
    const { ids } = await readChunk(ctx.backupStore, previous, chunk);
    await source.delete({ ids, where });
  }
  ctx.logger.warn({ archive: previous.backupId }, "finished the deletes of an archive interrupted after its manifest");
}

/**
 * Into the backup store: the matching records become a chunk set in the backup format with its own manifest
 * (purpose "archive", never pruned, restorable like any backup). Records leave the source only once the manifest is
 * written, by the ids read back from the stored chunks, so a record is deleted only if it is in the archive.
 */
async function archiveToObjectStore(payload: ArchivePayload, where: Where, cutoff: number, source: Collection, ctx: JobContext, pacer: Pacer) {
  if (payload.dryRun) return { archived: await countIds(source, { where, signal: ctx.signal }), target: OBJECT_STORE_TARGET };
  // Prune takes this lease too before it sweeps packs: this run reuses packs of manifests it reads at its start.
  const lease = await holdLease(ctx, archiveLease(payload.collection), `an archive of ${payload.collection}`);
  try {
    await settlePreviousArchive(payload.collection, source, ctx);
    const started = performance.now();
    const startedAt = new Date().toISOString();
    const backupId = newBackupId();
    const saved = collectionEntry(await ctx.chroma.describeCollection(payload.collection));
    const b = DEFAULTS.backup;
    const writer = payload.dedupe
      ? new ContentWriter(
          ctx.backupStore,
          payload.collection,
          backupId,
          b.compression,
          { meanRecords: b.dedupeMeanRecords, maxRecords: b.dedupeMaxRecords, maxBytes: b.chunkBytes },
          { packBytes: b.packBytes, encoders: b.dedupeEncoders, packUploads: b.packUploads },
        )
      : new BackupWriter(ctx.backupStore, backupFolder(payload.collection, backupId), b.compression, { records: b.chunkRecords, bytes: b.chunkBytes });
    let dimension: number | null = null;
    let read = 0;
    const tally = { listed: 0, gone: 0 };
    const reading = { pageSize: payload.batchSize, readAhead: (isPaced(payload) ? DEFAULTS.pacing : DEFAULTS.backup).readAhead, signal: lease.signal, where, tally };
    for await (const page of ctx.chroma.readPages(source, reading)) {
      await pacer.take(page.ids.length, lease.signal);
      dimension ??= page.dimension;
      await writer.add(page);
      read += page.ids.length;
    }
    const manifest = await writer.finish(async (chunks) => {
      // A stalled run whose lease a retry took over must not write a second archive of the same records.
      await lease.confirm();
      return {
        ...manifestHeader(backupId, "archive", payload.dedupe ? DEDUPED_FORMAT_VERSION : FORMAT_VERSION),
        archived: { field: payload.field, cutoff },
        collection: saved,
        features: manifestFeatures(saved, writer.features),
        dimension,
        records: read,
        countBefore: read,
        countAfter: read,
        consistent: true,
        deletedWhileReading: tally.gone,
        compression: DEFAULTS.backup.compression,
        chunks,
        startedAt,
        finishedAt: new Date().toISOString(),
        durationMs: Math.round(performance.now() - started),
      };
    });
    if ("warnings" in writer) for (const warning of writer.warnings) ctx.logger.warn({ backupId }, warning);
    await failpoint("archive:after-manifest");
    await lease.confirm();
    let deleted = 0;
    for (const chunk of manifest.chunks) {
      const { ids } = await readChunk(ctx.backupStore, manifest, chunk);
      await pacer.take(ids.length, lease.signal);
      // Limited to the cutoff, as settlePreviousArchive is: a record upserted since it was read is not in the archive.
      await source.delete({ ids, where });
      deleted += ids.length;
      await ctx.progress({ done: deleted, total: read, unit: "records archived", note: pacer.note });
    }
    return { archived: read, target: `${OBJECT_STORE_TARGET}:${backupId}`, deletedWhileReading: tally.gone };
  } finally {
    await lease.release();
  }
}

/** Moves records whose creation time is older than N days out of a collection, to another collection or to cold storage. */
export const archive = defineJob({
  kind: "archive",
  payload: archivePayload,
  async process(payload, ctx): Promise<ArchiveResult> {
    const started = performance.now();
    const source = await ctx.chroma.openCollection(payload.collection);
    const cutoff = Date.now() - payload.olderThanDays * DAY_MS;
    const where: Where = { [payload.field]: { $lt: cutoff } };
    const pacer = await startPacing(payload, source, ctx);
    const { archived, target, deletedWhileReading = 0 } = await (payload.to === OBJECT_STORE_TARGET
      ? archiveToObjectStore(payload, where, cutoff, source, ctx, pacer)
      : archiveToCollection(payload, where, source, ctx, pacer)
    ).finally(() => pacer.close());
    ctx.logger.info({ archived, target, dryRun: payload.dryRun }, "archive done");
    return {
      collection: payload.collection,
      archived,
      target,
      dryRun: payload.dryRun,
      deletedWhileReading,
      cutoff,
      durationMs: Math.round(performance.now() - started),
      pacing: pacer.report(),
    };
  },
});
