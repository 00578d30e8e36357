import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { FsStore } from "./fs-store.js";
import type { ObjectStore } from "./object-store.js";
import { S3Store, type S3Settings } from "./s3-store.js";

export interface BackupStoreSettings {
  /** `s3://bucket/prefix` or `file:///abs/dir` (`file://./dir` is relative to the working directory). */
  url: string;
  s3: Omit<S3Settings, "bucket" | "prefix">;
}

/** The object store a BACKUP_URL names (already validated by config). */
export function openObjectStore(settings: BackupStoreSettings): ObjectStore {
  const { url } = settings;
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const prefix = slash === -1 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    return new S3Store({ ...settings.s3, bucket, prefix });
  }
  const path = url.startsWith("file://./") || url.startsWith("file://../") ? url.slice("file://".length) : fileURLToPath(url);
  return new FsStore(isAbsolute(path) ? path : resolve(path));
}
