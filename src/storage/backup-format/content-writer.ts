import { createHash } from "node:crypto";
import { ObjectNotFoundError, storedBytes, type ObjectStore } from "../objects/object-store.js";
import { concatColumns, type RecordColumns } from "../chroma/record-columns.js";
import { backupFolders, readManifest } from "./backup-catalog.js";
import { ChunkCutter, type CutRules } from "./chunk-cutter.js";
import { encodeChunk } from "./chunk-codec.js";
import { compressors, gzipSmallChunk, type Compression } from "./compression.js";
import { chunkName } from "./content-store.js";
import { ConfigError } from "../../config/config-error.js";
import { IntegrityError } from "../../errors.js";
import { KeyError } from "./encryption.js";
import { backupFolder, MANIFEST, packsFolder } from "./layout.js";
import { DEDUPED_FORMAT_VERSION, serializeManifest, type ManifestChunk, type PackEntry, type UnsignedManifest } from "./manifest.js";
import { chunkContext, storedPacks } from "./packs.js";
import { WriteTally } from "./write-tally.js";

/** How a format 4 writer packs and uploads. */
export interface PackRules {
  /** A pack is uploaded once it holds this many bytes (the last one of a backup holds what is left). */
  packBytes: number;
  /** Chunks being encoded and compressed at once. */
  encoders: number;
  /**
   * Packs uploading at once. Memory holds these packs and the one being filled: a chunk that fills the open pack waits
   * for an upload slot before the pack is closed, so the open pack can exceed `packBytes` by at most `encoders` chunks.
   */
  packUploads: number;
}

/** A pack of this run or of the manifest reused from: its name is set once it is closed. */
interface PackRef {
  name: string;
  bytes: number;
}

/** Where a chunk is stored: `bytes` bytes of `pack` from `offset`. */
interface Location {
  pack: PackRef;
  offset: number;
  bytes: number;
}

/** The pack being filled. */
interface OpenPack {
  ref: PackRef;
  parts: Buffer[];
  bytes: number;
}

const newPack = (): OpenPack => ({ ref: { name: "", bytes: 0 }, parts: [], bytes: 0 });

/**
 * Writes a format 4 backup: cuts the records at content-defined boundaries, names each encoded and compressed chunk
 * by its content (SHA-256, keyed when encrypted) and appends chunks the collection's newest backup does not hold
 * (nor this run already) to a pack, uploaded once it reaches `packBytes`. Reuse comes from the newest backup's
 * manifest (and archives newer than it): chunk name → pack, offset and length, so memory holds one manifest's chunks,
 * never an index of the whole store. The manifest, written last into the backup's folder after every pack it names is
 * confirmed in the store, lists the chunks in order and the packs they are in.
 */
export class ContentWriter extends WriteTally {
  private readonly cutter: ChunkCutter;
  private known: Promise<Map<string, Location>> | undefined;
  /** Why reuse passed over a manifest or a pack (one line each), for the job to log and report. */
  readonly warnings: string[] = [];
  /** Chunks this run stored, so a repeated chunk is stored once. */
  private readonly written = new Map<string, Location>();
  private readonly encoding = new Set<Promise<void>>();
  private readonly uploading = new Set<Promise<void>>();
  private failure: unknown;
  private readonly chunks: { key: string; records: number; at: Location | undefined }[] = [];
  private open = newPack();

  constructor(
    private readonly store: ObjectStore,
    private readonly collection: string,
    private readonly backupId: string,
    private readonly compression: Compression,
    rules: CutRules,
    private readonly packing: PackRules,
  ) {
    super();
    this.cutter = new ChunkCutter(rules);
  }

  async add(page: RecordColumns): Promise<void> {
    this.notePage(page);
    for (const parts of this.cutter.push(page)) await this.emit(parts);
  }

