import { randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { ConfigError } from "../../config/config-error.js";
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from "./object-store.js";

/** The suffix of the temp file a write goes through; a crash mid-write leaves one behind. */
const PARTIAL = ".partial";

/** Files stat'ed at once by a listing. */
const STAT_BATCH = 64;

/** The longest file or directory name Linux, macOS and Windows file systems accept, in bytes. */
const MAX_NAME_BYTES = 255;
/** link() errors of file systems without hard links: `create` falls back to a plain write. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "ENOSYS"]);

/** A directory as an object store: keys are relative paths, writes go through a temp file and a rename. */
export class FsStore implements ObjectStore {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `file://${root}`;
  }

  /**
   * Keys come from names users type (collections, backup ids): a key is refused if it could leave the root (`..`,
   * `.`, absolute, backslashes) or name a file no file system can hold, before any file system call.
   */
  private path(key: string): string {
    const segments = key.split("/");
    for (const [index, segment] of segments.entries()) {
      // "a/" (a folder to list) ends in an empty segment; nowhere else may one be.
      if (segment === "" && index === segments.length - 1 && index > 0) continue;
      if (segment === "" || segment === "." || segment === ".." || segment.includes("\\") || segment.includes("\0")) {
        throw new ConfigError(`"${key.slice(0, 80)}" is not a valid name in ${this.description}: no empty, "." or ".." parts, no "\\"`);
      }
      if (Buffer.byteLength(segment) > MAX_NAME_BYTES) {
        throw new ConfigError(
          `"${segment.slice(0, 40)}…" is ${Buffer.byteLength(segment)} bytes, longer than a file name may be (${MAX_NAME_BYTES}) ` +
            `in ${this.description}; use an s3:// BACKUP_URL for names this long`,
        );
      }
    }
    return join(this.root, ...segments);
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const target = this.path(key);
    const temp = `${target}.${randomBytes(6).toString("hex")}${PARTIAL}`;
    try {
      await this.writeInFolder(temp, body);
      await rename(temp, target);
    } catch (error) {
      // A full disk fails the write part way: take the part back now rather than leave it for prune.
      await rm(temp, { force: true }).catch(() => undefined);
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`could not write ${key} to ${this.description}: ${reason}`, { cause: error });
    }
  }

  async create(key: string, body: Uint8Array): Promise<boolean> {
    const target = this.path(key);
    const temp = `${target}.${randomBytes(6).toString("hex")}${PARTIAL}`;
    try {
      await this.writeInFolder(temp, body);
      try {
        // link, unlike rename, fails when the target exists: atomic create-if-absent, and readers never see half a file.
        await link(temp, target);
      } catch (error) {
        if (!NO_HARD_LINKS.has((error as NodeJS.ErrnoException).code ?? "")) throw error;
        // SMB/CIFS, some FUSE and NAS mounts, exFAT: a plain write, which cannot refuse; callers read back what stands.
        await rename(temp, target);
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`could not write ${key} to ${this.description}: ${reason}`, { cause: error });
    } finally {
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }

  /**
   * Folders this store made or found, so a put skips the mkdir call: a deduplicated backup writes thousands of small
   * chunks into one folder, and each file system call is a trip through libuv's small thread pool. A folder removed
   * since (prune drops empty ones) fails the write with ENOENT: made again, and the write retried.
   */
  private readonly folders = new Set<string>();

  private async writeInFolder(file: string, body: Uint8Array): Promise<void> {
    const folder = dirname(file);
    if (this.folders.has(folder)) {
      try {
        return await writeFile(file, body);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    await mkdir(folder, { recursive: true });
    this.folders.add(folder);
    await writeFile(file, body);
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new ObjectNotFoundError(key, this.description);
      throw error;
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    let file;
    try {
      file = await open(this.path(key), "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new ObjectNotFoundError(key, this.description);
      throw error;
    }
    try {
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await file.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return buffer.subarray(0, filled);
    } finally {
      await file.close();
    }
  }

  list(prefix: string): AsyncIterable<StoredObject> {
    return this.walk(prefix, false);
  }

  /** Files under `prefix`: whole objects, or the temp files of writes never finished (`partial`). */
  private async *walk(prefix: string, partial: boolean): AsyncIterable<StoredObject> {
    // Walk from the deepest directory the prefix names, then filter by the full prefix.
    const base = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
    const start = base ? this.path(base) : this.root;
    if (prefix) this.path(prefix);
    const entries = await readdir(start, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [];
      throw error;
    });
    const files = entries.flatMap((entry) => {
      if (!entry.isFile() || entry.name.endsWith(PARTIAL) !== partial) return [];
      const full = join(entry.parentPath, entry.name);
      const key = relative(this.root, full).split(sep).join("/");
      return key.startsWith(prefix) ? [{ full, key }] : [];
    });
    // A folder of shared chunks holds thousands of files: their stats run a batch at a time, not one after another.
    for (let i = 0; i < files.length; i += STAT_BATCH) {
      const batch = files.slice(i, i + STAT_BATCH);
      const infos = await Promise.all(batch.map((file) => stat(file.full).catch(() => undefined)));
      for (const [j, info] of infos.entries()) if (info) yield { key: batch[j]!.key, size: info.size, lastModified: info.mtime };
    }
  }

  async collectUnfinished(prefix: string, before: Date, dryRun = false): Promise<string[]> {
    const keys: string[] = [];
    for await (const file of this.walk(prefix, true)) if (file.lastModified < before) keys.push(file.key);
    if (!dryRun) await this.delete(keys);
    return keys;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) await rm(this.path(key), { force: true });
    // Leave no empty backup folders behind (rmdir refuses folders that still hold something).
    const folders = new Set(keys.map((key) => dirname(this.path(key))));
    for (const folder of folders) {
      if (folder.startsWith(this.root) && folder !== this.root) {
        await rmdir(folder).catch(() => undefined);
      }
    }
  }
}
