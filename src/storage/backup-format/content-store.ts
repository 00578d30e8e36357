import { createHash } from "node:crypto";
import { recordFeatures, type ChromaFeature } from "../chroma/features.js";
import { storedBytes, type ObjectStore } from "../objects/object-store.js";
import { concatColumns, type RecordColumns } from "../chroma/record-columns.js";
import { ChunkCutter, type CutRules } from "./chunk-cutter.js";
import { encodeChunk } from "./chunk-codec.js";
import { compressors, gzipSmallChunk, type Compression } from "./compression.js";
import { backupFolder, chunksFolder, MANIFEST } from "./layout.js";
import { serializeManifest, type ManifestChunk, type UnsignedManifest } from "./manifest.js";

/** A shared chunk's name: the SHA-256 of its bytes, or the store's keyed name when it encrypts. */
export async function chunkName(store: ObjectStore, body: Uint8Array): Promise<string> {
  return store.contentName ? store.contentName(body) : createHash("sha256").update(body).digest("hex");
}

/** The collection's stored chunks: name → size, from one listing of its chunks folder. */
export async function storedChunks(store: ObjectStore, collection: string): Promise<Map<string, { size: number; lastModified: Date }>> {
  const folder = chunksFolder(collection);
  const chunks = new Map<string, { size: number; lastModified: Date }>();
  for await (const object of store.list(folder)) {
    const name = object.key.slice(folder.length);
    if (/^[0-9a-f]{64}$/.test(name)) chunks.set(name, { size: object.size, lastModified: object.lastModified });
  }
  return chunks;
}

/**
 * Writes a format 3 backup: cuts the records at content-defined boundaries, names each encoded and compressed chunk
 * by its SHA-256 and uploads only chunks the collection's store does not hold yet (known from one listing taken when
 * the first chunk is ready). A few uploads run at once, as chunks are small. The manifest, written last into the
 * backup's folder, lists the chunks in order.
 */
export class ContentWriter {
  private readonly cutter: ChunkCutter;
  private known: Map<string, { size: number }> | undefined;
  /** Names uploaded (or being uploaded) by this run, so a repeated chunk goes up once. */
  private readonly written = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private readonly chunks: ManifestChunk[] = [];
  private dimension = 0;
  records = 0;
  /** Logical size: every chunk the backup lists, and its manifest, whether uploaded now or before. */
  bytes = 0;
  /** What this run wrote to the store, as stored (encrypted objects with their envelope). */
  uploadedBytes = 0;
  /** Chunks the store already held (from earlier backups), not uploaded again. */
  reusedChunks = 0;
  readonly features = new Set<ChromaFeature>();

  constructor(
    private readonly store: ObjectStore,
    private readonly collection: string,
    private readonly backupId: string,
    private readonly compression: Compression,
    rules: CutRules,
    private readonly uploads: number,
  ) {
    this.cutter = new ChunkCutter(rules);
  }

  async add(page: RecordColumns): Promise<void> {
    this.dimension = page.dimension;
    for (const feature of recordFeatures(page.metadatas, page.uris)) this.features.add(feature);
    for (const parts of this.cutter.push(page)) await this.emit(parts);
  }

  private async emit(parts: RecordColumns[]): Promise<void> {
    this.known ??= await storedChunks(this.store, this.collection);
    while (this.inFlight.size >= this.uploads) await Promise.race(this.inFlight);
    this.check();
    const index = this.chunks.length;
    this.chunks.push({ key: "", records: 0, bytes: 0 });
    const task: Promise<void> = this.put(index, concatColumns(parts, this.dimension))
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  }

