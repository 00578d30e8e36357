import type { Logger } from "../../logging.js";
import type { ChromaStore } from "./client.js";

/**
 * Deletes every collection whose name starts with `prefix` (the `<name>__vk…_` temporaries of an interrupted restore,
 * drill or tune), each logged as `what`. Only call it under the lease that owns those names, so none is in use.
 */
export async function deleteTemporaries(chroma: ChromaStore, prefix: string, logger: Logger, what: string): Promise<string[]> {
  const deleted: string[] = [];
  for (const name of (await chroma.listCollectionNames()).filter((n) => n.startsWith(prefix))) {
    await chroma.deleteCollection(name);
    deleted.push(name);
    logger.info({ leftover: name }, `deleted ${what}`);
  }
  return deleted;
}
