import { randomBytes } from "node:crypto";
import { setTimeout } from "node:timers/promises";
import type { Collection } from "chromadb";
import { PermanentError } from "../errors.js";
import type { Logger } from "../logging.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import { deleteTemporaries } from "../storage/chroma/temporaries.js";
import { failpoint } from "./failpoints.js";

/*
 * How a reindex swaps a collection in under a name, puts right what an interrupted swap left, and keeps the replaced
 * collections aside for --rollback: the names it uses and the renames between them.
 */

/** A rebuild's new collection until its swap. */
export const BUILD = "__vkreindex_new_";
/**
 * The live collection between the two renames of a swap: `<name>__vkreindex_swap_<id of the collection swapped in,
 * without dashes>`, so that recovery can tell the swap's own replacement under the name from one an application
 * created there meanwhile (getOrCreateCollection).
 */
const SWAP = "__vkreindex_swap_";
/** A replaced collection kept for --rollback: `<name>__vkreindex_old_<base36 ms set aside>_<hex>`. */
const OLD = "__vkreindex_old_";
/**
 * What the reconcile of a kept collection last carried over from it (see reindex-kept): `<name>__vkreindex_carried_<the
 * kept collection's suffix>`.
 */
const CARRIED = "__vkreindex_carried_";
/** Waits before each further attempt to put the collection back under its name when a swap's second rename fails. */
const PUT_BACK_BACKOFF_MS = [250, 1_000, 4_000];

const keptName = (name: string) => `${name}${OLD}${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
const swapName = (name: string, replacement: Collection) => `${name}${SWAP}${replacement.id.replaceAll("-", "")}`;

/** The name of the record of what the last reconcile carried over from the kept collection `kept`. */
export const carriedRecordName = (name: string, kept: string) => `${name}${CARRIED}${kept.slice(`${name}${OLD}`.length)}`;

/** Records of kept collections that are no longer kept aside (dropped, or rolled back to, by a run killed before it deleted the record). */
export async function orphanedRecords(chroma: ChromaStore, name: string): Promise<string[]> {
  const names = await chroma.listCollectionNames();
  const kept = new Set(names.filter((n) => n.startsWith(`${name}${OLD}`)).map((n) => carriedRecordName(name, n)));
  return names.filter((n) => n.startsWith(`${name}${CARRIED}`) && !kept.has(n));
}

/** Collections a reindex of `name` kept aside, newest first. */
export async function keptCollections(chroma: ChromaStore, name: string): Promise<{ name: string; keptAt: number }[]> {
  const prefix = `${name}${OLD}`;
  return (await chroma.listCollectionNames())
    .filter((n) => n.startsWith(prefix))
    .map((n) => ({ name: n, keptAt: parseInt(n.slice(prefix.length).split("_")[0] ?? "", 36) }))
    .map((k) => ({ ...k, keptAt: Number.isFinite(k.keptAt) ? k.keptAt : 0 }))
    .sort((a, b) => b.keptAt - a.keptAt);
}

async function rename(chroma: ChromaStore, from: string, to: string): Promise<void> {
  await (await chroma.openCollection(from)).modify({ name: to });
}

/**
 * Puts right what an interrupted reindex of `name` left: a collection moved aside mid-swap goes back under the name
 * when the name is free (the swap never completed); when the name holds the very collection that swap put in (its id
 * is in the swap name), the swap completed and the aside one is what it replaced, kept aside. Any other collection
 * under the name (an application created it in the instant between the renames) is refused, and nothing renamed: the
 * aside one holds the data. Unfinished builds are deleted. Only under the reindex lease of `name`.
 */
export async function recoverLeftovers(chroma: ChromaStore, name: string, logger: Logger): Promise<void> {
  const names = await chroma.listCollectionNames();
  let liveId = names.includes(name) ? (await chroma.openCollection(name)).id.replaceAll("-", "") : undefined;
  for (const aside of names.filter((n) => n.startsWith(`${name}${SWAP}`))) {
    if (liveId === undefined) {
      await rename(chroma, aside, name);
      liveId = (await chroma.openCollection(name)).id.replaceAll("-", "");
      logger.warn({ collection: name, from: aside }, "a reindex killed mid-swap had moved the collection aside: put back under its name");
    } else if (aside.slice(`${name}${SWAP}`.length) === liveId) {
      const kept = keptName(name);
      await rename(chroma, aside, kept);
      logger.warn({ collection: name, keptAs: kept }, "a reindex killed after its swap left the replaced collection; kept aside (writes made to it after the swap were not reconciled)");
    } else {
      throw new PermanentError(
        `reindex: ${name} is not the collection the interrupted swap put in (created between its renames?); the data is in ${aside}, nothing renamed: carry over what was written to ${name}, delete it, and run the reindex again to put the data back`,
      );
    }
  }
  await deleteTemporaries(chroma, `${name}${BUILD}`, logger, "the unfinished build of an interrupted reindex");
}

/**
 * Swaps `replacement` in under `name` by two renames: the live collection to `<name>__vkreindex_swap_…`, the
 * replacement to `name`; if the second fails, the live one goes back (a few tries, with backoff) before the error goes
 * on, and if it cannot, the error says where it is. A crash between the two leaves the live collection under the swap
 * name, which the next reindex (or the job's retry) puts back first. Returns the name the replaced collection is kept
 * under.
 */
export async function swapIn(live: Collection, replacement: Collection, name: string, logger: Logger): Promise<string> {
  const aside = swapName(name, replacement);
  await live.modify({ name: aside });
  await failpoint("reindex:between-renames");
  try {
    await replacement.modify({ name });
  } catch (error) {
    await putBack(live, name, aside, error, logger);
    throw error;
  }
  const kept = keptName(name);
  await live.modify({ name: kept }).catch((error: unknown) => {
    logger.warn({ collection: name, err: error }, "could not rename the replaced collection; the next reindex of it will");
  });
  return kept;
}

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0];

/** Renames the collection moved aside for a failed swap back to `name`; throws, naming where it is, if it cannot. */
async function putBack(live: Collection, name: string, aside: string, swapError: unknown, logger: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await live.modify({ name });
      return;
    } catch (error) {
      const wait = PUT_BACK_BACKOFF_MS[attempt];
      logger.error({ collection: name, aside, attempt: attempt + 1, err: error, swapError: firstLine(swapError) }, "could not put the collection back under its name after a failed swap");
      if (wait === undefined) {
        throw new Error(
          `reindex: the swap failed and ${name} could not be put back (${firstLine(error)}): its data is in ${aside}; once nothing else is under ${name}, \`vectorkeeper run reindex --collection ${name} --rebuild\` puts it back first`,
        );
      }
      await setTimeout(wait);
    }
  }
}
