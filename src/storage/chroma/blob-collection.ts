import { createHash } from "node:crypto";
import type { Collection, Metadata } from "chromadb";
import { z } from "zod";
import type { ChromaStore } from "./client.js";
import { CollectionNotFoundError } from "./store-errors.js";

/*
 * Bytes kept in a collection of their own, for state a job keeps beside the collections it works on (a reindex's
 * record of what it last carried over from the collection it set aside), so the state lives and goes with them in the
 * one store every job has. Each record holds a part, base64 in a metadata value (not a document: Chroma would index it
 * for full-text search); its embedding is a single 0.
 */

/** Raw bytes a part at most: about 260 kB of base64 a record. */
const PART_BYTES = 192 * 1024;
/** Request-body bytes besides the parts' base64: a part's id, embedding and JSON around it, and the request's own. */
const PART_OVERHEAD = 128;
const REQUEST_OVERHEAD = 1024;

const partId = (index: number) => `part-${String(index).padStart(6, "0")}`;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const base64Length = (raw: number) => Math.ceil(raw / 3) * 4;

/** How a blob is cut: raw bytes a part and parts a write, so every write fits `limits` (VK_CHROMA_MAX_REQUEST_BYTES). */
export function blobCuts(limits: { records: number; bytes: number }): { partBytes: number; partsPerRequest: number } {
  const room = limits.bytes - REQUEST_OVERHEAD - PART_OVERHEAD;
  const partBytes = Math.max(1, Math.min(PART_BYTES, Math.floor(room / 4) * 3));
  const partsPerRequest = Math.max(1, Math.min(limits.records, Math.floor((limits.bytes - REQUEST_OVERHEAD) / (base64Length(partBytes) + PART_OVERHEAD))));
  return { partBytes, partsPerRequest };
}

/** The collection metadata `writeBlob` writes beside the caller's: read back from Chroma, so checked. */
const blobMetadata = z.object({
  vk_parts: z.number().int().min(0).max(1_000_000),
  vk_bytes: z.number().int().min(0),
  vk_sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** What `readBlob` found: nothing, something that is not a whole blob (and why), or the bytes and their metadata. */
export type BlobRead = { kind: "missing" } | { kind: "damaged"; why: string } | { kind: "ok"; bytes: Buffer; metadata: Metadata };

/** Writes `bytes` as collection `name` (replacing one of that name) with `metadata`; its checksum is written first. */
export async function writeBlob(chroma: ChromaStore, name: string, metadata: Record<string, string | number>, bytes: Buffer): Promise<void> {
  const { partBytes, partsPerRequest } = blobCuts(await chroma.writeLimits());
  await deleteBlob(chroma, name);
  const parts = Math.ceil(bytes.length / partBytes);
  const collection = await chroma.createBlobCollection(name, { ...metadata, vk_parts: parts, vk_bytes: bytes.length, vk_sha256: sha256(bytes) });
  for (let first = 0; first < parts; first += partsPerRequest) {
    const indexes = Array.from({ length: Math.min(partsPerRequest, parts - first) }, (_, i) => first + i);
    await collection.add({
      ids: indexes.map(partId),
      embeddings: indexes.map(() => [0]),
      metadatas: indexes.map((i) => ({ b: bytes.subarray(i * partBytes, (i + 1) * partBytes).toString("base64") })),
    });
  }
}

/**
 * The bytes `writeBlob` stored as `name`; "damaged" when what the collection holds is not whole (a write broken off,
 * a part missing or changed, metadata not as written: the checksum and the check of the metadata say).
 */
export async function readBlob(chroma: ChromaStore, name: string): Promise<BlobRead> {
  let collection: Collection;
  try {
    collection = await chroma.openCollection(name);
  } catch (error) {
    if (error instanceof CollectionNotFoundError) return { kind: "missing" };
    throw error;
  }
  const metadata = collection.metadata ?? {};
  const checked = blobMetadata.safeParse(metadata);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    return { kind: "damaged", why: `metadata ${issue?.path.join(".") || "?"}: ${issue?.message ?? "not as written"}` };
  }
  const { vk_parts: parts, vk_bytes: length, vk_sha256: checksum } = checked.data;
  const pieces: Buffer[] = [];
  const perRead = 8;
  for (let first = 0; first < parts; first += perRead) {
    const ids = Array.from({ length: Math.min(perRead, parts - first) }, (_, i) => partId(first + i));
    const got = await collection.get({ ids, include: ["metadatas"] });
    const byId = new Map(got.ids.map((id, i) => [id, got.metadatas[i]?.b]));
    for (const id of ids) {
      const part = byId.get(id);
      if (typeof part !== "string") return { kind: "damaged", why: `${id} of ${parts} parts is missing` };
      pieces.push(Buffer.from(part, "base64"));
    }
  }
  const bytes = Buffer.concat(pieces);
  if (bytes.length !== length || sha256(bytes) !== checksum) return { kind: "damaged", why: "its parts do not match its checksum" };
  return { kind: "ok", bytes, metadata };
}

/** Deletes the collection `name` if there is one. */
export async function deleteBlob(chroma: ChromaStore, name: string): Promise<void> {
  try {
    await chroma.openCollection(name);
  } catch (error) {
    if (error instanceof CollectionNotFoundError) return;
    throw error;
  }
  await chroma.deleteCollection(name);
}
