import { createHash } from "node:crypto";
import type { Collection, Metadata } from "chromadb";
import { DEFAULTS } from "../../config/defaults.js";
import type { ChromaStore } from "./client.js";
import { columnsFromGet } from "./records.js";
import { BatchedWriter, type WriteLimits } from "./writer.js";
import { listIds, RECORD_FIELDS, type IdListing } from "./linear-read.js";
import { CarriedHashes, type IdHash } from "./carried-hashes.js";
import type { Pacer } from "./pacing.js";
import { concatColumns, sliceColumns, type RecordColumns } from "./record-columns.js";

/** Metadata as one string whatever the key order; Chroma 1.0.x answers `{}` for none (see chroma-writer). */
const canonicalMetadata = (metadata: Metadata | null | undefined) =>
  metadata && Object.keys(metadata).length > 0 ? Object.keys(metadata).sort().map((key) => [key, metadata[key]]) : null;

/**
 * A record's content as a 48-bit number (of its SHA-1): embedding bytes, document, metadata and URI. Two versions of a
 * record collide with odds of 2⁻⁴⁸; a number fits the compact table of CarriedHashes.
 */
export function contentHash(columns: RecordColumns, i: number): number {
  const embedding = columns.embeddings.subarray(i * columns.dimension, (i + 1) * columns.dimension);
  return createHash("sha1")
    .update(new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength))
    .update(JSON.stringify([columns.ids[i], columns.documents[i] ?? null, canonicalMetadata(columns.metadatas[i]), columns.uris[i] ?? null]))
    .digest()
    .readUIntBE(0, 6);
}

/** How one pass reads and writes. */
export interface SyncPassOptions {
  /** `add` for the first copy into an empty collection (what a plain copy does), `upsert` for every pass after. */
  mode: "add" | "upsert";
  pageSize: number;
  readAhead: number;
  signal: AbortSignal;
  /** Sees each page read from the source (the copy feeds exact search with it). */
  onPage?: ((page: RecordColumns) => void) | undefined;
  /** Records read so far in this pass. */
  onRecords?: ((records: number) => Promise<void>) | undefined;
  /** Holds each page read to the job's pace (rate limit, adaptive). */
  pacer?: Pacer | undefined;
}

/** How a sync looks for records gone from the source; the defaults suit every run, tests narrow them. */
export interface SyncTuning extends Pick<IdListing, "idWindow" | "idOverlap"> {
  /** @defaultValue DEFAULTS.reindex.unseenBatch */
  unseenBatch?: number | undefined;
  /** Replaces the keyed id hash of the table (tests force collisions with it, see CarriedHashes). */
  idHash?: IdHash | undefined;
}

/** What one pass found and carried over. */
export interface SyncPassOutcome {
  read: number;
  /** Records new or changed in the source since the last pass, written to the target. */
  written: number;
  /** Records gone from the source since the last pass, deleted from the target. */
  deleted: number;
}

/**
 * Keeps a target collection equal to a source that is being written, without a change feed: it remembers a content
 * hash per id of what it last carried over, and each pass reads the source linearly and carries over what is new,
 * changed or gone since. A pass that finds nothing means the target held what the source held while it was read.
 * Memory: about 26–52 bytes per record (see CarriedHashes), whatever the length of the ids, plus the ids of up to
 * `unseenBatch` records gone from the source while a pass deletes them. A sync whose pass failed is not used again.
 */
export class CollectionSync {
  /** What the target holds of the source, by id, as of the last pass. */
  private readonly hashes: CarriedHashes;

  constructor(
    private readonly chroma: ChromaStore,
    readonly source: Collection,
    readonly target: Collection,
    private readonly limits: WriteLimits,
    private readonly tuning: SyncTuning = {},
    carried?: CarriedHashes,
  ) {
    this.hashes = carried ?? new CarriedHashes({ idHash: tuning.idHash });
  }

  /**
   * A sync that goes on from where one left off, by its `snapshot`: its next pass carries over what was written to
   * the source since that one's last pass (a reindex carries the writes made to the collection it set aside this way).
   */
  static resume(chroma: ChromaStore, source: Collection, target: Collection, limits: WriteLimits, snapshot: Buffer): CollectionSync {
    return new CollectionSync(chroma, source, target, limits, {}, CarriedHashes.deserialize(snapshot));
  }

  /** What the target holds of the source as of the last pass, as bytes for `resume` (about 14 a record). */
  snapshot(): Buffer {
    return this.hashes.serialize();
  }

