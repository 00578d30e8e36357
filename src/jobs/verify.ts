import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { ConfigError } from "../config/config-error.js";
import { IntegrityError } from "../errors.js";
import { DEFAULTS } from "../config/defaults.js";
import { newestBackup, readManifest } from "../storage/backup-format/backup-catalog.js";
import { readChunks } from "../storage/backup-format/backup-reader.js";
import type { ManifestChunk } from "../storage/backup-format/manifest.js";
import { ObjectNotFoundError } from "../storage/objects/object-store.js";
import { backupIdField } from "./backup-fields.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";

export const verifyPayload = z
  .object({
    /** The collection the backup is of. */
    collection: collectionName,
    alertAfterFailures,
    /** Which backup; the newest complete one of the collection when absent. */
    backupId: backupIdField.optional(),
    /** Share of chunks to download and check, like `restic check --read-data-subset`. */
    samplePercent: z.number().gt(0).max(100).default(100),
  })
  .strict();

export interface VerifyResult {
  backupId: string;
  collection: string;
  chunksChecked: number;
  chunksTotal: number;
  recordsChecked: number;
  ok: true;
  durationMs: number;
}

/** A random subset of `share` percent of the chunks (at least one), in backup order. */
function sample(chunks: ManifestChunk[], percent: number): ManifestChunk[] {
  if (percent >= 100 || chunks.length === 0) return chunks;
  const wanted = Math.max(1, Math.ceil((chunks.length * percent) / 100));
  const indexes = chunks.map((_, i) => i);
  for (let i = indexes.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [indexes[i], indexes[j]] = [indexes[j]!, indexes[i]!];
  }
  return indexes
    .slice(0, wanted)
    .sort((a, b) => a - b)
    .map((i) => chunks[i]!);
}

/**
 * Downloads chunks and proves them: size, SHA-256, decoding, record counts. Every chunk chosen is checked (not just
 * until the first failure), then the job fails naming the first bad chunk and how many were bad.
 */
export const verify = defineJob({
  kind: "verify",
  payload: verifyPayload,
  async process(payload, ctx): Promise<VerifyResult> {
    const started = performance.now();
    const store = ctx.backupStore;
    let manifest;
    if (payload.backupId) {
      try {
        manifest = await readManifest(store, payload.collection, payload.backupId);
      } catch (error) {
        if (error instanceof ObjectNotFoundError) {
          throw new ConfigError(`backup ${payload.backupId} of ${payload.collection} not found in ${store.description}`);
        }
        throw error;
      }
    } else {
      manifest = await newestBackup(store, payload.collection);
      if (!manifest) throw new ConfigError(`${payload.collection} has no complete backup in ${store.description}`);
    }
    const chosen = sample(manifest.chunks, payload.samplePercent);
    const problems: string[] = [];
    let records = 0;
    let checked = 0;
    for await (const read of readChunks(store, manifest, { chunks: chosen, ahead: DEFAULTS.backup.chunkReadAhead, signal: ctx.signal })) {
      if ("problem" in read) {
        problems.push(read.problem.message);
        // Each bad chunk at info: the failure that ends the job names the first and counts them, and is the one line
        // a CLI user sees; a daemon's log keeps every one.
        ctx.logger.info({ backupId: manifest.backupId, chunk: read.chunk.key }, read.problem.message);
      } else {
        records += read.columns.ids.length;
      }
      await ctx.progress({ done: ++checked, total: chosen.length, unit: "chunks" });
    }
    if (problems.length > 0) {
      throw new IntegrityError(
        `${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more bad chunks)` : ""}; ${problems.length} of ${chosen.length} checked chunks failed`,
      );
    }
    return {
      backupId: manifest.backupId,
      collection: manifest.collection.name,
      chunksChecked: chosen.length,
      chunksTotal: manifest.chunks.length,
      recordsChecked: records,
      ok: true,
      durationMs: Math.round(performance.now() - started),
    };
  },
});
