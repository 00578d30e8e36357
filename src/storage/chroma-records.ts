import type { Collection, Metadata } from "chromadb";
import type { RecordColumns } from "./record-columns.js";
import { embeddingAt, sliceColumns } from "./record-columns.js";

/** A Chroma `get` answer, from the client or from the bulk reader. */
export interface GetColumnsInput {
  ids: string[];
  embeddings?: readonly unknown[] | null | undefined;
  documents?: (string | null)[] | null | undefined;
  metadatas?: (Metadata | null)[] | null | undefined;
}

/** A Chroma `get` answer as columns, embeddings packed as float32; refuses rows of the wrong length. */
export function columnsFromGet(result: GetColumnsInput): RecordColumns {
  const count = result.ids.length;
  const rows = result.embeddings ?? [];
  const first = rows.find((row) => row !== null);
  const dimension = Array.isArray(first) ? first.length : 0;
  const embeddings = new Float32Array(count * dimension);
  if (rows.length > 0 && rows.length !== count) throw new Error(`Chroma returned ${rows.length} embeddings for ${count} ids`);
  rows.forEach((row, index) => {
    if (row === null) return;
    if (!Array.isArray(row) || row.length !== dimension) {
      throw new Error(`Chroma returned an embedding that is not ${dimension} numbers (record ${result.ids[index]})`);
    }
    embeddings.set(row as number[], index * dimension);
  });
  return {
    ids: result.ids,
    dimension,
    embeddings,
    documents: result.documents ?? new Array<null>(count).fill(null),
    metadatas: result.metadatas ?? new Array<null>(count).fill(null),
  };
}

/**
 * Splits records into runs that share a shape (with or without document, with or without metadata), keeping their
 * order: the chromadb client refuses a batch in which only some records have a document (or metadata).
 */
export function* uniformRuns(columns: RecordColumns): Generator<RecordColumns> {
  const shape = (i: number) => `${columns.documents[i] === null ? 0 : 1}${columns.metadatas[i] === null ? 0 : 1}`;
  let start = 0;
  for (let i = 1; i <= columns.ids.length; i++) {
    if (i === columns.ids.length || shape(i) !== shape(start)) {
      yield sliceColumns(columns, start, i);
      start = i;
    }
  }
}

/** How records are written: batches within the server's limit; `upsert` makes a re-run idempotent. */
export interface RecordWriting {
  maxBatch: number;
  mode: "add" | "upsert";
}

/**
 * Writes `columns` in batches of at most `maxBatch`, each of one shape. Each batch's embeddings become plain numbers
 * only as it is sent: as number[][] they take five times the memory of the packed floats.
 */
async function send(collection: Collection, columns: RecordColumns, writing: RecordWriting, sent: (records: number) => void) {
  for (let start = 0; start < columns.ids.length; start += writing.maxBatch) {
    const batch = sliceColumns(columns, start, Math.min(start + writing.maxBatch, columns.ids.length));
    for (const run of uniformRuns(batch)) {
      const records = {
        ids: run.ids,
        embeddings: run.ids.map((_, i) => embeddingAt(run, i)),
        ...(run.documents[0] !== null ? { documents: run.documents as string[] } : {}),
        ...(run.metadatas[0] !== null ? { metadatas: run.metadatas as Metadata[] } : {}),
      };
      await (writing.mode === "add" ? collection.add(records) : collection.upsert(records));
      sent(run.ids.length);
    }
  }
}

/** Writes records in batches within the server's limit, each of one shape, and returns once they are written. */
export async function writeRecords(collection: Collection, columns: RecordColumns, writing: RecordWriting): Promise<void> {
  await send(collection, columns, writing, () => undefined);
}

/**
 * Writes record batches in the order given, one at a time, while the caller reads the next: `write` returns once the
 * previous batch is written and this one is on its way. Chroma indexes a write on about one core, so downloading and
 * decoding the next chunks runs on the other. `finish` waits for the last write and reports any failure.
 */
export class PipelinedWriter {
  /** Records whose writes have completed. */
  written = 0;
  private previous: Promise<void> = Promise.resolve();

  constructor(
    private readonly collection: Collection,
    private readonly writing: RecordWriting,
  ) {}

  async write(columns: RecordColumns): Promise<void> {
    await this.previous;
    this.previous = send(this.collection, columns, this.writing, (records) => (this.written += records));
    // A failed write surfaces at the next write or at finish, not as an unhandled rejection meanwhile.
    this.previous.catch(() => undefined);
  }

  async finish(): Promise<void> {
    await this.previous;
  }
}

/**
 * Float32 values this many units in the last place apart count as equal. In a cosine collection Chroma normalizes
 * every vector it stores, so writing back a vector it returned re-normalizes it and may move the last bit.
 */
export const EMBEDDING_ULPS = 4;

const bits = new Int32Array(2);
const floats = new Float32Array(bits.buffer);
function ulpsApart(x: number, y: number): number {
  floats[0] = x;
  floats[1] = y;
  const [a, b] = [bits[0]!, bits[1]!];
  if (a === b) return 0;
  if (a < 0 !== b < 0) return Math.abs(x) < 1e-30 && Math.abs(y) < 1e-30 ? 0 : Number.POSITIVE_INFINITY;
  return Math.abs(a - b);
}

/** Whether two stored records are the same: document and metadata alike, embeddings equal as float32 within a few ULPs. */
export function sameRecord(a: RecordColumns, i: number, b: RecordColumns, j: number): boolean {
  if (a.ids[i] !== b.ids[j] || a.documents[i] !== b.documents[j] || a.dimension !== b.dimension) return false;
  if (canonical(a.metadatas[i] ?? null) !== canonical(b.metadatas[j] ?? null)) return false;
  const x = a.embeddings.subarray(i * a.dimension, (i + 1) * a.dimension);
  const y = b.embeddings.subarray(j * b.dimension, (j + 1) * b.dimension);
  return x.every((value, k) => ulpsApart(value, y[k]!) <= EMBEDDING_ULPS);
}

const canonical = (metadata: Metadata | null) =>
  metadata === null ? "null" : JSON.stringify(Object.keys(metadata).sort().map((key) => [key, metadata[key]]));
