import { createHash } from "node:crypto";
import { storedBytes, type ObjectStore } from "../objects/object-store.js";
import { concatColumns, sliceColumns, type RecordColumns } from "../chroma/record-columns.js";
import { encodeChunk } from "./chunk-codec.js";
import { compressors, type Compression } from "./compression.js";
import { chunkName, MANIFEST } from "./layout.js";
import { serializeManifest, type ManifestChunk, type UnsignedManifest } from "./manifest.js";
import { WriteTally } from "./write-tally.js";

/** When a chunk is full: whichever limit is reached first. */
export interface ChunkLimits {
  records: number;
  /** Uncompressed bytes, estimated as embeddings plus id and document text. */
  bytes: number;
}

/**
 * Groups pages into chunks and uploads each (encoded, compressed, SHA-256'd) while the caller reads on. At most one
 * chunk uploads while the next one fills, so memory stays at about two chunks whatever the collection's size.
 */
export class BackupWriter extends WriteTally {
  private pending: RecordColumns[] = [];
  private pendingRecords = 0;
  private pendingBytes = 0;
  private upload: Promise<void> | undefined;
  private failure: unknown;
  private readonly chunks: ManifestChunk[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly folder: string,
    private readonly compression: Compression,
    private readonly limits: ChunkLimits,
  ) {
    super();
  }

  private estimate(columns: RecordColumns, index: number): number {
    return columns.dimension * 4 + columns.ids[index]!.length + (columns.documents[index]?.length ?? 0) + (columns.uris[index]?.length ?? 0) + 64;
  }

  async add(page: RecordColumns): Promise<void> {
    this.notePage(page);
    let start = 0;
    for (let i = 0; i < page.ids.length; i++) {
      this.pendingRecords++;
      this.pendingBytes += this.estimate(page, i);
      if (this.pendingRecords >= this.limits.records || this.pendingBytes >= this.limits.bytes) {
        this.pending.push(sliceColumns(page, start, i + 1));
        start = i + 1;
        await this.flush();
      }
    }
    if (start < page.ids.length) this.pending.push(sliceColumns(page, start, page.ids.length));
  }

  private async flush(): Promise<void> {
    const columns = concatColumns(this.pending, this.dimension);
    this.pending = [];
    this.pendingRecords = 0;
    this.pendingBytes = 0;
    await this.settle();
    const index = this.chunks.length;
    this.chunks.push({ key: chunkName(index, this.compression), records: 0, bytes: 0, sha256: "" });
    // Kept as a settled promise, so a failure surfaces at the next await instead of as an unhandled rejection.
    this.upload = this.write(index, columns).catch((error: unknown) => {
      this.failure = error;
    });
  }

  private async write(index: number, columns: RecordColumns): Promise<void> {
    const body = await compressors[this.compression](encodeChunk(columns));
    const entry: ManifestChunk = {
      key: chunkName(index, this.compression),
      records: columns.ids.length,
      bytes: body.length,
      sha256: createHash("sha256").update(body).digest("hex"),
    };
    await this.store.put(this.folder + entry.key, body);
    this.chunks[index] = entry;
    this.records += entry.records;
    this.bytes += entry.bytes;
    this.uploadedBytes += storedBytes(this.store, entry.bytes);
  }

  private async settle(): Promise<void> {
    await this.upload;
    if (this.failure) throw this.failure;
  }

  /**
   * Uploads what is left, confirms every chunk is in the store at its size, then writes the manifest, last. Returns
   * the chunk list the manifest holds. A chunk that went missing meanwhile (a prune that could not see this backup, a
   * store that lost a write) fails the backup instead of listing one that cannot be restored. `manifest` runs after
   * the last upload, just before the manifest is written: the place for a last lease check.
   */
  async finish(manifest: (chunks: ManifestChunk[]) => UnsignedManifest | Promise<UnsignedManifest>): Promise<UnsignedManifest> {
    if (this.pendingRecords > 0) await this.flush();
    await this.settle();
    await this.confirmChunks();
    const unsigned = await manifest(this.chunks);
    const body = serializeManifest(unsigned);
    await this.store.put(this.folder + MANIFEST, body);
    this.bytes += body.length;
    this.uploadedBytes += storedBytes(this.store, body.length);
    return unsigned;
  }

  private async confirmChunks(): Promise<void> {
    const stored = new Map<string, number>();
    for await (const object of this.store.list(this.folder)) stored.set(object.key, object.size);
    for (const chunk of this.chunks) {
      const size = stored.get(this.folder + chunk.key);
      if (size !== chunk.bytes) {
        throw new Error(
          `chunk ${chunk.key} of ${this.folder} ${size === undefined ? "is missing" : `holds ${size} bytes, not ${chunk.bytes},`} in ${this.store.description} ` +
            "after its upload (deleted by a prune that could not see this backup, or lost by the store); no manifest written",
        );
      }
    }
  }

  /** Waits for an upload still running, ignoring its outcome (used when a backup is abandoned). */
  async abandon(): Promise<void> {
    await this.upload;
  }
}
