import { createHash } from "node:crypto";
import type { Collection, Metadata } from "chromadb";
import type { ChromaStore } from "./client.js";
import { CollectionNotFoundError } from "./store-errors.js";

/*
 * Bytes kept in a collection of their own, for state a job keeps beside the collections it works on (a reindex's
 * record of what it last carried over from the collection it set aside), so the state lives and goes with them in the
 * one store every job has. Each record holds a part, base64 in a metadata value (not a document: Chroma would index it
 * for full-text search); its embedding is a single 0.
 */

/** Raw bytes a part: about 260 kB of base64 a record, well inside Chroma's request limits. */
const PART_BYTES = 192 * 1024;
/** Parts a write or a read. */
const PARTS_A_REQUEST = 8;

const partId = (index: number) => `part-${String(index).padStart(6, "0")}`;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** What `readBlob` found: the bytes and the collection metadata written with them. */
export interface StoredBlob {
  bytes: Buffer;
  metadata: Metadata;
}

/** Writes `bytes` as collection `name` (replacing one of that name) with `metadata`; its checksum is written first. */
export async function writeBlob(chroma: ChromaStore, name: string, metadata: Record<string, string | number>, bytes: Buffer): Promise<void> {
  await deleteBlob(chroma, name);
  const parts = Math.ceil(bytes.length / PART_BYTES);
  const collection = await chroma.client.createCollection({
    name,
    embeddingFunction: null,
    metadata: { ...metadata, vk_parts: parts, vk_bytes: bytes.length, vk_sha256: sha256(bytes) },
  });
  for (let first = 0; first < parts; first += PARTS_A_REQUEST) {
    const indexes = Array.from({ length: Math.min(PARTS_A_REQUEST, parts - first) }, (_, i) => first + i);
    await collection.add({
      ids: indexes.map(partId),
      embeddings: indexes.map(() => [0]),
      metadatas: indexes.map((i) => ({ b: bytes.subarray(i * PART_BYTES, (i + 1) * PART_BYTES).toString("base64") })),
    });
  }
}

/**
 * The bytes `writeBlob` stored as `name`, or undefined when there is no such collection or what it holds is not whole
 * (a write broken off, a part missing or changed: the checksum says).
 */
export async function readBlob(chroma: ChromaStore, name: string): Promise<StoredBlob | undefined> {
  let collection: Collection;
  try {
    collection = await chroma.openCollection(name);
  } catch (error) {
    if (error instanceof CollectionNotFoundError) return undefined;
    throw error;
  }
  const metadata = collection.metadata ?? {};
  const { vk_parts: parts, vk_bytes: length, vk_sha256: checksum } = metadata;
  if (typeof parts !== "number" || typeof length !== "number" || typeof checksum !== "string") return undefined;
  const pieces: Buffer[] = [];
  for (let first = 0; first < parts; first += PARTS_A_REQUEST) {
    const ids = Array.from({ length: Math.min(PARTS_A_REQUEST, parts - first) }, (_, i) => partId(first + i));
    const got = await collection.get({ ids, include: ["metadatas"] });
    const byId = new Map(got.ids.map((id, i) => [id, got.metadatas[i]?.b]));
    for (const id of ids) {
      const part = byId.get(id);
      if (typeof part !== "string") return undefined;
      pieces.push(Buffer.from(part, "base64"));
    }
  }
  const bytes = Buffer.concat(pieces);
  return bytes.length === length && sha256(bytes) === checksum ? { bytes, metadata } : undefined;
}

/** Deletes the collection `name` if there is one. */
export async function deleteBlob(chroma: ChromaStore, name: string): Promise<void> {
  if ((await chroma.listCollectionNames()).includes(name)) await chroma.deleteCollection(name);
}
