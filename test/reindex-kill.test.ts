import { describe, expect, it } from "vitest";
import { currentIndex } from "../src/storage/index-settings.js";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import { collect, spawnCli } from "./helpers/cli.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { contents } from "./helpers/collection-contents.js";

const chroma = chromaStore();

async function seed(name: string, count: number): Promise<void> {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: "l2", max_neighbors: 8 } } });
  const embeddings = vectors(count, 8, 5);
  for (let start = 0; start < count; start += 500) {
    const slice = embeddings.slice(start, start + 500);
    await collection.add({ ids: slice.map((_, i) => `k${start + i}`), embeddings: slice, documents: slice.map((_, i) => `doc ${start + i}`) });
  }
}

const temporaries = async (name: string) => (await chroma.listCollectionNames()).filter((n) => n.startsWith(`${name}__vkreindex_`)).sort();

/** Runs `run reindex` until it reaches the failpoint, then kills it with SIGKILL. */
async function killedAt(point: string, args: string[], env: Record<string, string>): Promise<void> {
  const child = spawnCli(["run", "reindex", ...args], { ...env, VK_FAILPOINT: point });
  const done = collect(child);
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => chunk.toString().includes(`failpoint ${point} reached`) && resolve());
    child.once("exit", () => reject(new Error(`reindex exited before its failpoint ${point}`)));
  });
  child.kill("SIGKILL");
  await done;
}

describe("reindex killed", () => {
  it("during the copy, between passes and between the two renames leaves the collection whole; each next run cleans up and starts again", async () => {
    const name = uniqueName("reidx_kill");
    await seed(name, 1200);
    const whole = await contents(chroma, name);
    const env = testEnv();
    const args = ["--collection", name, "--max-neighbors", "20", "--skip-recall", "--json"];

    await killedAt("reindex:copying", args, env);
    expect(await contents(chroma, name)).toEqual(whole);
    const [firstBuild, ...others] = await temporaries(name);
    expect(firstBuild).toMatch(/__vkreindex_new_/);
    expect(others).toEqual([]);

    // The next run deletes the first build before its own, which it is killed after a catch-up pass of.
    await killedAt("reindex:pass", args, env);
    expect(await contents(chroma, name)).toEqual(whole);
    const [secondBuild, ...more] = await temporaries(name);
    expect(secondBuild).toMatch(/__vkreindex_new_/);
    expect(secondBuild).not.toBe(firstBuild);
    expect(more).toEqual([]);

    // Between the renames the collection is under its swap name, whole, until the next run puts it back.
    await killedAt("reindex:between-renames", args, env);
    const aside = await temporaries(name);
    expect(aside).toHaveLength(2);
    const swap = aside.find((n) => n.includes("__vkreindex_swap_"))!;
    expect(await contents(chroma, swap)).toEqual(whole);
    expect(currentIndex(await chroma.describeCollection(swap)).values).toMatchObject({ maxNeighbors: 8 });

    // The next run (in-process here: the CLI's were shown above) puts it back, then reindexes.
    const result = await reindex.process(reindexPayload.parse({ collection: name, maxNeighbors: 20, skipRecall: true }), jobContext({ chroma }));
    expect(result).toMatchObject({ action: "rebuilt", records: 1200, before: { maxNeighbors: 8 }, after: { maxNeighbors: 20 } });
    expect(await contents(chroma, name)).toEqual(whole);
    // Only the collection this run replaced (the one put back) is left, kept aside for --rollback.
    expect(await temporaries(name)).toEqual([result.keptAs]);
    expect(await contents(chroma, result.keptAs!)).toEqual(whole);
    // Three CLI runs: each starts tsx, which takes tens of seconds on a loaded 2-core machine.
  }, 240_000);
});
