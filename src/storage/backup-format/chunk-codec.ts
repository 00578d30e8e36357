import { endianness } from "node:os";
import type { Metadata } from "chromadb";
import { z } from "zod";
import { IntegrityError } from "../../errors.js";
import { TOOL_VERSION } from "../../version.js";
import type { RecordColumns } from "../chroma/record-columns.js";

/**
 * One chunk, before compression:
 *   "VKC1" | u32 LE length of the JSON part | JSON {count, dimension, ids, documents, metadatas[, uris]} | embeddings
 * Text and metadata travel as JSON (compact, exact for strings, numbers, booleans and their arrays); `uris` is there
 * only when a record has one, so chunks without URIs are byte for byte those of format version 1. Embeddings are float32 LE, bit
 * for bit what Chroma stores and a fifth of their size as decimal text, byte-shuffled as Blosc does: all first bytes
 * of the floats, then all second bytes, and so on. Sign and exponent bytes then sit together and compress well, so
 * the compressor both shrinks them more and runs faster.
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
    uris: z.array(z.string().nullable()).optional(),
  })
  .strict();

/** What a chunk's record text holds that this version cannot restore, or what else is wrong with it, in a few words. */
function textProblem(error: z.ZodError, raw: unknown): string {
  const issue = error.issues[0];
  if (!issue) return "malformed record text";
  if (issue.code === "unrecognized_keys") {
    return `holds field ${issue.keys.map((k) => `"${k}"`).join(", ")}, which this vectorkeeper (${TOOL_VERSION}) cannot restore: use a newer release`;
  }
  const [column, row, key] = issue.path;
  if (column === "metadatas" && typeof row === "number" && typeof key === "string") {
    const ids = (raw as { ids?: unknown }).ids;
    const id = Array.isArray(ids) ? String(ids[row]) : `#${row}`;
    return `metadata "${key}" of record ${id} holds a value this vectorkeeper (${TOOL_VERSION}) cannot restore: use a newer release`;
  }
  return `malformed record text at ${issue.path.join(".")} (${issue.message})`;
}

const allNull = <T>(values: readonly (T | null)[]) => values.every((v) => v === null);

/** An encoded chunk in its two parts, so the compressor can treat text and floats each as suits them. */
export interface ChunkParts {
  /** Magic, length and the JSON record text. */
  text: Buffer;
  /** The embeddings' bytes, shuffled into planes. */
  floats: Buffer;
}

export function encodeChunk(columns: RecordColumns): ChunkParts {
  const json = Buffer.from(
    JSON.stringify({
      count: columns.ids.length,
      dimension: columns.dimension,
      ids: columns.ids,
      documents: allNull(columns.documents) ? null : columns.documents,
      metadatas: allNull(columns.metadatas) ? null : columns.metadatas,
      ...(allNull(columns.uris) ? {} : { uris: columns.uris }),
    }),
    "utf8",
  );
  const text = Buffer.allocUnsafe(8 + json.length);
  MAGIC.copy(text, 0);
  text.writeUInt32LE(json.length, 4);
  json.copy(text, 8);
  const floats = Buffer.allocUnsafe(columns.embeddings.byteLength);
  shuffle(new Uint8Array(columns.embeddings.buffer, columns.embeddings.byteOffset, columns.embeddings.byteLength), floats);
  return { text, floats };
}

/** Decodes a chunk; `where` names it in errors ("chunk 3 of backup …"). */
export function decodeChunk(bytes: Buffer, where: string): RecordColumns {
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(MAGIC)) throw new IntegrityError(`${where}: not a vectorkeeper chunk`);
  const textLength = bytes.readUInt32LE(4);
  const textEnd = 8 + textLength;
  if (textEnd > bytes.length) throw new IntegrityError(`${where}: truncated`);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.subarray(8, textEnd).toString("utf8"));
  } catch {
    throw new IntegrityError(`${where}: unreadable record text`);
  }
  const parsed = chunkText.safeParse(raw);
  if (!parsed.success) throw new IntegrityError(`${where} ${textProblem(parsed.error, raw)}`);
  const { count, dimension, ids, documents, metadatas, uris } = parsed.data;
  const floatBytes = bytes.length - textEnd;
  if (ids.length !== count || floatBytes !== count * dimension * 4) {
    throw new IntegrityError(`${where}: holds ${ids.length} ids and ${floatBytes} embedding bytes, expected ${count} of ${dimension} dims`);
  }
  if ((documents && documents.length !== count) || (metadatas && metadatas.length !== count) || (uris && uris.length !== count)) {
    throw new IntegrityError(`${where}: document, metadata or URI count differs from the record count`);
  }
  const embeddings = new Float32Array(count * dimension);
  unshuffle(bytes.subarray(textEnd), new Uint8Array(embeddings.buffer));
  return {
    ids,
    dimension,
    embeddings,
    documents: documents ?? new Array<null>(count).fill(null),
    metadatas: (metadatas as (Metadata | null)[] | null) ?? new Array<null>(count).fill(null),
    uris: uris ?? new Array<null>(count).fill(null),
  };
}

/** Float bytes into four planes: byte 0 of every float, then byte 1, … */
function shuffle(floats: Uint8Array, out: Uint8Array): void {
  const n = floats.length / 4;
  for (let i = 0; i < n; i++) {
    const at = i * 4;
    out[i] = floats[at]!;
    out[n + i] = floats[at + 1]!;
    out[2 * n + i] = floats[at + 2]!;
    out[3 * n + i] = floats[at + 3]!;
  }
}

function unshuffle(planes: Uint8Array, out: Uint8Array): void {
  const n = planes.length / 4;
  for (let i = 0; i < n; i++) {
    const at = i * 4;
    out[at] = planes[i]!;
    out[at + 1] = planes[n + i]!;
    out[at + 2] = planes[2 * n + i]!;
    out[at + 3] = planes[3 * n + i]!;
  }
}
