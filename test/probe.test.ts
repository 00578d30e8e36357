import { beforeAll, describe, expect, it } from "vitest";
import type { JobContext } from "../src/jobs/job-context.js";
import { probe } from "../src/jobs/probe.js";
import { CollectionNotFoundError } from "../src/storage/chroma/client.js";
import { chromaStore, jobContext, seedCollection, uniqueName } from "./helpers/services.js";

const store = chromaStore();
const wide = uniqueName("probe_wide");
const narrow = uniqueName("probe_narrow");
const empty = uniqueName("probe_empty");

const ctx = (): JobContext => jobContext({ chroma: store });

beforeAll(async () => {
  await seedCollection(store, wide, 40, 1536);
  await seedCollection(store, narrow, 5, 3);
  await store.client.createCollection({ name: empty, embeddingFunction: null });
});

describe("probe job", () => {
  it("queries a 1536-dimension collection with an embedding of its own dimension", async () => {
    const result = await probe.process({ collection: wide }, ctx());
    expect(result).toMatchObject({ collection: wide, ok: true, count: 40, dimension: 1536 });
    expect(result.queryMs).toBeGreaterThan(0);
    expect(result.heartbeatMs).toBeGreaterThan(0);
    // /api/v2/version says "1.0.0" on every release: the probe reports no version it cannot vouch for.
    expect(result).not.toHaveProperty("serverVersion");
  });

  it("works on any dimension, not a hard-coded one", async () => {
    const result = await probe.process({ collection: narrow }, ctx());
    expect(result).toMatchObject({ count: 5, dimension: 3 });
    expect(result.queryMs).toBeGreaterThan(0);
  });

  it("reports an empty collection as healthy, without a query", async () => {
    const result = await probe.process({ collection: empty }, ctx());
    expect(result).toMatchObject({ ok: true, count: 0, dimension: null, queryMs: null });
  });

  it("names a collection that does not exist", async () => {
    await expect(probe.process({ collection: "does_not_exist_zz" }, ctx())).rejects.toThrow(CollectionNotFoundError);
    await expect(probe.process({ collection: "does_not_exist_zz" }, ctx())).rejects.toThrow(/"does_not_exist_zz" does not exist/);
  });
});
