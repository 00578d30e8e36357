import { performance } from "node:perf_hooks";
import type { Collection, Where } from "chromadb";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { listIds } from "../storage/chroma/linear-read.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName, metadataField } from "./payload-fields.js";
import { pacingFields, startPacing } from "./pacing-fields.js";
import type { PacingReport } from "../storage/chroma/pacing.js";

const d = DEFAULTS.lifecycle;

export const expirePayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    /** Metadata field with the expiry time in epoch milliseconds. */
    field: metadataField.default(d.expiresField),
    /** Count what would be deleted; change nothing. */
    dryRun: z.boolean().default(false),
    batchSize: z.number().int().min(1).max(100_000).default(d.expireBatchSize),
    ...pacingFields,
  })
  .strict();

export interface ExpireResult {
  collection: string;
  field: string;
  /** Deleted, or under dryRun the number that would be. */
  deleted: number;
  dryRun: boolean;
  /** Records whose field holds something other than a number: never deleted, counted here with a few ids. */
  notNumeric: { count: number; sampleIds: string[] };
  /** The moment records had to expire before. */
  cutoff: number;
  durationMs: number;
  /** How the deletes and the audit kept to the rate limit or spared the collection's queries (adaptive). */
  pacing: PacingReport;
}

/** Batches of ids whose field is before the cutoff, for deleting: each is the first page of what still matches. */
async function* expiredIds(collection: Collection, where: Where, batch: number, signal: AbortSignal) {
  for (;;) {
    signal.throwIfAborted();
    const page = await collection.get({ where, limit: batch, include: [] });
    if (page.ids.length === 0) return;
    yield page.ids;
    if (page.ids.length < batch) return;
  }
}

/**
 * Deletes the records whose expiry field (a number, epoch ms) is before now, a batch at a time: find a page of ids
 * with `where`/`limit`, delete them by id. Memory holds one batch of ids whatever the number expired; stopping at
 * any point loses nothing and the next run carries on. Chroma's `$lt` matches numbers only, so a field written as an
 * ISO string is never deleted; a metadata-only scan counts such records so they can be converted.
 */
export const expire = defineJob({
  kind: "expire",
  payload: expirePayload,
  async process(payload, ctx): Promise<ExpireResult> {
    const started = performance.now();
    const collection = await ctx.chroma.openCollection(payload.collection);
    const cutoff = Date.now();
    const where: Where = { [payload.field]: { $lt: cutoff } };
    // Few large deletes run close to one server-side delete({ where }); the server caps the size of one.
    const batch = Math.min(payload.batchSize, await ctx.chroma.maxBatchSize());

    let deleted = 0;
    const notNumeric = { count: 0, sampleIds: [] as string[] };
    const pacer = await startPacing(payload, collection, ctx);
    try {
      // A dry run deletes nothing, so it lists the matching ids in windows instead of walking offsets page by page.
      const batches = payload.dryRun ? listIds(collection, { where, signal: ctx.signal }) : expiredIds(collection, where, batch, ctx.signal);
      for await (const ids of batches) {
        await pacer.take(ids.length, ctx.signal);
        if (!payload.dryRun) await collection.delete({ ids });
        deleted += ids.length;
        await ctx.progress({ done: deleted, unit: payload.dryRun ? "records would expire" : "records deleted", note: pacer.note });
      }

      const audit = { pageSize: d.auditPageSize, readAhead: 1, include: ["metadatas"] as const, signal: ctx.signal };
      for await (const page of ctx.chroma.readPages(collection, audit)) {
        await pacer.take(page.ids.length * d.auditPaceShare, ctx.signal);
        page.metadatas.forEach((metadata, i) => {
          const value = metadata?.[payload.field];
          if (value === undefined || value === null || typeof value === "number") return;
          notNumeric.count++;
          if (notNumeric.sampleIds.length < d.sampleIds) notNumeric.sampleIds.push(page.ids[i]!);
        });
      }
      if (notNumeric.count > 0) {
        ctx.logger.warn(
          { field: payload.field, ...notNumeric },
          `${notNumeric.count} records hold ${payload.field} as something other than epoch milliseconds and never expire; see the README on converting them`,
        );
      }
    } finally {
      pacer.close();
    }
    ctx.logger.info({ deleted, dryRun: payload.dryRun }, "expire done");
    return {
      collection: payload.collection,
      field: payload.field,
      deleted,
      dryRun: payload.dryRun,
      notNumeric,
      cutoff,
      durationMs: Math.round(performance.now() - started),
      pacing: pacer.report(),
    };
  },
});