  private async emit(parts: RecordColumns[]): Promise<void> {
    this.known ??= knownChunks(this.store, this.collection, this.warnings);
    await this.known;
    while (this.encoding.size >= this.packing.encoders) await Promise.race(this.encoding);
    this.check();
    const index = this.chunks.length;
    this.chunks.push({ key: "", records: 0, at: undefined });
    const task: Promise<void> = this.put(index, concatColumns(parts, this.dimension))
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.encoding.delete(task));
    this.encoding.add(task);
  }

  private async put(index: number, columns: RecordColumns): Promise<void> {
    const parts = encodeChunk(withSortedMetadata(columns));
    const body = this.compression === "gzip" ? gzipSmallChunk(parts) : await compressors[this.compression](parts);
    const key = await chunkName(this.store, body);
    let at = (await this.known)!.get(key) ?? this.written.get(key);
    let stored = false;
    if (!at) {
      const blob = this.store.sealBlob ? await this.store.sealBlob(chunkContext(this.collection, key), body) : body;
      // Looked up again after sealing: another chunk of this run with the same content may have been stored meanwhile.
      at = this.written.get(key);
      stored = at === undefined;
      at ??= this.append(key, blob);
    }
    if (!stored) this.reusedChunks++;
    this.chunks[index] = { key, records: columns.ids.length, at };
    this.records += columns.ids.length;
    this.bytes += at.bytes;
    if (stored && this.open.bytes >= this.packing.packBytes) await this.closePack(false);
  }

  /** Appends a chunk to the open pack (synchronously: chunks encoded at once never interleave their bytes). */
  private append(key: string, blob: Buffer): Location {
    const at: Location = { pack: this.open.ref, offset: this.open.bytes, bytes: blob.length };
    this.open.parts.push(blob);
    this.open.bytes += blob.length;
    this.written.set(key, at);
    return at;
  }

  /**
   * Once fewer than `packUploads` are running, names the open pack by its SHA-256 and starts its upload. The slot comes
   * first: an encoder waiting for one holds no closed pack, so memory stays at `packUploads` packs and the open one.
   */
  private async closePack(last: boolean): Promise<void> {
    while (this.uploading.size >= this.packing.packUploads) await Promise.race(this.uploading);
    // Another encoder may have closed the pack while this one waited.
    if (this.open.bytes === 0 || (!last && this.open.bytes < this.packing.packBytes)) return;
    const pack = this.open;
    this.open = newPack();
    const body = Buffer.concat(pack.parts);
    pack.parts = [];
    pack.ref.name = createHash("sha256").update(body).digest("hex");
    pack.ref.bytes = body.length;
    const upload: Promise<void> = this.store
      .put(packsFolder(this.collection) + pack.ref.name, body)
      .then(() => {
        this.uploadedBytes += body.length;
      })
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.uploading.delete(upload));
    this.uploading.add(upload);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Stores what is left, confirms every pack the manifest will name is in the store at its size (one listing of the
   * packs folder), then writes the manifest, last. A pack that went missing meanwhile fails the backup instead of
   * listing chunks that cannot be restored.
   */
  async finish(manifest: (chunks: ManifestChunk[]) => UnsignedManifest | Promise<UnsignedManifest>): Promise<UnsignedManifest> {
    const rest = this.cutter.rest();
    if (rest.length > 0) await this.emit(rest);
    await Promise.allSettled([...this.encoding]);
    this.check();
    await this.closePack(true);
    await Promise.allSettled([...this.uploading]);
    this.check();
    const packs: PackEntry[] = [];
    // By name: each pack is listed once, whichever manifest (or this run) the chunk was found in.
    const indexOf = new Map<string, number>();
    const chunks: ManifestChunk[] = this.chunks.map(({ key, records, at }) => {
      let pack = indexOf.get(at!.pack.name);
      if (pack === undefined) {
        pack = packs.push({ name: at!.pack.name, bytes: at!.pack.bytes }) - 1;
        indexOf.set(at!.pack.name, pack);
      }
      return { key, records, bytes: at!.bytes, pack, offset: at!.offset };
    });
    const stored = await storedPacks(this.store, this.collection);
    for (const pack of packs) {
      const size = stored.get(pack.name)?.size;
      if (size !== pack.bytes) {
        throw new Error(
          `pack ${packsFolder(this.collection)}${pack.name} ${size === undefined ? "is missing" : `holds ${size} bytes, not ${pack.bytes},`} in ${this.store.description} ` +
            "after this backup wrote or found it (deleted by a prune that could not see this backup's lease, or lost by the store); no manifest written",
        );
      }
    }
    const unsigned: UnsignedManifest = { ...(await manifest(chunks)), packs };
    if (unsigned.formatVersion !== DEDUPED_FORMAT_VERSION) throw new Error(`a pack writer writes format ${DEDUPED_FORMAT_VERSION}, not ${unsigned.formatVersion}`);
    const body = serializeManifest(unsigned);
    await this.store.put(backupFolder(this.collection, this.backupId) + MANIFEST, body);
    this.bytes += body.length;
    this.uploadedBytes += storedBytes(this.store, body.length);
    return unsigned;
  }

  /** Waits for the encodings and uploads still running, ignoring their outcome. */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.encoding]);
    await Promise.allSettled([...this.uploading]);
  }
}