  /**
   * Records of the source new, changed or gone since the last pass, counted without writing anything (one read of the
   * source); the sync is not used after it.
   */
  async changesInSource(options: Pick<SyncPassOptions, "pageSize" | "readAhead" | "signal" | "pacer">): Promise<number> {
    this.hashes.beginPass();
    let changed = 0;
    for await (const page of this.chroma.readPages(this.source, { ...options, include: RECORD_FIELDS })) {
      await options.pacer?.take(page.ids.length, options.signal);
      for (let i = 0; i < page.ids.length; i++) if (this.hashes.update(page.ids[i]!, contentHash(page, i))) changed++;
    }
    return changed + this.hashes.unseen;
  }

  /** Records the target holds of the source, as of the last pass. */
  get size(): number {
    return this.hashes.size;
  }

  /**
   * Takes what the target already holds as carried over (its content hashes, from one linear read), so the first pass
   * writes only what differs: a rollback syncs the collection kept aside this way.
   */
  async adoptTarget(options: Pick<SyncPassOptions, "pageSize" | "readAhead" | "signal" | "pacer">): Promise<void> {
    for await (const page of this.chroma.readPages(this.target, options)) {
      await options.pacer?.take(page.ids.length, options.signal);
      for (let i = 0; i < page.ids.length; i++) this.hashes.update(page.ids[i]!, contentHash(page, i));
    }
  }

  async pass(options: SyncPassOptions): Promise<SyncPassOutcome> {
    this.hashes.beginPass();
    const outcome: SyncPassOutcome = { read: 0, written: 0, deleted: 0 };
    let writer: BatchedWriter | undefined;
    const carry = async (page: RecordColumns) => {
      const changed: number[] = [];
      for (let i = 0; i < page.ids.length; i++) if (this.hashes.update(page.ids[i]!, contentHash(page, i))) changed.push(i);
      if (changed.length === 0) return;
      writer ??= new BatchedWriter(this.target, { limits: this.limits, mode: options.mode }, page.dimension);
      await writer.add(changed.length === page.ids.length ? page : rowsOf(page, changed));
      outcome.written += changed.length;
    };
    try {
      for await (const page of this.chroma.readPages(this.source, { ...options, include: RECORD_FIELDS })) {
        await options.pacer?.take(page.ids.length, options.signal);
        options.onPage?.(page);
        outcome.read += page.ids.length;
        await carry(page);
        await options.onRecords?.(outcome.read);
      }
      // Carried over before but not read now: deleted from the source, or passed over by the id listing (when more
      // records than its overlap were deleted in front of a window). Their ids are not kept: the target's id listing
      // names them (ids only; only when there are any). Asked for by id, those still in the source are carried.
      // Nothing is deleted from the target while it is being listed: a delete in front of the listing's window would
      // shift ids past it unread, and an unseen id never named is forgotten below with its record left in the target.
      const unseenBatch = this.tuning.unseenBatch ?? DEFAULTS.reindex.unseenBatch;
      for (let more = true; more && this.hashes.unseen > 0; ) {
        const found = new Set<string>();
        more = false;
        for await (const ids of listIds(this.target, { signal: options.signal, idWindow: this.tuning.idWindow, idOverlap: this.tuning.idOverlap })) {
          for (const id of ids) if (this.hashes.isUnseen(id)) found.add(id);
          if (found.size === this.hashes.unseen) break;
          // As many as memory allows: settled, then the listing starts again for the rest.
          if (found.size >= unseenBatch) {
            more = true;
            break;
          }
        }
        const ids = [...found];
        for (let start = 0; start < ids.length; start += this.limits.records) {
          const batch = ids.slice(start, start + this.limits.records);
          const still = columnsFromGet(await this.source.get({ ids: batch, include: [...RECORD_FIELDS] }));
          if (still.ids.length > 0) await carry(still);
          const gone = batch.filter((id) => this.hashes.isUnseen(id));
          if (gone.length === 0) continue;
          await this.target.delete({ ids: gone });
          for (const id of gone) this.hashes.delete(id);
          outcome.deleted += gone.length;
        }
      }
      // Not in the target either (deleted from it directly, e.g. through the name after a swap): nothing to carry.
      this.hashes.dropUnseen();
      await writer?.finish();
      this.hashes.endPass();
    } finally {
      await writer?.abandon();
    }
    return outcome;
  }
}

/** The given rows of a page, in order, as columns of their own. */
function rowsOf(page: RecordColumns, rows: readonly number[]): RecordColumns {
  const runs: RecordColumns[] = [];
  for (let k = 0; k < rows.length; ) {
    let end = k + 1;
    while (end < rows.length && rows[end] === rows[end - 1]! + 1) end++;
    runs.push(sliceColumns(page, rows[k]!, rows[end - 1]! + 1));
    k = end;
  }
  return concatColumns(runs, page.dimension);
}
