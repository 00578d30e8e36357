import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { currentIndex } from "../src/storage/chroma/index-settings.js";
import { PermanentError } from "../src/errors.js";
import { reindex, reindexPayload } from "../src/jobs/reindex.js";
import { carriedRecordName } from "../src/jobs/reindex-swap.js";
import { collect, spawnCli, type CliResult } from "./helpers/cli.js";
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

/** Starts `run reindex` and waits until it reaches the failpoint (where it stops, or pauses with `pause`). */
async function runTo(point: string, args: string[], env: Record<string, string>, pause = false): Promise<{ child: ChildProcess; done: Promise<CliResult> }> {
  const child = spawnCli(["run", "reindex", ...args], { ...env, VK_FAILPOINT: point, ...(pause ? { VK_FAILPOINT_PAUSE: "1" } : {}) });
  const done = collect(child);
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => chunk.toString().includes(`failpoint ${point} reached`) && resolve());
    child.once("exit", () => reject(new Error(`reindex exited before its failpoint ${point}`)));
  });
  return { child, done };
}

/** Runs `run reindex` until it reaches the failpoint, then kills it with SIGKILL. */
async function killedAt(point: string, args: string[], env: Record<string, string>): Promise<void> {
  const { child, done } = await runTo(point, args, env);
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
    // Only the collection this run replaced (the one put back) is left, kept aside for --rollback, with the record of
    // what its reconcile carried over.
    expect(await temporaries(name)).toEqual([carriedRecordName(name, result.keptAs!), result.keptAs]);
    expect(await contents(chroma, result.keptAs!)).toEqual(whole);
    // Three CLI runs: each starts tsx, which takes tens of seconds on a loaded 2-core machine.
  }, 240_000);

  it("with a collection created under the name between the renames (getOrCreateCollection) parks nothing: the data stays whole under its swap name", async () => {
    const name = uniqueName("reidx_taken");
    await seed(name, 300);
    const whole = await contents(chroma, name);
    const { child, done } = await runTo("reindex:between-renames", ["--collection", name, "--max-neighbors", "20", "--skip-recall"], testEnv(), true);
    // An application opening the collection in the instant the name is free creates an empty one there.
    await chroma.client.getOrCreateCollection({ name, embeddingFunction: null });
    child.kill("SIGUSR2");
    const cli = await done;

    // The swap and the put-back both fail (the name is taken); the error says where the data is and what puts it back.
    const [swap, ...others] = await temporaries(name);
    expect(swap).toMatch(/__vkreindex_swap_[0-9a-f]{32}$/);
    expect(others).toEqual([]);
    expect(cli.code).toBe(1);
    const line = cli.stderr.split("\n").find((l) => l.startsWith("vectorkeeper: "));
    expect(line).toContain(`its data is in ${swap}`);
    expect(line).toContain(`vectorkeeper run reindex --collection ${name} --rebuild`);
    expect(await contents(chroma, swap!)).toEqual(whole);

    // The next reindex (the job's retry) refuses in one line naming both, and renames nothing.
    const next = reindex.process(reindexPayload.parse({ collection: name, maxNeighbors: 20, skipRecall: true }), jobContext({ chroma }));
    const refused = await next.then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(PermanentError);
    expect((refused as Error).message).not.toContain("\n");
    expect((refused as Error).message).toMatch(new RegExp(`^reindex: ${name} is not the collection .* the data is in ${swap}, nothing renamed`));
    expect(await temporaries(name)).toEqual([swap]);
    expect(await contents(chroma, swap!)).toEqual(whole);
    expect(await (await chroma.openCollection(name)).count()).toBe(0);

    // Once the name is free again, the reindex the error names puts the data back first.
    await chroma.deleteCollection(name);
    const result = await reindex.process(reindexPayload.parse({ collection: name, rebuild: true, skipRecall: true, dropOld: true }), jobContext({ chroma }));
    expect(result).toMatchObject({ action: "rebuilt", records: 300, before: { maxNeighbors: 8 } });
    expect(await contents(chroma, name)).toEqual(whole);
    expect(await temporaries(name)).toEqual([]);
  });
});