/**
 * The chunks a new backup can reuse: those of the collection's newest complete format 4 backup, and of format 4
 * archives newer than it (archives hold other records). Reuse from any manifest is safe because a sweep runs only
 * while it holds the collection's backup and archive leases, one of which every pack writer holds from here until its
 * manifest is written (docs/format.md §7). Chunks in a pack that is not in the store at its listed size (lost, deleted
 * by hand) are left out, so they are stored again, and a manifest gone or damaged since the listing is passed over:
 * each with a line in `warnings`. A missing key, an unreachable store or any other error fails the run.
 */
async function knownChunks(store: ObjectStore, collection: string, warnings: string[]): Promise<Map<string, Location>> {
  const known = new Map<string, Location>();
  const folders = (await backupFolders(store, collection)).filter((f) => f.hasManifest).reverse();
  // Listed once the first format 4 manifest is found: a collection's first backup lists nothing more.
  let stored: Map<string, { size: number }> | undefined;
  const refs = new Map<string, PackRef>();
  for (const folder of folders) {
    let manifest;
    try {
      manifest = await readManifest(store, collection, folder.backupId);
    } catch (error) {
      const passOver = error instanceof ObjectNotFoundError || error instanceof IntegrityError || error instanceof ConfigError;
      if (!passOver || error instanceof KeyError) throw error;
      warnings.push(`backup ${folder.backupId} of ${collection} not reused (${error.message}): its chunks are stored again`);
      continue;
    }
    // Backups of other formats (a full copy now and then) hold no packs: the search goes on past them.
    if (manifest.formatVersion !== DEDUPED_FORMAT_VERSION || !manifest.packs) continue;
    const packs = (stored ??= await storedPacks(store, collection));
    const usable = manifest.packs.map((p) => {
      const size = packs.get(p.name)?.size;
      if (size === p.bytes) return true;
      const state = size === undefined ? "is missing" : `holds ${size} bytes, not ${p.bytes}`;
      warnings.push(`pack ${packsFolder(collection)}${p.name} of backup ${manifest.backupId} ${state} in ${store.description}: its chunks are stored again (that backup fails verify)`);
      return false;
    });
    for (const chunk of manifest.chunks) {
      if (!("pack" in chunk) || !usable[chunk.pack]) continue;
      const { name, bytes } = manifest.packs[chunk.pack]!;
      let ref = refs.get(name);
      if (!ref) refs.set(name, (ref = { name, bytes }));
      known.set(chunk.key, { pack: ref, offset: chunk.offset, bytes: chunk.bytes });
    }
    if (manifest.purpose === "backup") break;
  }
  return known;
}

/**
 * Chroma answers metadata keys in no fixed order (a hash map on the server), which would give the same records a new
 * chunk name on every backup: keys are written sorted. Key order carries no meaning, so a restore is unchanged.
 */
function withSortedMetadata(columns: RecordColumns): RecordColumns {
  const metadatas = columns.metadatas.map((m) => (m === null ? null : Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))));
  return { ...columns, metadatas };
}
