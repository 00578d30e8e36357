import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EncryptedStore, readKeyFile } from "../backup-format/encrypted-store.js";
import { DeferredStore } from "./deferred-store.js";
import { FsStore } from "./fs-store.js";
import type { ObjectStore } from "./object-store.js";
import { s3Description, type S3Settings } from "./s3-settings.js";

export interface BackupStoreSettings {
  /** `s3://bucket/prefix` or `file:///abs/dir` (`file://./dir` is relative to the working directory). */
  url: string;
  s3: Omit<S3Settings, "bucket" | "prefix">;
  /** VK_BACKUP_KEY_FILE: when set, every object is encrypted (see EncryptedStore). */
  keyFile?: string | undefined;
}

/** The object store a BACKUP_URL names (already validated by config). */
export function openObjectStore(settings: BackupStoreSettings): ObjectStore {
  const store = openPlainStore(settings.url, settings.s3);
  return settings.keyFile ? new EncryptedStore(store, readKeyFile(settings.keyFile)) : store;
}

function openPlainStore(url: string, s3: BackupStoreSettings["s3"]): ObjectStore {
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const prefix = slash === -1 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    const settings: S3Settings = { ...s3, bucket, prefix };
    // The SDK is loaded at the store's first request, not with the store: see DeferredStore.
    return new DeferredStore(s3Description(settings), async () => new (await import("./s3-store.js")).S3Store(settings));
  }
  const path = url.startsWith("file://./") || url.startsWith("file://../") ? url.slice("file://".length) : fileURLToPath(url);
  return new FsStore(isAbsolute(path) ? path : resolve(path));
}
