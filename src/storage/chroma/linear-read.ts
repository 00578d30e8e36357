import type { Collection, Where } from "chromadb";
import { DEFAULTS } from "../../config/defaults.js";
import { columnsFromGet, type GetColumnsInput } from "./records.js";
import { readAhead } from "./read-ahead.js";
import type { RecordColumns } from "./record-columns.js";

/** The record fields a whole-collection read can ask for. */
export type RecordField = "embeddings" | "documents" | "metadatas" | "uris";

/** Everything a record holds: what backup, archive and lint read. */
export const RECORD_FIELDS: readonly RecordField[] = ["embeddings", "documents", "metadatas", "uris"];

/** One Chroma `get` as the linear reader makes it: a window of ids (`limit`/`offset`, no fields) or records by id. */
export interface GetRequest {
  ids?: string[] | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
  where?: Where | undefined;
  include: RecordField[];
}

/** How a `get` is sent: the chromadb client's unless given (ChromaStore passes its bulk reader over node:http). */
export type ChromaGet = (collection: Collection, request: GetRequest) => Promise<GetColumnsInput>;

export const clientGet: ChromaGet = (collection, request) => collection.get(request);

/** What a read met on its way; filled in as it goes. */
export interface ReadTally {
  /** Ids listed (each once). */
  listed: number;
  /** Listed, then gone by the time their page was fetched: deleted meanwhile (or, with `where`, no longer matching). */
  gone: number;
}

/** How ids are listed: windows of `idWindow` ids, each starting `idOverlap` ids before the previous one ended. */
export interface IdListing {
  /** Only records matching this metadata filter are listed (and read). @defaultValue every record */
  where?: Where | undefined;
  /** Aborts the listing between requests (a job's cancel or shutdown). */
  signal?: AbortSignal | undefined;
  /** How a page is fetched: the bulk reader with its retries, or the client's own get. @defaultValue the client's get */
  get?: ChromaGet | undefined;
  /** @defaultValue DEFAULTS.reads.idWindow */
  idWindow?: number | undefined;
  /** @defaultValue DEFAULTS.reads.idOverlap */
  idOverlap?: number | undefined;
}

/** How `readRecords` reads. */
export interface LinearReading extends IdListing {
  /** Records fetched by id per request. */
  pageSize: number;
  /** Pages requested beyond the one the caller holds. */
  readAhead: number;
  /** @defaultValue RECORD_FIELDS */
  include?: readonly RecordField[] | undefined;
  /** Embedding values per page at most: `pageSize` shrinks for wide embeddings. @defaultValue DEFAULTS.reads.pageValues */
  pageValues?: number | undefined;
  tally?: ReadTally | undefined;
}

/**
 * Every id of a collection (or of the records matching `where`), window after window, in Chroma's order (insertion
 * order), each id once. Ids only: `get` with an offset makes local Chroma sort and skip every earlier row, which for
 * pages of whole records grows quadratic with the collection, but for windows of 50,000 bare ids stays a small share.
 * Each window starts `idOverlap` ids before the previous one ended and drops the ids that one already gave, so records
 * deleted meanwhile in front of the window shift nothing out of it (up to `idOverlap` of them per window). The next
 * window is listed while the caller works on the current one.
 */
export async function* listIds(collection: Collection, listing: IdListing): AsyncGenerator<string[]> {
  const { where, signal, get = clientGet, idWindow = DEFAULTS.reads.idWindow, idOverlap = DEFAULTS.reads.idOverlap } = listing;
  if (!(idOverlap >= 0 && idOverlap < idWindow)) throw new RangeError(`idOverlap (${idOverlap}) must be at least 0 and below idWindow (${idWindow})`);
  const stride = idWindow - idOverlap;
  const windows = readAhead(
    (index) => get(collection, { limit: idWindow, offset: index * stride, ...(where ? { where } : {}), include: [] }).then((answer) => answer.ids),
    { ahead: 1, isLast: (ids) => ids.length < idWindow, signal },
  );
  let previous = new Set<string>();
  for await (const ids of windows) {
    const fresh = previous.size === 0 ? ids : ids.filter((id) => !previous.has(id));
    previous = new Set(ids);
    if (fresh.length > 0) yield fresh;
  }
}

/** How many records a collection holds (or how many match `where`), by listing their ids. */
export async function countIds(collection: Collection, listing: IdListing): Promise<number> {
  let count = 0;
  for await (const ids of listIds(collection, listing)) count += ids.length;
  return count;
}