  private async put(index: number, columns: RecordColumns): Promise<void> {
    const parts = encodeChunk(withSortedMetadata(columns));
    const body = this.compression === "gzip" ? gzipSmallChunk(parts) : await compressors[this.compression](parts);
    const key = await chunkName(this.store, body);
    this.chunks[index] = { key, records: columns.ids.length, bytes: body.length };
    this.records += columns.ids.length;
    this.bytes += body.length;
    if (this.known?.get(key)?.size === body.length || this.written.has(key)) {
      this.reusedChunks++;
      return;
    }
    this.written.add(key);
    await this.store.put(chunksFolder(this.collection) + key, body);
    this.uploadedBytes += storedBytes(this.store, body.length);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Uploads what is left, confirms every chunk the manifest will list is in the store at its size (one listing of
   * the chunks folder), then writes the manifest, last. A chunk that went missing meanwhile fails the backup instead
   * of listing one that cannot be restored.
   */
  async finish(manifest: (chunks: ManifestChunk[]) => UnsignedManifest | Promise<UnsignedManifest>): Promise<UnsignedManifest> {
    const rest = this.cutter.rest();
    if (rest.length > 0) await this.emit(rest);
    await this.abandon();
    this.check();
    const stored = await storedChunks(this.store, this.collection);
    for (const chunk of this.chunks) {
      const size = stored.get(chunk.key)?.size;
      if (size !== chunk.bytes) {
        throw new Error(
          `chunk ${chunksFolder(this.collection)}${chunk.key} ${size === undefined ? "is missing" : `holds ${size} bytes, not ${chunk.bytes},`} in ${this.store.description} ` +
            "after this backup wrote or found it (deleted by a prune that could not see this backup, or lost by the store); no manifest written",
        );
      }
    }
    const unsigned = await manifest(this.chunks);
    const body = serializeManifest(unsigned);
    await this.store.put(backupFolder(this.collection, this.backupId) + MANIFEST, body);
    this.bytes += body.length;
    this.uploadedBytes += storedBytes(this.store, body.length);
    return unsigned;
  }

  /** Waits for the uploads still running, ignoring their outcome. */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}

/**
 * Chroma answers metadata keys in no fixed order (a hash map on the server), which would give the same records a new
 * chunk name on every backup: keys are written sorted. Key order carries no meaning, so a restore is unchanged.
 */
function withSortedMetadata(columns: RecordColumns): RecordColumns {
  const metadatas = columns.metadatas.map((m) => (m === null ? null : Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))));
  return { ...columns, metadatas };
}

/** Chunks no kept manifest lists, old enough to go: the sweep of a mark-and-sweep prune. */
export interface ChunkSweep {
  keys: string[];
  bytes: number;
  /** Unreferenced chunks left for now: younger than the grace period (maybe a running backup's). */
  young: number;
}

/**
 * Marks every chunk the kept manifests (of any purpose) list and sweeps the rest of the collection's chunks that were
 * last written before `before`. Chunks are per collection, so a sweep never touches another collection's backups.
 */
export async function planSweep(
  store: ObjectStore,
  collection: string,
  kept: readonly { formatVersion: number; chunks: readonly ManifestChunk[] }[],
  before: Date,
): Promise<ChunkSweep> {
  const marked = new Set<string>();
  for (const manifest of kept) if (manifest.formatVersion >= 3) for (const chunk of manifest.chunks) marked.add(chunk.key);
  const sweep: ChunkSweep = { keys: [], bytes: 0, young: 0 };
  for (const [name, object] of await storedChunks(store, collection)) {
    if (marked.has(name)) continue;
    if (object.lastModified >= before) {
      sweep.young++;
      continue;
    }
    sweep.keys.push(chunksFolder(collection) + name);
    sweep.bytes += object.size;
  }
  return sweep;
}

/**
 * What each backup alone holds: its manifest and the chunks no other listed backup of its collection shares (what
 * pruning it alone would free). Folder-format backups share nothing.
 */
export function soleBytes(
  entries: readonly { collection: string; backupId: string; bytes: number; manifest: { formatVersion: number; chunks: readonly ManifestChunk[] } }[],
): Map<string, number> {
  const users = new Map<string, number>();
  const keyOf = (collection: string, chunk: string) => `${collection}/${chunk}`;
  for (const entry of entries) {
    if (entry.manifest.formatVersion < 3) continue;
    for (const key of new Set(entry.manifest.chunks.map((c) => keyOf(entry.collection, c.key)))) users.set(key, (users.get(key) ?? 0) + 1);
  }
  const sole = new Map<string, number>();
  for (const entry of entries) {
    if (entry.manifest.formatVersion < 3) {
      sole.set(entry.backupId, entry.bytes);
      continue;
    }
    const own = new Map<string, number>();
    for (const chunk of entry.manifest.chunks) if (users.get(keyOf(entry.collection, chunk.key)) === 1) own.set(chunk.key, chunk.bytes);
    const manifestBytes = entry.bytes - entry.manifest.chunks.reduce((n, c) => n + c.bytes, 0);
    sole.set(entry.backupId, manifestBytes + [...own.values()].reduce((n, b) => n + b, 0));
  }
  return sole;
}
