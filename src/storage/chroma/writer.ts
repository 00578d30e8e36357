import type { Collection, Metadata } from "chromadb";
import { ConfigError } from "../../config/config-error.js";
import { concatColumns, embeddingAt, sliceColumns, type RecordColumns } from "./record-columns.js";

/** The most one write request may carry: the server's limits, or less when asked. */
export interface WriteLimits {
  /** Records per request: at most the server's `max_batch_size`. */
  records: number;
  /** Request-body bytes per request: Chroma refuses bodies over 40 MiB with 413. */
  bytes: number;
  /**
   * Whether the chromadb client sends embeddings as base64 float32 (it does when the server's pre-flight answer says
   * it may): then an embedding takes 5⅓ bytes a dimension in the body, else up to 25 as decimal text.
   */
  base64Embeddings: boolean;
}

/** How records are written: within the limits; `upsert` makes a re-run idempotent. */
export interface RecordWriting {
  limits: WriteLimits;
  mode: "add" | "upsert";
}

/** The field names, brackets and separators of a request body, beside its records: the rest of the limit is theirs. */
export const BODY_OVERHEAD = 256;
/** The longest a float32 prints as JSON (`-1.1754943508222875e-38`) plus its comma. */
const DECIMAL_FLOAT_BYTES = 25;

const jsonBytes = (value: unknown) => (value === null ? 0 : Buffer.byteLength(JSON.stringify(value), "utf8") + 1);

/** Body bytes one record adds to a write request, as the chromadb client serializes it (never less). */
export function recordBytes(columns: RecordColumns, index: number, base64Embeddings: boolean): number {
  const floats = columns.dimension;
  const embedding = base64Embeddings ? 4 * Math.ceil((floats * 4) / 3) + 3 : floats * DECIMAL_FLOAT_BYTES + 3;
  return (
    embedding +
    jsonBytes(columns.ids[index]) +
    jsonBytes(columns.documents[index] ?? null) +
    jsonBytes(columns.metadatas[index] ?? null) +
    jsonBytes(columns.uris[index] ?? null)
  );
}

/**
 * Whether a record has metadata to send. Chroma 1.0.x answers `{}` for a record that has a URI and no metadata (it
 * keeps the URI among the metadata), and the chromadb client refuses an empty object: both mean none.
 */
const hasMetadata = (metadata: Metadata | null | undefined) => metadata != null && Object.keys(metadata).length > 0;

/** Which optional fields a record carries; the chromadb client refuses a batch in which only some records have one. */
const shapeOf = (columns: RecordColumns, i: number) =>
  (columns.documents[i] === null ? 0 : 1) | (hasMetadata(columns.metadatas[i]) ? 2 : 0) | (columns.uris[i] === null ? 0 : 4);

/**
 * Cuts records, in order, into write batches: each of one shape, at most `limits.records` records and `limits.bytes`
 * body bytes. A record that alone exceeds the byte limit is refused by id: no batch could carry it.
 */
export function* writeBatches(columns: RecordColumns, limits: WriteLimits): Generator<RecordColumns> {
  const sizes = sizesWithin(columns, limits);
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < columns.ids.length; i++) {
    if (i > start && cutsBefore(i - start, bytes, sizes[i]!, shapeOf(columns, i) !== shapeOf(columns, start), limits)) {
      yield sliceColumns(columns, start, i);
      start = i;
      bytes = 0;
    }
    bytes += sizes[i]!;
  }
  if (start < columns.ids.length) yield sliceColumns(columns, start, columns.ids.length);
}

/** Each record's body bytes; a record that alone exceeds the byte limit is refused by id: no batch could carry it. */
function sizesWithin(columns: RecordColumns, limits: WriteLimits): number[] {
  const budget = limits.bytes - BODY_OVERHEAD;
  return columns.ids.map((id, i) => {
    const size = recordBytes(columns, i, limits.base64Embeddings);
    if (size > budget) {
      throw new ConfigError(`record ${id} takes ${size} bytes in a write request, more than the ${limits.bytes} a request may carry (VK_CHROMA_MAX_REQUEST_BYTES)`);
    }
    return size;
  });
}

