import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { readChunk } from "../src/storage/backup-format/backup-reader.js";
import { STORES } from "./helpers/backup-fixtures.js";
import { cliAtFailpoint } from "./helpers/cli.js";
import { chromaStore, testEnv, uniqueName, vectors } from "./helpers/services.js";

// An archive reads records, and deletes them from the source a while later (hours later, on a big archive to the
// object store). A record upserted meanwhile with a fresh creation time is not the record that was archived: it
// must stay in the source with its new version. The run is paused between reading and deleting (VK_FAILPOINT_PAUSE)
// and the record changed there.
const chroma = chromaStore();
const redis = new Redis(inject("redisUrl"));
afterAll(() => redis.quit());
const DAY = 86_400_000;

async function seed(name: string) {
  const now = Date.now();
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null });
  await collection.add({
    ids: Array.from({ length: 12 }, (_, i) => `old-${i}`),
    embeddings: vectors(12, 8, 3),
    metadatas: Array.from({ length: 12 }, (_, i) => ({ _created_at: now - (40 + i) * DAY, version: 1 })),
  });
  return collection;
}

/** Starts the CLI paused at `point`; resolves once it is there. */
const pausedAt = (args: string[], env: Record<string, string>, point: string) => cliAtFailpoint(args, env, point, true);

const freshVersion = () => ({ _created_at: Date.now(), version: 2 });

describe("archive deletes only what still matches its cutoff", () => {
  it("into a collection: a record upserted fresh between its copy and the delete stays, with its new version", async () => {
    const name = uniqueName("archive_cut_coll");
    const collection = await seed(name);
    const args = ["run", "archive", "--collection", name, "--older-than-days", "30", "--batch-size", "100", "--json"];
    const { child, exited } = await pausedAt(args, testEnv(), "archive:after-copy");
    await collection.upsert({ ids: ["old-3"], embeddings: vectors(1, 8, 99), metadatas: [freshVersion()] });
    child.kill("SIGUSR2");
    const result = await exited;
    expect(result.code, `${result.signal} ${result.stderr}`).toBe(0);

    const left = await collection.get({ include: ["metadatas"] });
    expect(left.ids).toEqual(["old-3"]);
    expect(left.metadatas[0]).toMatchObject({ version: 2 });
    const target = await chroma.client.getCollection({ name: `${name}_archive` });
    const archived = await target.get({ ids: ["old-3"], include: ["metadatas"] });
    expect(archived.metadatas[0]).toMatchObject({ version: 1 });
    expect(await target.count()).toBe(12);
  });

  it("into the object store: a record upserted fresh after the manifest stays, with its new version", async () => {
    const name = uniqueName("archive_cut_obj");
    const collection = await seed(name);
    const { store, env: storeEnv } = STORES[0]!.open();
    const args = ["run", "archive", "--collection", name, "--older-than-days", "30", "--to", "object-store", "--json"];
    const { child, exited } = await pausedAt(args, testEnv(storeEnv), "archive:after-manifest");
    await collection.upsert({ ids: ["old-5"], embeddings: vectors(1, 8, 99), metadatas: [freshVersion()] });
    child.kill("SIGUSR2");
    const result = await exited;
    expect(result.code, result.stderr).toBe(0);

    const left = await collection.get({ include: ["metadatas"] });
    expect(left.ids).toEqual(["old-5"]);
    expect(left.metadatas[0]).toMatchObject({ version: 2 });
    const [only] = (await completeBackups(store, name)).backups;
    const ids: string[] = [];
    for (const chunk of only!.manifest.chunks) ids.push(...(await readChunk(store, only!.manifest, chunk)).ids);
    expect(ids).toHaveLength(12);
  });

  it("into the object store: a run whose lease was taken over while it paused deletes nothing", async () => {
    const name = uniqueName("archive_lease");
    const collection = await seed(name);
    const { env: storeEnv } = STORES[0]!.open();
    const env = testEnv(storeEnv);
    const args = ["run", "archive", "--collection", name, "--older-than-days", "30", "--to", "object-store"];
    const { child, exited } = await pausedAt(args, env, "archive:after-manifest");
    // What a retry that judged this run dead leaves: the lease in another holder's name.
    await redis.set(`${env.VK_QUEUE_PREFIX}:lock:archive:${name}`, JSON.stringify({ holder: "worker elsewhere", token: "t" }));
    child.kill("SIGUSR2");
    const result = await exited;
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("taken over by worker elsewhere");
    expect(await collection.count()).toBe(12);
  });
});
