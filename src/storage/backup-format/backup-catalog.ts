import { ConfigError } from "../../config/config-error.js";
import type { ObjectStore } from "../objects/object-store.js";
import { KeyError } from "./encryption.js";
import { BACKUP_ID, backupFolder, MANIFEST } from "./layout.js";
import { parseManifest, type Manifest } from "./manifest.js";

/** What a backup folder holds, whether or not it is complete. */
export interface BackupFolder {
  collection: string;
  backupId: string;
  keys: string[];
  bytes: number;
  /** The newest object's time: how long ago the folder was last written to. */
  lastModified: Date;
  hasManifest: boolean;
  /** Size of the stored manifest (0 without one). */
  manifestBytes: number;
}

export interface CatalogEntry {
  collection: string;
  backupId: string;
  manifest: Manifest;
  keys: string[];
  /** What the backup takes on the store: its chunks and its manifest (a backup's result reports the same figure). */
  bytes: number;
}

export interface DamagedBackup {
  collection: string;
  backupId: string;
  problem: string;
}

/** Every backup folder of a collection, complete or not, oldest first. */
export async function backupFolders(store: ObjectStore, collection: string): Promise<BackupFolder[]> {
  const folders = new Map<string, BackupFolder>();
  for await (const object of store.list(`${collection}/`)) {
    const [, backupId, name] = object.key.split("/");
    if (!backupId || !name || !BACKUP_ID.test(backupId)) continue;
    let folder = folders.get(backupId);
    if (!folder) {
      folder = { collection, backupId, keys: [], bytes: 0, lastModified: object.lastModified, hasManifest: false, manifestBytes: 0 };
      folders.set(backupId, folder);
    }
    folder.keys.push(object.key);
    folder.bytes += object.size;
    if (object.lastModified > folder.lastModified) folder.lastModified = object.lastModified;
    if (name === MANIFEST) {
      folder.hasManifest = true;
      folder.manifestBytes = object.size;
    }
  }
  return [...folders.values()].sort((a, b) => a.backupId.localeCompare(b.backupId));
}

/**
 * The collections that have anything stored. Derived from a plain listing rather than delimiter queries, which some
 * S3-compatible servers answer incompletely for nested keys; one list request covers a thousand objects.
 */
export async function collectionsWithBackups(store: ObjectStore): Promise<string[]> {
  const names = new Set<string>();
  for await (const object of store.list("")) {
    const slash = object.key.indexOf("/");
    if (slash > 0) names.add(object.key.slice(0, slash));
  }
  return [...names].sort();
}

export async function readManifest(store: ObjectStore, collection: string, backupId: string): Promise<Manifest> {
  const body = await store.get(backupFolder(collection, backupId) + MANIFEST);
  const manifest = parseManifest(body, backupId);
  if (manifest.backupId !== backupId || manifest.collection.name !== collection) {
    throw new ConfigError(`manifest of backup ${backupId} belongs to ${manifest.collection.name}/${manifest.backupId}: it was moved or copied`);
  }
  return manifest;
}

/**
 * Complete backups (those with a valid manifest), newest first, and those whose manifest is damaged (never listed,
 * restored or pruned as if complete; reported so an operator can look).
 */
export async function completeBackups(
  store: ObjectStore,
  collection?: string,
): Promise<{ backups: CatalogEntry[]; damaged: DamagedBackup[] }> {
  const collections = collection ? [collection] : await collectionsWithBackups(store);
  const backups: CatalogEntry[] = [];
  const damaged: DamagedBackup[] = [];
  for (const name of collections) {
    for (const folder of await backupFolders(store, name)) {
      if (!folder.hasManifest) continue;
      try {
        const manifest = await readManifest(store, name, folder.backupId);
        const bytes = manifest.chunks.reduce((n, c) => n + c.bytes, folder.manifestBytes);
        backups.push({ collection: name, backupId: folder.backupId, manifest, keys: folder.keys, bytes });
      } catch (error) {
        if (error instanceof KeyError) throw error;
        damaged.push({ collection: name, backupId: folder.backupId, problem: error instanceof Error ? error.message : String(error) });
      }
    }
  }
  backups.sort((a, b) => b.manifest.startedAt.localeCompare(a.manifest.startedAt) || b.backupId.localeCompare(a.backupId));
  return { backups, damaged };
}

/**
 * The newest complete backup of a collection (of one purpose, if given), reading manifests newest first and
 * stopping at the first valid one: one manifest read where listing all of them would read every one.
 */
export async function newestBackup(store: ObjectStore, collection: string, purpose?: Manifest["purpose"]): Promise<Manifest | undefined> {
  const folders = (await backupFolders(store, collection)).filter((f) => f.hasManifest).reverse();
  for (const folder of folders) {
    try {
      const manifest = await readManifest(store, collection, folder.backupId);
      if (!purpose || manifest.purpose === purpose) return manifest;
    } catch (error) {
      // A damaged manifest is not a backup; `backups list` reports it. A missing key is no damage: it stops the run.
      if (error instanceof KeyError) throw error;
    }
  }
  return undefined;
}

/** Finds a backup by id across collections; an unknown id is a one-line error naming it and the store. */
export async function findBackup(store: ObjectStore, backupId: string): Promise<Manifest> {
  if (!BACKUP_ID.test(backupId)) {
    throw new ConfigError(`"${backupId}" is not a backup id (they look like 20261123T030000123Z-3f9a1c); see \`vectorkeeper backups list\``);
  }
  const suffix = `/${backupId}/${MANIFEST}`;
  for await (const object of store.list("")) {
    if (object.key.endsWith(suffix)) return readManifest(store, object.key.slice(0, -suffix.length), backupId);
  }
  throw new ConfigError(`backup ${backupId} not found in ${store.description}; see \`vectorkeeper backups list\``);
}

