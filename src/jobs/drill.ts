import { randomBytes, randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { ConfigError } from "../config/config-error.js";
import { IntegrityError } from "../errors.js";
import { DEFAULTS } from "../config/defaults.js";
import { newestBackup, readManifest } from "../storage/backup-format/backup-catalog.js";
import { readChunk } from "../storage/backup-format/backup-reader.js";
import type { Manifest } from "../storage/backup-format/manifest.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { CollectionNotFoundError } from "../storage/chroma/store-errors.js";
import { columnsFromGet, sameRecord } from "../storage/chroma/records.js";
import { ObjectNotFoundError } from "../storage/objects/object-store.js";
import { concatColumns, sliceColumns, type RecordColumns } from "../storage/chroma/record-columns.js";
import { backupIdField } from "./backup-fields.js";
import { deleteTemporaries } from "../storage/chroma/temporaries.js";
import { failpoint } from "./failpoints.js";
import { holdLease } from "./lease.js";
import { defineJob, type JobContext } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";
import { pacingFields, startPacing } from "./pacing-fields.js";
import type { PacingReport } from "../storage/chroma/pacing.js";
import { restore, restorePayload } from "./restore.js";

const d = DEFAULTS.drill;

export const drillPayload = z
  .object({
    /** The collection whose backup is drilled. */
    collection: collectionName,
    alertAfterFailures,
    /** Which backup; the newest complete one of the collection when absent. */
    backupId: backupIdField.optional(),
    /** Records compared with the backup and with the source. */
    sampleRecords: z.number().int().min(1).max(100_000).default(d.sampleRecords),
    ...pacingFields,
  })
  .strict();

export interface DrillResult {
  collection: string;
  backupId: string;
  /** The scratch collection restored into (deleted again). */
  scratch: string;
  /** Records restored; equal to the manifest's count, or the drill fails. */
  records: number;
  /** How long the restore took: the recovery time to expect for this collection. */
  restoreSeconds: number;
  /** Records compared; each restored record is identical to the backup's, or the drill fails. */
  sampled: number;
  /** Sampled records the source still holds unchanged. */
  sameInSource: number;
  /** Sampled records the source holds changed since the backup. */
  changedInSource: number;
  /** Sampled records the source no longer holds. */
  goneFromSource: number;
  durationMs: number;
  /** How the restore kept to the rate limit or spared the source's queries (adaptive). */
  pacing: PacingReport;
}

/** Scratch collections of drills of `collection` are named `<collection>__vkdrill_<hex>`. */
export const DRILL_SCRATCH = "__vkdrill_";

async function chosenBackup(ctx: JobContext, collection: string, backupId: string | undefined): Promise<Manifest> {
  if (!backupId) {
    const newest = await newestBackup(ctx.backupStore, collection, "backup");
    if (!newest) throw new ConfigError(`${collection} has no complete backup in ${ctx.backupStore.description} to drill`);
    return newest;
  }
  try {
    return await readManifest(ctx.backupStore, collection, backupId);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new ConfigError(`backup ${backupId} of ${collection} not found in ${ctx.backupStore.description}`);
    throw error;
  }
}

/** Up to `count` records of the backup, spread over a few random chunks: the sample a drill compares. */
async function sampleOfBackup(ctx: JobContext, manifest: Manifest, count: number): Promise<RecordColumns> {
  const chunks = manifest.chunks.filter((c) => c.records > 0);
  const picked = new Set<number>();
  while (picked.size < Math.min(d.sampleChunks, chunks.length)) picked.add(randomInt(chunks.length));
  const parts: RecordColumns[] = [];
  for (const index of [...picked].sort((a, b) => a - b)) parts.push(await readChunk(ctx.backupStore, manifest, chunks[index]!));
  const all = concatColumns(parts, parts[0]?.dimension ?? 0);
  if (all.ids.length <= count) return all;
  const rows = [...new Set(Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * all.ids.length) / count)))];
  return concatColumns(
    rows.map((row) => sliceColumns(all, row, row + 1)),
    all.dimension,
  );
}

async function recordsById(chroma: ChromaStore, name: string, ids: string[]): Promise<Map<string, { columns: RecordColumns; row: number }>> {
  // Chroma refuses a get by an empty id list; an empty backup has nothing to compare.
  if (ids.length === 0) return new Map();
  const collection = await chroma.openCollection(name);
  const columns = columnsFromGet(await collection.get({ ids, include: ["embeddings", "documents", "metadatas", "uris"] }));
  return new Map(columns.ids.map((id, row) => [id, { columns, row }]));
}

