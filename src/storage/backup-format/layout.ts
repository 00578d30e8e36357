import { randomBytes } from "node:crypto";
import { extensionOf, type Compression } from "./compression.js";

/**
 * `<collection>/<backupId>/chunk-000000.vkc.gz …` and `manifest.json`, written last: a backup without a manifest does
 * not exist for list, restore or prune.
 */
export const MANIFEST = "manifest.json";

/** Sortable by time, unique without coordination: `20261123T154700123Z-3f9a1c`. */
export function newBackupId(at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(".", "");
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}

export const BACKUP_ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;

/** When a backup started, from its id. */
export function backupIdTime(backupId: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(backupId);
  if (!m) return new Date(0);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!));
}

export const backupFolder = (collection: string, backupId: string) => `${collection}/${backupId}/`;

export const chunkName = (index: number, compression: Compression) =>
  `chunk-${String(index).padStart(6, "0")}.vkc${extensionOf[compression]}`;

/** Format 3: a collection's chunks, each stored once under its content's name and shared by its backups. */
export const chunksFolder = (collection: string) => `${collection}/chunks/`;

/** Format 4: a collection's packs, each holding many chunks and named by the SHA-256 of its stored bytes. */
export const packsFolder = (collection: string) => `${collection}/packs/`;

const PACK_KEY = /^[^/]+\/packs\/[0-9a-f]{64}$/;
/** Whether a key names a pack (stored as written, also in an encrypted store: its chunks are sealed one by one). */
export const isPackKey = (key: string) => PACK_KEY.test(key);

/** Where a manifest's chunk is stored: in the collection's shared chunks (format 3) or in the backup's folder. */
export const chunkObjectKey = (manifest: { formatVersion: number; backupId: string; collection: { name: string } }, chunkKey: string) =>
  manifest.formatVersion >= 3 ? chunksFolder(manifest.collection.name) + chunkKey : backupFolder(manifest.collection.name, manifest.backupId) + chunkKey;
