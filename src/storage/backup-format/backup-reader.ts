import { createHash } from "node:crypto";
import { IntegrityError } from "../../errors.js";
import { DEFAULTS } from "../../config/defaults.js";
import { ObjectNotFoundError, type ObjectStore } from "../objects/object-store.js";
import { readAhead } from "../chroma/read-ahead.js";
import type { RecordColumns } from "../chroma/record-columns.js";
import { decodeChunk } from "./chunk-codec.js";
import { decompressors } from "./compression.js";
import { chunkName } from "./content-store.js";
import { chunkObjectKey } from "./layout.js";
import type { ManifestChunk, UnsignedManifest } from "./manifest.js";

/**
 * Reads one chunk of a backup and proves it is the one the manifest describes: present, of the recorded size and
 * SHA-256, decodable, and holding the recorded number of records. Any failure names the chunk.
 */
export async function readChunk(store: ObjectStore, manifest: UnsignedManifest, chunk: ManifestChunk): Promise<RecordColumns> {
  const where = `chunk ${chunk.key} of backup ${manifest.backupId} (${manifest.collection.name})`;
  let body: Buffer;
  try {
    body = await store.get(chunkObjectKey(manifest, chunk.key));
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new IntegrityError(`${where} is missing from ${store.description}`);
    throw error;
  }
  if (body.length !== chunk.bytes) throw new IntegrityError(`${where} has ${body.length} bytes, the manifest says ${chunk.bytes}`);
  // Format 3 names a chunk by its hash (keyed when encrypted): content that does not match its name is damaged or swapped.
  const sha = "sha256" in chunk ? createHash("sha256").update(body).digest("hex") : await chunkName(store, body);
  if (sha !== ("sha256" in chunk ? chunk.sha256 : chunk.key)) throw new IntegrityError(`${where} fails its SHA-256 check: it was altered or damaged`);
  let raw: Buffer;
  try {
    raw = await decompressors[manifest.compression](body);
  } catch {
    throw new IntegrityError(`${where} does not decompress as ${manifest.compression}`);
  }
  const columns = decodeChunk(raw, where);
  if (columns.ids.length !== chunk.records) {
    throw new IntegrityError(`${where} holds ${columns.ids.length} records, the manifest says ${chunk.records}`);
  }
  if (manifest.dimension !== null && columns.ids.length > 0 && columns.dimension !== manifest.dimension) {
    throw new IntegrityError(`${where} has ${columns.dimension}-dim embeddings, the manifest says ${manifest.dimension}`);
  }
  return columns;
}

/** A chunk read by `readChunks`: its records, or what is wrong with it. */
export type ChunkRead = { chunk: ManifestChunk; columns: RecordColumns } | { chunk: ManifestChunk; problem: IntegrityError };

/**
 * Reads chunks in order with `ahead` further downloads running meanwhile. A damaged chunk is reported in its place and
 * reading goes on (verify lists every bad chunk); other failures, such as an unreachable store, end the reading.
 */
export function readChunks(
  store: ObjectStore,
  manifest: UnsignedManifest,
  options: { chunks?: readonly ManifestChunk[]; ahead: number; signal?: AbortSignal },
): AsyncGenerator<ChunkRead> {
  const chunks = options.chunks ?? manifest.chunks;
  // Shared chunks are small: more downloads in flight keep the reading bound by bandwidth rather than latency.
  const ahead = manifest.formatVersion >= 3 ? Math.max(options.ahead, DEFAULTS.backup.dedupeReadAhead) : options.ahead;
  return readAhead(
    async (index): Promise<ChunkRead> => {
      const chunk = chunks[index]!;
      try {
        return { chunk, columns: await readChunk(store, manifest, chunk) };
      } catch (error) {
        if (error instanceof IntegrityError) return { chunk, problem: error };
        throw error;
      }
    },
    { ahead, count: chunks.length, signal: options.signal },
  );
}
