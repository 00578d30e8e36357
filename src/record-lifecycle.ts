import { createHash } from "node:crypto";
import { DEFAULTS } from "./config/defaults.js";

const DAY_MS = 86_400_000;

export interface LifecycleOptions {
  /** Days until the record expires; `vectorkeeper`'s expire job deletes it after that. */
  retentionDays: number;
  /** The creation time; now by default. */
  now?: Date | number;
}

/**
 * Stamps `_created_at` and `_expires_at` on a record's metadata as numbers (epoch milliseconds): Chroma's `$lt`/`$gt`
 * compare numbers only, so the ISO strings of the classic recipe can never be matched by an expiry filter.
 */
export function withLifecycle<M extends Record<string, unknown>>(
  metadata: M,
  options: LifecycleOptions,
): M & { _created_at: number; _expires_at: number } {
  if (!Number.isFinite(options.retentionDays) || options.retentionDays <= 0) {
    throw new RangeError(`retentionDays must be a positive number of days, got ${options.retentionDays}`);
  }
  const created = options.now === undefined ? Date.now() : Number(options.now);
  return {
    ...metadata,
    [DEFAULTS.lifecycle.createdField]: created,
    [DEFAULTS.lifecycle.expiresField]: created + Math.round(options.retentionDays * DAY_MS),
  } as M & { _created_at: number; _expires_at: number };
}

/**
 * A deterministic record id, `{version}_{source}_{chunkIndex}_{hash8}`, as the best-practice recipe recommends: the
 * same chunk of the same source always gets the same id (so re-ingesting upserts instead of duplicating), ids sort
 * by version and source, and the hash keeps ids of different sources distinct even when their names collide after
 * cleaning. The chunk index is zero-padded to 5 digits so chunks sort in order.
 */
export function documentId(source: string, chunkIndex: number, version: string): string {
  if (!Number.isInteger(chunkIndex) || chunkIndex < 0) throw new RangeError(`chunkIndex must be a whole number ≥ 0, got ${chunkIndex}`);
  const hash8 = createHash("sha256").update(`${version}\u0000${source}\u0000${chunkIndex}`).digest("hex").slice(0, 8);
  const cleanSource = source.replace(/[^A-Za-z0-9._-]+/g, "-");
  return `${version}_${cleanSource}_${String(chunkIndex).padStart(5, "0")}_${hash8}`;
}
