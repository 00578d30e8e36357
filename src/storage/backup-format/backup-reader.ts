import { createHash } from "node:crypto";
import { IntegrityError } from "../../errors.js";
import { DEFAULTS } from "../../config/defaults.js";
import { ObjectNotFoundError, type ObjectStore } from "../objects/object-store.js";
import { readAhead } from "../chroma/read-ahead.js";
import type { RecordColumns } from "../chroma/record-columns.js";
import { decodeChunk } from "./chunk-codec.js";
import { decompressors } from "./compression.js";
import { chunkName } from "./content-store.js";
import { chunkObjectKey, packsFolder } from "./layout.js";
import type { ManifestChunk, PackedChunk, UnsignedManifest } from "./manifest.js";
import { chunkContext, packRuns, readRun, type RunSlice } from "./packs.js";

/** A chunk read by `readChunks`: its records, or what is wrong with it. */
export type ChunkRead = { chunk: ManifestChunk; columns: RecordColumns } | { chunk: ManifestChunk; problem: IntegrityError };

const where = (manifest: UnsignedManifest, chunk: ManifestChunk) =>
  "pack" in chunk
    ? `chunk ${chunk.key} (pack ${manifest.packs?.[chunk.pack]?.name}, byte ${chunk.offset}) of backup ${manifest.backupId} (${manifest.collection.name})`
    : `chunk ${chunk.key} of backup ${manifest.backupId} (${manifest.collection.name})`;

/**
 * Reads one chunk of a backup and proves it is the one the manifest describes: present, of the recorded size and
 * SHA-256, decodable, and holding the recorded number of records. Any failure names the chunk.
 */
export async function readChunk(store: ObjectStore, manifest: UnsignedManifest, chunk: ManifestChunk): Promise<RecordColumns> {
  if ("pack" in chunk) {
    const [read] = await readPackRun(store, manifest, [chunk]);
    if ("problem" in read!) throw read.problem;
    return read!.columns;
  }
  let body: Buffer;
  try {
    body = await store.get(chunkObjectKey(manifest, chunk.key));
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new IntegrityError(`${where(manifest, chunk)} is missing from ${store.description}`);
    throw error;
  }
  if (body.length !== chunk.bytes) throw new IntegrityError(`${where(manifest, chunk)} has ${body.length} bytes, the manifest says ${chunk.bytes}`);
  // Format 3 names a chunk by its hash (keyed when encrypted): content that does not match its name is damaged or swapped.
  const sha = "sha256" in chunk ? createHash("sha256").update(body).digest("hex") : await chunkName(store, body);
  return decodeStored(manifest, chunk, body, sha === ("sha256" in chunk ? chunk.sha256 : chunk.key));
}

/**
 * A format 4 chunk's stored bytes, decrypted and checked against its name: what a store holding the same backup
 * unencrypted would have. Tests use it to look at what a pack holds.
 */
export async function openPacked(store: ObjectStore, manifest: UnsignedManifest, slice: RunSlice<PackedChunk>): Promise<Buffer> {
  const { chunk } = slice;
  if ("missing" in slice) throw new IntegrityError(`${where(manifest, chunk)} ${slice.missing}`);
  const packKey = packsFolder(manifest.collection.name) + manifest.packs?.[chunk.pack]?.name;
  const context = chunkContext(manifest.collection.name, chunk.key);
  return store.openBlob ? store.openBlob(context, slice.body, `chunk ${chunk.key} at byte ${chunk.offset} of ${packKey}`) : slice.body;
}

/** Reads a run of format 4 chunks of one pack (one range request) and checks each. */
async function readPackRun(store: ObjectStore, manifest: UnsignedManifest, run: readonly PackedChunk[]): Promise<ChunkRead[]> {
  const pack = manifest.packs?.[run[0]!.pack];
  if (!pack) throw new IntegrityError(`${where(manifest, run[0]!)} names no pack listed in its manifest`);
  const reads: ChunkRead[] = [];
  for (const slice of await readRun(store, manifest.collection.name, pack, run)) {
    try {
      const body = await openPacked(store, manifest, slice);
      reads.push({ chunk: slice.chunk, columns: await decodeStored(manifest, slice.chunk, body, (await chunkName(store, body)) === slice.chunk.key) });
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      reads.push({ chunk: slice.chunk, problem: error });
    }
  }
  return reads;
}

/** The records of a chunk's stored bytes, once their hash was compared with the manifest's (`matches`). */
async function decodeStored(manifest: UnsignedManifest, chunk: ManifestChunk, body: Buffer, matches: boolean): Promise<RecordColumns> {
  const at = where(manifest, chunk);
  if (!matches) throw new IntegrityError(`${at} fails its SHA-256 check: it was altered or damaged`);
  let raw: Buffer;
  try {
    raw = await decompressors[manifest.compression](body);
  } catch {
    throw new IntegrityError(`${at} does not decompress as ${manifest.compression}`);
  }
  const columns = decodeChunk(raw, at);
  if (columns.ids.length !== chunk.records) {
    throw new IntegrityError(`${at} holds ${columns.ids.length} records, the manifest says ${chunk.records}`);
  }
  if (manifest.dimension !== null && columns.ids.length > 0 && columns.dimension !== manifest.dimension) {
    throw new IntegrityError(`${at} has ${columns.dimension}-dim embeddings, the manifest says ${manifest.dimension}`);
  }
  return columns;
}

/**
 * Reads chunks in order with `ahead` further downloads running meanwhile. A damaged chunk is reported in its place and
 * reading goes on (verify lists every bad chunk); other failures, such as an unreachable store, end the reading.
 * Format 4 chunks are read run by run out of their packs (one range request per run of neighbouring chunks).
 */
export async function* readChunks(
  store: ObjectStore,
  manifest: UnsignedManifest,
  options: { chunks?: readonly ManifestChunk[]; ahead: number; signal?: AbortSignal },
): AsyncGenerator<ChunkRead> {
  const chunks = options.chunks ?? manifest.chunks;
  // Shared chunks are small: more downloads in flight keep the reading bound by bandwidth rather than latency.
  const ahead = manifest.formatVersion >= 3 ? Math.max(options.ahead, DEFAULTS.backup.dedupeReadAhead) : options.ahead;
  if (manifest.formatVersion >= 4) {
    const packed = chunks.filter((chunk): chunk is PackedChunk => "pack" in chunk);
    const runs = packRuns(packed, { maxBytes: DEFAULTS.backup.packReadBytes, maxGap: DEFAULTS.backup.packReadGapBytes });
    const reads = readAhead((index) => readPackRun(store, manifest, runs[index]!), { ahead, count: runs.length, signal: options.signal });
    for await (const run of reads) yield* run;
    return;
  }
  yield* readAhead(
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
