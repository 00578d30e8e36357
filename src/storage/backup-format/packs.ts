import { ObjectNotFoundError, type ObjectStore } from "../objects/object-store.js";
import { chunksFolder, packsFolder } from "./layout.js";
import type { PackedChunk, PackEntry } from "./manifest.js";

/**
 * What an encrypted store authenticates with a chunk sealed inside a pack: its collection and name, so a chunk copied
 * into another collection's pack, or under another name, fails like an altered one.
 */
export const chunkContext = (collection: string, key: string) => chunksFolder(collection) + key;

/** The objects of a folder named by a hash (shared chunks, packs): name → size and time, from one listing. */
export async function hashNamedObjects(store: ObjectStore, folder: string): Promise<Map<string, { size: number; lastModified: Date }>> {
  const objects = new Map<string, { size: number; lastModified: Date }>();
  for await (const object of store.list(folder)) {
    const name = object.key.slice(folder.length);
    if (/^[0-9a-f]{64}$/.test(name)) objects.set(name, { size: object.size, lastModified: object.lastModified });
  }
  return objects;
}

/** The collection's stored packs (format 4). */
export const storedPacks = (store: ObjectStore, collection: string) => hashNamedObjects(store, packsFolder(collection));

/** How format 4 chunks are read out of their packs. */
export interface RunRules {
  /** Bytes read in one request at most (a run of chunks longer than this is cut). */
  maxBytes: number;
  /** Bytes between two chunks of a pack read through rather than asked for in a second request. */
  maxGap: number;
}

/**
 * Cuts a list of chunks (in the order they are wanted) into runs, each read with one range request: consecutive
 * chunks of one pack, each starting at or after the end of the one before and at most `maxGap` bytes later. A first
 * backup's chunks lie end to end in their packs; a later backup's mostly too, between the chunks that changed.
 */
export function packRuns<T extends PackedChunk>(chunks: readonly T[], rules: RunRules): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let start = 0;
  let end = 0;
  for (const chunk of chunks) {
    const previous = run.at(-1);
    const joins =
      previous !== undefined &&
      chunk.pack === previous.pack &&
      chunk.offset >= end &&
      chunk.offset - end <= rules.maxGap &&
      chunk.offset + chunk.bytes - start <= rules.maxBytes;
    if (!joins) {
      if (run.length > 0) runs.push(run);
      run = [];
      start = chunk.offset;
    }
    run.push(chunk);
    end = chunk.offset + chunk.bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** One chunk's stored bytes from a run's read, or why there are none. */
export type RunSlice<T> = { chunk: T; body: Buffer } | { chunk: T; missing: string };

/**
 * Reads a run of chunks of one pack with one range request and cuts it into the chunks' stored bytes. A pack that is
 * gone or ends early is reported per chunk (what a verify lists); other failures (an unreachable store) are thrown.
 */
export async function readRun<T extends PackedChunk>(store: ObjectStore, collection: string, pack: PackEntry, run: readonly T[]): Promise<RunSlice<T>[]> {
  const key = packsFolder(collection) + pack.name;
  const start = run[0]!.offset;
  const end = Math.max(...run.map((c) => c.offset + c.bytes));
  let body: Buffer;
  try {
    body = await store.getRange(key, start, end - start);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return run.map((chunk) => ({ chunk, missing: `is missing: pack ${key} is not in ${store.description}` }));
    throw error;
  }
  return run.map((chunk) => {
    const slice = body.subarray(chunk.offset - start, chunk.offset - start + chunk.bytes);
    if (slice.length !== chunk.bytes) return { chunk, missing: `is cut short: pack ${key} in ${store.description} ends before its ${chunk.bytes} bytes at ${chunk.offset}` };
    return { chunk, body: slice };
  });
}
