import { endianness } from "node:os";
import type { Metadata } from "chromadb";
import { z } from "zod";
import { IntegrityError } from "../../config/config-error.js";
import type { RecordColumns } from "../record-columns.js";

/**
 * One chunk, before compression:
 *   "VKC1" | u32 LE length of the JSON part | JSON {count, dimension, ids, documents, metadatas} | float32 LE embeddings
 * Text and metadata travel as JSON (compact, exact for strings, numbers and booleans); embeddings as raw float32,
 * bit for bit what Chroma stores and a fifth of their size as decimal text.
 */
const MAGIC = Buffer.from("VKC1", "ascii");

if (endianness() !== "LE") {
  // Float32Array uses the host's byte order; every platform Node ships for today is little-endian.
  throw new Error("vectorkeeper's chunk format needs a little-endian host");
}

const metadataValue = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.union([z.string(), z.number(), z.boolean()]))]);
const chunkText = z
  .object({
    count: z.number().int().nonnegative(),
    dimension: z.number().int().nonnegative(),
    ids: z.array(z.string()),
    /** null: no record in the chunk has a document (saves a column of nulls). */
    documents: z.array(z.string().nullable()).nullable(),
    metadatas: z.array(z.record(z.string(), metadataValue).nullable()).nullable(),
  })
  .strict();

const allNull = <T>(values: readonly (T | null)[]) => values.every((v) => v === null);

export function encodeChunk(columns: RecordColumns): Buffer {
  const text = Buffer.from(
    JSON.stringify({
      count: columns.ids.length,
      dimension: columns.dimension,
      ids: columns.ids,
      documents: allNull(columns.documents) ? null : columns.documents,
      metadatas: allNull(columns.metadatas) ? null : columns.metadatas,
    }),
    "utf8",
  );
  const length = Buffer.alloc(4);
  length.writeUInt32LE(text.length);
  const floats = Buffer.from(columns.embeddings.buffer, columns.embeddings.byteOffset, columns.embeddings.byteLength);
  return Buffer.concat([MAGIC, length, text, floats]);
}

/** Decodes a chunk; `where` names it in errors ("chunk 3 of backup …"). */
export function decodeChunk(bytes: Buffer, where: string): RecordColumns {
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(MAGIC)) throw new IntegrityError(`${where}: not a vectorkeeper chunk`);
  const textLength = bytes.readUInt32LE(4);
  const textEnd = 8 + textLength;
  if (textEnd > bytes.length) throw new IntegrityError(`${where}: truncated`);
  let parsed;
  try {
    parsed = chunkText.safeParse(JSON.parse(bytes.subarray(8, textEnd).toString("utf8")));
  } catch {
    throw new IntegrityError(`${where}: unreadable record text`);
  }
  if (!parsed.success) throw new IntegrityError(`${where}: malformed record text (${parsed.error.issues[0]?.message})`);
  const { count, dimension, ids, documents, metadatas } = parsed.data;
  const floatBytes = bytes.length - textEnd;
  if (ids.length !== count || floatBytes !== count * dimension * 4) {
    throw new IntegrityError(`${where}: holds ${ids.length} ids and ${floatBytes} embedding bytes, expected ${count} of ${dimension} dims`);
  }
  if ((documents && documents.length !== count) || (metadatas && metadatas.length !== count)) {
    throw new IntegrityError(`${where}: document or metadata count differs from the record count`);
  }
  // Copy into an aligned buffer: a Float32Array cannot view an odd byte offset.
  const embeddings = new Float32Array(count * dimension);
  new Uint8Array(embeddings.buffer).set(bytes.subarray(textEnd));
  return {
    ids,
    dimension,
    embeddings,
    documents: documents ?? new Array<null>(count).fill(null),
    metadatas: (metadatas as (Metadata | null)[] | null) ?? new Array<null>(count).fill(null),
  };
}
