import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backup } from "../src/jobs/backup.js";
import type { JobContext } from "../src/jobs/job-context.js";
import { restore } from "../src/jobs/restore.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import type { ObjectStore } from "../src/storage/objects/object-store.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, jobContext, seedCollection, uniqueName, vectors } from "./helpers/services.js";

// Failure 5 of issue 10: one HTTP 500 on the final rename of `restore --replace` left nothing under the target's
// name, and the `__vkold_` collection was never cleaned up.
const chroma = chromaStore();
const source = uniqueName("swap_src");
let proxy: HttpFaultProxy;
let backupId: string;
let store: ObjectStore;

/** A collection of `count` records whose ids say which generation of data it holds. */
async function collectionOf(name: string, count: number, label: string): Promise<void> {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
  await collection.add({ ids: Array.from({ length: count }, (_, i) => `${label}-${i}`), embeddings: vectors(count, 8, 3) });
}

const idsOf = async (name: string) => (await (await chroma.openCollection(name)).get({ include: [] })).ids.sort();
const leftoversOf = async (name: string) => (await chroma.listCollectionNames()).filter((n) => n.startsWith(`${name}__vk`));

beforeAll(async () => {
  await seedCollection(chroma, source, 50, 8);
  const ctx = jobContext({ chroma });
  store = ctx.backupStore;
  ({ backupId } = await backup.process(backup.payload.parse({ collection: source }), ctx));
  proxy = await startHttpFaultProxy(chromaUrl());
});
afterAll(() => proxy.close());

const restoreInto = (target: string, overrides: Partial<JobContext> = {}) =>
  restore.process(restore.payload.parse({ collection: target, backupId, replace: true }), jobContext({ chroma, backupStore: store, ...overrides }));

describe("restore --replace", () => {
  it("puts the old collection back under its name when the final rename fails", async () => {
    const target = uniqueName("swap_fail");
    await collectionOf(target, 30, "old");
    const before = await idsOf(target);
    // Renames are PUTs of a collection: the first moves the old one aside, the second (failed here) names the new one.
    const remove = proxy.inject({ method: "PUT", path: /\/collections\/[0-9a-f-]+$/, skip: 1, times: 1, fault: { kind: "status", status: 500 } });
    try {
      const behindProxy = new ChromaStore({ url: proxy.url, tenant: "default_tenant", database: "default_database" });
      await expect(restoreInto(target, { chroma: behindProxy })).rejects.toThrow();
      expect(proxy.requests.filter((r) => r.fault === "status")).toHaveLength(1);
    } finally {
      remove();
    }
    expect(await idsOf(target)).toEqual(before);
    expect(await leftoversOf(target)).toEqual([]);

    // And the next run, with nothing failing, replaces it.
    const result = await restoreInto(target);
    expect(result).toMatchObject({ records: 50, replaced: true });
    expect(await idsOf(target)).toEqual(await idsOf(source));
    expect(await leftoversOf(target)).toEqual([]);
  });

  it("after a crash that left the target moved aside, the next run puts it back before anything else", async () => {
    const target = uniqueName("swap_crash");
    // What a kill between the two renames leaves: no target, the old data aside, a finished staging collection.
    await collectionOf(`${target}__vkold_0badf00d`, 30, "old");
    await collectionOf(`${target}__vkrestore_0badf00d`, 50, "staged");
    const plain = restore.process(
      restore.payload.parse({ collection: target, backupId }),
      jobContext({ chroma, backupStore: store }),
    );
    // Without --replace, the old data now back under the name is refused: it was never lost.
    await expect(plain).rejects.toThrow(new RegExp(`collection ${target} already holds 30 records`));
    expect((await idsOf(target)).every((id) => id.startsWith("old-"))).toBe(true);
    expect(await leftoversOf(target)).toEqual([]);
  });

  it("collects an old collection a completed swap could not delete", async () => {
    const target = uniqueName("swap_done");
    await collectionOf(target, 50, "new");
    await collectionOf(`${target}__vkold_feedf00d`, 30, "old");
    const result = await restoreInto(target);
    expect(result).toMatchObject({ records: 50, replaced: true });
    expect(await leftoversOf(target)).toEqual([]);
  });
});
