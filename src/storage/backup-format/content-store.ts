import { createHash } from "node:crypto";
import type { ObjectStore } from "../objects/object-store.js";
import { chunksFolder, packsFolder } from "./layout.js";
import type { ManifestChunk, PackEntry } from "./manifest.js";
import { hashNamedObjects, storedPacks } from "./packs.js";

/** A shared chunk's name: the SHA-256 of its bytes, or the store's keyed name when it encrypts. */
export async function chunkName(store: ObjectStore, body: Uint8Array): Promise<string> {
  return store.contentName ? store.contentName(body) : createHash("sha256").update(body).digest("hex");
}

/** The collection's stored format 3 chunks. */
export const storedChunks = (store: ObjectStore, collection: string) => hashNamedObjects(store, chunksFolder(collection));

/** Shared objects no kept manifest needs, old enough to go: the sweep of a mark-and-sweep prune. */
export interface ChunkSweep {
  /** Format 3 chunks and format 4 packs. */
  keys: string[];
  bytes: number;
  /** Unreferenced chunks and packs left for now: younger than the grace period (maybe a running backup's). */
  young: number;
  /**
   * Format 4: bytes of chunks no kept manifest lists, inside packs kept for their other chunks. A pack is kept whole
   * while any of its chunks is listed (no repacking); these bytes are freed once the rest of the pack goes too.
   */
  unusedInKeptPacks: number;
}

/** A manifest as the sweep reads it. */
interface ChunkLists {
  formatVersion: number;
  chunks: readonly ManifestChunk[];
  packs?: readonly PackEntry[] | undefined;
}

/**
 * Marks every chunk (format 3) and pack (format 4) the kept manifests (of any purpose) list and sweeps the rest of the
 * collection's chunks and packs last written before `before`. Chunks and packs are per collection, so a sweep never
 * touches another collection's backups.
 */
export async function planSweep(store: ObjectStore, collection: string, kept: readonly ChunkLists[], before: Date): Promise<ChunkSweep> {
  const marked = new Set<string>();
  const markedPacks = new Set<string>();
  const usedInPack = new Map<string, Map<string, number>>();
  for (const manifest of kept) {
    if (manifest.formatVersion === 3) for (const chunk of manifest.chunks) marked.add(chunk.key);
    if (manifest.formatVersion < 4 || !manifest.packs) continue;
    for (const pack of manifest.packs) markedPacks.add(pack.name);
    for (const chunk of manifest.chunks) {
      if (!("pack" in chunk)) continue;
      const name = manifest.packs[chunk.pack]!.name;
      const used = usedInPack.get(name) ?? new Map<string, number>();
      used.set(`${chunk.offset}`, chunk.bytes);
      usedInPack.set(name, used);
    }
  }
  const sweep: ChunkSweep = { keys: [], bytes: 0, young: 0, unusedInKeptPacks: 0 };
  const consider = (key: string, object: { size: number; lastModified: Date }) => {
    if (object.lastModified >= before) {
      sweep.young++;
      return;
    }
    sweep.keys.push(key);
    sweep.bytes += object.size;
  };
  for (const [name, object] of await storedChunks(store, collection)) if (!marked.has(name)) consider(chunksFolder(collection) + name, object);
  for (const [name, object] of await storedPacks(store, collection)) {
    if (!markedPacks.has(name)) consider(packsFolder(collection) + name, object);
    else sweep.unusedInKeptPacks += object.size - [...(usedInPack.get(name)?.values() ?? [])].reduce((n, b) => n + b, 0);
  }
  return sweep;
}

/**
 * What each backup alone holds: its manifest and the chunks (format 3) or packs (format 4) no other listed backup of
 * its collection needs (what pruning it alone would free). Folder-format backups share nothing.
 */
export function soleBytes(
  entries: readonly { collection: string; backupId: string; bytes: number; manifest: ChunkLists }[],
): Map<string, number> {
  /** Each shared object (a chunk or a pack, by collection) and its size, per backup. */
  const objectsOf = (entry: (typeof entries)[number]): Map<string, number> => {
    const objects = new Map<string, number>();
    if (entry.manifest.formatVersion === 3) for (const chunk of entry.manifest.chunks) objects.set(`${entry.collection}/${chunk.key}`, chunk.bytes);
    if (entry.manifest.formatVersion >= 4) for (const pack of entry.manifest.packs ?? []) objects.set(`${entry.collection}/${pack.name}`, pack.bytes);
    return objects;
  };
  const users = new Map<string, number>();
  const objects = entries.map(objectsOf);
  for (const own of objects) for (const key of own.keys()) users.set(key, (users.get(key) ?? 0) + 1);
  const sole = new Map<string, number>();
  for (const [i, entry] of entries.entries()) {
    if (entry.manifest.formatVersion < 3) {
      sole.set(entry.backupId, entry.bytes);
      continue;
    }
    const manifestBytes = entry.bytes - entry.manifest.chunks.reduce((n, c) => n + c.bytes, 0);
    const own = [...objects[i]!].filter(([key]) => users.get(key) === 1).reduce((n, [, bytes]) => n + bytes, 0);
    sole.set(entry.backupId, manifestBytes + own);
  }
  return sole;
}