/** The ids at the given positions of the id listing (positions past the end are left out), in the order asked. */
export async function idsAt(collection: Collection, positions: readonly number[], listing: IdListing): Promise<string[]> {
  const wanted = [...new Set(positions)].sort((a, b) => a - b);
  const found = new Map<number, string>();
  let start = 0;
  let next = 0;
  for await (const ids of listIds(collection, listing)) {
    while (next < wanted.length && wanted[next]! < start + ids.length) {
      found.set(wanted[next]!, ids[wanted[next]! - start]!);
      next++;
    }
    start += ids.length;
    if (next === wanted.length) break;
  }
  return positions.flatMap((p) => (found.has(p) ? [found.get(p)!] : []));
}

/**
 * A `get` answer put in the order of the ids asked for, without ids that were not asked for: Chroma answers a
 * request by ids in its own order, and the read promises the listing's.
 */
export function inRequestedOrder(requested: readonly string[], answer: GetColumnsInput): GetColumnsInput {
  const { ids } = answer;
  let k = 0;
  for (const id of requested) if (k < ids.length && ids[k] === id) k++;
  if (k === ids.length) return answer;
  const at = new Map(ids.map((id, i) => [id, i]));
  const order = requested.flatMap((id) => (at.has(id) ? [at.get(id)!] : []));
  const pick = <T>(column: readonly T[] | null | undefined) => (column ? order.map((i) => column[i]!) : column);
  const fields = answer as unknown as Record<string, unknown>;
  const reordered: Record<string, unknown> = { ...fields, ids: order.map((i) => ids[i]!) };
  // Every per-record column, including any the server adds that this reader passes through untouched.
  for (const key of ["embeddings", "documents", "metadatas", "uris"]) {
    const column = fields[key];
    if (Array.isArray(column) && column.length === ids.length) reordered[key] = pick(column);
  }
  return reordered as unknown as GetColumnsInput;
}

/**
 * Reads a whole collection (or the records matching `where`) in time and memory linear in its size: ids listed in
 * windows (see `listIds`), records fetched by id `pageSize` at a time (fewer for wide embeddings, see `pageValues`) with `readAhead` more pages requested while the
 * caller works on the current one (Chroma serves a request on about one core, so it reads on while the caller
 * encodes). Records come in the listing's order, each once. A record deleted between its listing and its fetch is
 * counted in `tally.gone`, not an error.
 */
export async function* readRecords(collection: Collection, reading: LinearReading): AsyncGenerator<RecordColumns> {
  const { get = clientGet, where, tally = { listed: 0, gone: 0 }, pageValues = DEFAULTS.reads.pageValues } = reading;
  const include = [...(reading.include ?? RECORD_FIELDS)];
  let pageSize = reading.pageSize;
  if (include.includes("embeddings")) {
    // One record tells the width; offset 0 costs nothing to skip.
    const first = await get(collection, { limit: 1, offset: 0, include: ["embeddings"] });
    const width = Array.isArray(first.embeddings?.[0]) ? (first.embeddings[0] as unknown[]).length : 0;
    if (width > 0) pageSize = Math.max(1, Math.min(pageSize, Math.floor(pageValues / width)));
  }
  const idPages = pagesOf(listIds(collection, reading), pageSize, tally);
  // readAhead calls read(0), read(1), … in order, so each read takes the next page of ids off the listing.
  const fetchNext = async (): Promise<RecordColumns | null> => {
    const next = await idPages.next();
    if (next.done) return null;
    const requested = next.value;
    const answer = inRequestedOrder(requested, await get(collection, { ids: requested, ...(where ? { where } : {}), include }));
    tally.gone += requested.length - answer.ids.length;
    return columnsFromGet(answer);
  };
  const pages = readAhead(fetchNext, { ahead: reading.readAhead, isLast: (page) => page === null, signal: reading.signal });
  try {
    for await (const page of pages) if (page !== null && page.ids.length > 0) yield page;
  } finally {
    await idPages.return(undefined);
  }
}

/** Windows of ids cut into pages of `size`, counted into the tally as they are listed. */
async function* pagesOf(windows: AsyncGenerator<string[]>, size: number, tally: ReadTally): AsyncGenerator<string[]> {
  try {
    for await (const ids of windows) {
      tally.listed += ids.length;
      for (let start = 0; start < ids.length; start += size) yield ids.slice(start, start + size);
    }
  } finally {
    await windows.return(undefined);
  }
}
