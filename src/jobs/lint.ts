import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { defineJob } from "./job-context.js";
import { collectionName, metadataField } from "./payload-fields.js";

const d = DEFAULTS.lifecycle;

export const lintPayload = z
  .object({
    collection: collectionName,
    createdField: metadataField.default(d.createdField),
    expiresField: metadataField.default(d.expiresField),
    pageSize: z.number().int().min(1).max(10_000).default(d.lintPageSize),
  })
  .strict();

/** `{domain}_{type}_v{N}`: lowercase words joined by underscores, ending in a version. */
export const NAMING = /^[a-z0-9]+(_[a-z0-9]+)+_v\d+$/;

interface Finding {
  count: number;
  sampleIds: string[];
}

export interface LintResult {
  collection: string;
  records: number;
  name: { ok: boolean; expected: string };
  missing: Record<string, Finding>;
  wrongType: Record<string, Finding>;
  duplicateDocuments: { count: number; samples: string[][] };
  duplicateEmbeddings: { count: number; samples: string[][] };
  /** Problems found, 0 for a clean collection. */
  problems: number;
  durationMs: number;
}

const finding = (): Finding => ({ count: 0, sampleIds: [] });
const note = (f: Finding, id: string) => {
  f.count++;
  if (f.sampleIds.length < d.sampleIds) f.sampleIds.push(id);
};

/** 12 bytes of SHA-1 as text: collisions are out of reach at any collection size, and 16 characters per record. */
const digest = (data: string | Uint8Array) => createHash("sha1").update(data).digest("base64").slice(0, 16);

/**
 * A report that changes nothing: naming, lifecycle fields missing or of the wrong type, and duplicate records (same
 * document text, or same embedding). It reads page by page and keeps a short hash per record, never the records.
 */
export const lint = defineJob({
  kind: "lint",
  payload: lintPayload,
  async process(payload, ctx): Promise<LintResult> {
    const started = performance.now();
    const collection = await ctx.chroma.openCollection(payload.collection);
    const fields = [payload.createdField, payload.expiresField];
    const missing = Object.fromEntries(fields.map((f) => [f, finding()]));
    const wrongType = Object.fromEntries(fields.map((f) => [f, finding()]));
    const firstByDocument = new Map<string, string>();
    const firstByEmbedding = new Map<string, string>();
    const duplicateDocuments = { count: 0, samples: [] as string[][] };
    const duplicateEmbeddings = { count: 0, samples: [] as string[][] };
    const duplicate = (seen: Map<string, string>, found: typeof duplicateDocuments, hash: string, id: string) => {
      const first = seen.get(hash);
      if (first === undefined) return void seen.set(hash, id);
      found.count++;
      if (found.samples.length < d.sampleIds) found.samples.push([first, id]);
    };

    let records = 0;
    for await (const page of ctx.chroma.readPages(collection, { pageSize: payload.pageSize, readAhead: DEFAULTS.backup.readAhead, signal: ctx.signal })) {
      page.ids.forEach((id, i) => {
        const metadata = page.metadatas[i];
        for (const field of fields) {
          const value = metadata?.[field];
          if (value === undefined || value === null) note(missing[field]!, id);
          else if (typeof value !== "number") note(wrongType[field]!, id);
        }
        const document = page.documents[i];
        if (document !== null && document !== undefined) duplicate(firstByDocument, duplicateDocuments, digest(document), id);
        const embedding = page.embeddings.subarray(i * page.dimension, (i + 1) * page.dimension);
        duplicate(firstByEmbedding, duplicateEmbeddings, digest(new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength)), id);
      });
      records += page.ids.length;
      await ctx.progress({ done: records, unit: "records checked" });
    }
    const nameOk = NAMING.test(payload.collection);
    const problems =
      (nameOk ? 0 : 1) +
      [...Object.values(missing), ...Object.values(wrongType)].reduce((n, f) => n + f.count, 0) +
      duplicateDocuments.count +
      duplicateEmbeddings.count;
    return {
      collection: payload.collection,
      records,
      name: { ok: nameOk, expected: "{domain}_{type}_v{N}: lowercase, underscores, a version (e.g. support_articles_v2)" },
      missing,
      wrongType,
      duplicateDocuments,
      duplicateEmbeddings,
      problems,
      durationMs: Math.round(performance.now() - started),
    };
  },
});