/**
 * Tests the recovery procedure: restores a backup (the newest by default) into a scratch collection exactly as a real
 * restore would, checks the record count against the manifest, compares a sample of records with the backup (they
 * must be identical, embeddings as float32 within the ULPs a cosine collection's normalisation may move) and with the
 * source (changes since the backup are reported, not failures), records how long the restore took, and deletes the
 * scratch collection. A drill interrupted at any point leaves a scratch collection that the next drill deletes.
 */
export const drill = defineJob({
  kind: "drill",
  payload: drillPayload,
  async process(payload, ctx): Promise<DrillResult> {
    const started = performance.now();
    const { chroma, logger } = ctx;
    const source = payload.collection;
    const lease = await holdLease(ctx, `drill:${source}`, `a drill of ${source}`);
    try {
      // We hold the drill lease, so every scratch collection of this source (or its restore's staging collection) is an
      // interrupted drill's.
      await deleteTemporaries(chroma, `${source}${DRILL_SCRATCH}`, logger, "the scratch collection of an interrupted drill");
      const manifest = await chosenBackup(ctx, source, payload.backupId);
      const scratch = `${source}${DRILL_SCRATCH}${randomBytes(4).toString("hex")}`;
      try {
        // Adaptive pacing watches the source's queries: the scratch collection has none, and the server is shared.
        const sourceCollection = (await chroma.exists(source)) ? await chroma.openCollection(source) : undefined;
        const pacer = await startPacing(payload, sourceCollection, ctx);
        const restoreStarted = performance.now();
        // The drill measures the restore users would run, without the warm that follows a real one.
        await restore
          .process(restorePayload.parse({ collection: scratch, backupId: manifest.backupId }), { ...ctx, signal: lease.signal, followUp: async () => undefined, pace: pacer })
          .finally(() => pacer.close());
        const restoreSeconds = (performance.now() - restoreStarted) / 1000;
        const pacing = pacer.report();
        await failpoint("drill:restored");
        const records = await (await chroma.openCollection(scratch)).count();
        if (records !== manifest.records) {
          throw new IntegrityError(`the drill restored ${records} records of backup ${manifest.backupId}, its manifest says ${manifest.records}`);
        }
        const sample = await sampleOfBackup(ctx, manifest, payload.sampleRecords);
        const restored = await recordsById(chroma, scratch, sample.ids);
        // A source deleted since its backup is when a drill matters most: every sampled record is reported gone.
        const live = await recordsById(chroma, source, sample.ids).catch((error: unknown) => {
          if (error instanceof CollectionNotFoundError) return new Map<string, { columns: RecordColumns; row: number }>();
          throw error;
        });
        let sameInSource = 0;
        let changedInSource = 0;
        let goneFromSource = 0;
        const bad: string[] = [];
        for (let i = 0; i < sample.ids.length; i++) {
          const id = sample.ids[i]!;
          const mine = restored.get(id);
          if (!mine || !sameRecord(sample, i, mine.columns, mine.row)) bad.push(id);
          const theirs = live.get(id);
          if (!theirs) goneFromSource++;
          else if (sameRecord(sample, i, theirs.columns, theirs.row)) sameInSource++;
          else changedInSource++;
        }
        if (bad.length > 0) {
          throw new IntegrityError(
            `the drill's restore of backup ${manifest.backupId} differs from the backup in ${bad.length} of ${sample.ids.length} sampled records (first: ${bad[0]})`,
          );
        }
        if (changedInSource + goneFromSource > 0) {
          logger.warn({ collection: source, changedInSource, goneFromSource, backupId: manifest.backupId }, "the source changed since its backup");
        }
        const result: DrillResult = {
          collection: source,
          backupId: manifest.backupId,
          scratch,
          records,
          restoreSeconds: Math.round(restoreSeconds * 1000) / 1000,
          sampled: sample.ids.length,
          sameInSource,
          changedInSource,
          goneFromSource,
          durationMs: 0,
          pacing,
        };
        await chroma.deleteCollection(scratch);
        result.durationMs = Math.round(performance.now() - started);
        logger.info({ drill: result }, "restore drill passed");
        return result;
      } catch (error) {
        await chroma.deleteCollection(scratch).catch(() => undefined);
        throw error;
      }
    } finally {
      await lease.release();
    }
  },
});