/** Whether a batch of `count` records and `bytes` body bytes is full before a record of `size` (of another shape or not). */
const cutsBefore = (count: number, bytes: number, size: number, otherShape: boolean, limits: WriteLimits) =>
  count >= limits.records || bytes + size > limits.bytes - BODY_OVERHEAD || otherShape;

/** One batch of one shape in one request. Embeddings become plain numbers only now: as number[][] they take 5× the memory. */
async function sendBatch(collection: Collection, batch: RecordColumns, mode: RecordWriting["mode"]): Promise<void> {
  const records = {
    ids: batch.ids,
    embeddings: batch.ids.map((_, i) => embeddingAt(batch, i)),
    ...(batch.documents[0] !== null ? { documents: batch.documents as string[] } : {}),
    ...(hasMetadata(batch.metadatas[0]) ? { metadatas: batch.metadatas as Metadata[] } : {}),
    ...(batch.uris[0] !== null ? { uris: batch.uris as string[] } : {}),
  };
  await (mode === "add" ? collection.add(records) : collection.upsert(records));
}

/** Writes records in batches within the limits and returns once all are written. */
export async function writeRecords(collection: Collection, columns: RecordColumns, writing: RecordWriting): Promise<void> {
  for (const batch of writeBatches(columns, writing.limits)) await sendBatch(collection, batch, writing.mode);
}

/**
 * Gathers records into full batches and writes them in order, one request at a time, while the caller prepares more:
 * `add` returns once the previous request has completed and the next is on its way. Chroma indexes a write on about
 * one core, so downloading and decoding further records runs on the other. `finish` writes the rest, waits for the
 * last request and reports any failure.
 */
export class BatchedWriter {
  /** Records whose writes have completed. */
  written = 0;
  /**
   * Records gathered for the next batch, kept as the pieces they came in: restoring a deduplicated backup adds
   * thousands of chunks of a few records each, and joining (and re-measuring) the whole gathered batch at every add
   * cost time quadratic in the batch (restore of 104,000 records took 1.6× as long as from large chunks).
   */
  private parts: RecordColumns[] = [];
  private count = 0;
  private bytes = 0;
  private shape = 0;
  private previous: Promise<void> = Promise.resolve();

  constructor(
    private readonly collection: Collection,
    private readonly writing: RecordWriting,
    private readonly dimension: number,
  ) {}

  async add(columns: RecordColumns): Promise<void> {
    const { limits } = this.writing;
    // Measured (and an oversized record refused) before any of these records is sent.
    const sizes = sizesWithin(columns, limits);
    let start = 0;
    for (let i = 0; i < columns.ids.length; i++) {
      const shape = shapeOf(columns, i);
      if (this.count > 0 && cutsBefore(this.count, this.bytes, sizes[i]!, shape !== this.shape, limits)) {
        if (i > start) this.parts.push(sliceColumns(columns, start, i));
        start = i;
        await this.send(this.take());
      }
      if (this.count === 0) this.shape = shape;
      this.count++;
      this.bytes += sizes[i]!;
    }
    if (start < columns.ids.length) this.parts.push(start === 0 ? columns : sliceColumns(columns, start, columns.ids.length));
  }

  /** The gathered records as one batch, the gathering started afresh. */
  private take(): RecordColumns {
    const batch = this.parts.length === 1 ? this.parts[0]! : concatColumns(this.parts, this.parts[0]?.dimension ?? this.dimension);
    this.parts = [];
    this.count = 0;
    this.bytes = 0;
    return batch;
  }

  private async send(batch: RecordColumns): Promise<void> {
    await this.previous;
    this.previous = sendBatch(this.collection, batch, this.writing.mode).then(() => void (this.written += batch.ids.length));
    // A failed write surfaces at the next write or at finish, not as an unhandled rejection meanwhile.
    this.previous.catch(() => undefined);
  }

  async finish(): Promise<void> {
    if (this.count > 0) await this.send(this.take());
    await this.previous;
  }

  /** Waits for a write still in flight, ignoring its outcome (before the target is deleted after a failure). */
  async abandon(): Promise<void> {
    await this.previous.catch(() => undefined);
  }
}
