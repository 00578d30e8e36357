import crypto, { createHash } from "node:crypto";
import { sliceColumns, type RecordColumns } from "../chroma/record-columns.js";

/** Where content-defined chunks end. */
export interface CutRules {
  /** A chunk ends after a record whose id hashes to 0 modulo this (the mean chunk, in records). */
  meanRecords: number;
  /** ... or once it holds this many records ... */
  maxRecords: number;
  /** ... or this many bytes (estimated as in the folder format's chunks). */
  maxBytes: number;
}

/**
 * Whether a chunk ends after this id. It depends on the id alone, so an update (same id) moves no boundary and an
 * insert or delete moves only the boundary it sits next to: the chunks elsewhere come out byte for byte as before.
 */
export function endsChunk(id: string, meanRecords: number): boolean {
  return sha256(id).readUInt32LE(0) % meanRecords === 0;
}

/** One-shot `crypto.hash` (Node 20.12+) where there is one: a hash per record, at less than half createHash's cost. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: "buffer") => Buffer }).hash;
const sha256 = oneShot ? (id: string) => oneShot("sha256", id, "buffer") : (id: string) => createHash("sha256").update(id).digest();

const estimate = (columns: RecordColumns, index: number) =>
  columns.dimension * 4 + columns.ids[index]!.length + (columns.documents[index]?.length ?? 0) + (columns.uris[index]?.length ?? 0) + 64;

/**
 * Cuts the record stream into chunks page by page: `push` returns the records a chunk ended with (as slices of the
 * pages, which the caller concatenates), keeping the open chunk's slices until its boundary comes.
 */
export class ChunkCutter {
  private open: RecordColumns[] = [];
  private records = 0;
  private bytes = 0;

  constructor(private readonly rules: CutRules) {}

  /** The chunks this page completes, each as its parts in order. */
  push(page: RecordColumns): RecordColumns[][] {
    const done: RecordColumns[][] = [];
    let start = 0;
    for (let i = 0; i < page.ids.length; i++) {
      this.records++;
      this.bytes += estimate(page, i);
      if (endsChunk(page.ids[i]!, this.rules.meanRecords) || this.records >= this.rules.maxRecords || this.bytes >= this.rules.maxBytes) {
        done.push([...this.open, sliceColumns(page, start, i + 1)]);
        this.open = [];
        this.records = 0;
        this.bytes = 0;
        start = i + 1;
      }
    }
    if (start < page.ids.length) this.open.push(sliceColumns(page, start, page.ids.length));
    return done;
  }

  /** The last, open chunk (empty when the stream ended on a boundary). */
  rest(): RecordColumns[] {
    const rest = this.open;
    this.open = [];
    this.records = 0;
    this.bytes = 0;
    return rest;
  }
}
